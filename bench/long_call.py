"""Time to first token on the embedded model in a long call: the call so far (TURNS earlier
turns) arriving at a server that has never seen it, then eight more turns on that server, each
resending the whole call as FaceTo-AI does, so each finds the turn before in the cache. Three runs.
Needs `cargo build --release` and the model (scripts/fetch-model.sh).

    python3 bench/long_call.py [TURNS]      # default 30
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
    more = 8
    call = []
    for i in range(turns):
        call.append({"role": "user", "name": "Ann",
                     "content": f"Tell me something about topic number {i}, please."})
        call.append({"role": "assistant",
                     "content": f"Topic {i} is interesting because it connects to many everyday things we do."})
    cold, later = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(3):
            server = start(18181, tmp)
            ask(18181, [{"role": "user", "content": "Hello!"}])  # warm-up, another call
            # The call so far arrives at a server that has never seen it: all of it is decoded.
            messages = call + [QUESTION]
            first, answer = ask(18181, messages)
            cold.append(first)
            # Then the call goes on, each turn resending everything, as FaceTo-AI does.
            for k in range(more):
                messages = messages + [{"role": "assistant", "content": answer},
                                       {"role": "user", "name": "Ann",
                                        "content": f"And what about number {k}?"}]
                first, answer = ask(18181, messages)
                later.append(first)
            stop(server)
    slow = sum(1 for x in later if x > 1.0)
    print(f"{turns} earlier turns: first token cold median {statistics.median(cold) * 1000:.0f} ms; "
          f"the {more} turns after it, 3 runs: median {statistics.median(later) * 1000:.0f} ms, "
          f"{slow} of {len(later)} over 1 s (max {max(later) * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
