"""Time to first token on the embedded model for the next turn of a long call: once on a fresh
server (nothing cached), once on a server that has just answered the turn before (its cache holds
the call so far). Needs `cargo build --release` and the model (scripts/fetch-model.sh).

    python3 bench/long_call.py [TURNS]      # default 30 earlier turns, median of 3 runs
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "chatapi")
QUESTION = {"role": "user", "name": "Ann", "content": "What is the capital of France?"}


def start(port, tmp):
    config = os.path.join(tmp, f"{port}.toml")
    with open(config, "w") as f:
        f.write(
            f'[server]\nlisten = "127.0.0.1:{port}"\n[local]\nthreads = 1\n'
            '[personas.default]\nsystem_prompt = "You are Ava, a friendly assistant. '
            'Answer in one short sentence."\ntemperature = 0.0\nmax_tokens = 24\n'
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHATAPI__"))}
    server = subprocess.Popen([BIN, "--config", config], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return server
        except OSError:
            time.sleep(0.05)
    server.kill()
    sys.exit("chatapi did not start")


def ask(port, messages):
    """Seconds to the first content event, and the answer."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/chat", data=json.dumps({"messages": messages}).encode(),
        headers={"content-type": "application/json"})
    started, first, text = time.perf_counter(), None, ""
    with urllib.request.urlopen(request, timeout=300) as response:
        for line in response:
            line = line.decode().strip()
            if line.startswith("data: {"):
                first = first or time.perf_counter() - started
                text += json.loads(line[len("data: "):])["content"]
    return first, text


def stop(server):
    server.send_signal(signal.SIGTERM)
    server.wait()


def main():
    turns = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    call = []
    for i in range(turns):
        call.append({"role": "user", "name": "Ann",
                     "content": f"Tell me something about topic number {i}, please."})
        call.append({"role": "assistant",
                     "content": f"Topic {i} is interesting because it connects to many everyday things we do."})
    before = call[:-1]  # the earlier turn: it ends with Ann's question
    cold, cached = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(3):
            server = start(18181, tmp)
            ask(18181, [{"role": "user", "content": "Hello!"}])  # warm-up, another call
            cold.append(ask(18181, call + [QUESTION])[0])
            stop(server)
            server = start(18182, tmp)
            _, answer = ask(18182, before)
            cached.append(ask(18182, before + [{"role": "assistant", "content": answer}, QUESTION])[0])
            stop(server)
    ms = lambda xs: [round(x * 1000) for x in xs]
    print(f"{turns} earlier turns: first token cold median {statistics.median(cold) * 1000:.0f} ms "
          f"{ms(cold)}; with the call cached median {statistics.median(cached) * 1000:.0f} ms {ms(cached)}")


if __name__ == "__main__":
    main()
