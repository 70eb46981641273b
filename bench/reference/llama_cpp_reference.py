"""llama.cpp's own runtime, through llama-cpp-python, on the same GGUF, prompts, greedy sampling
and thread count as `chatapi-bench local`. Prints one JSON object:
{"decode_tps": median tokens/s of 3 long answers, "ttft_ms": [10 short-prompt first-token times]}.
Usage: python llama_cpp_reference.py MODEL THREADS TOKENS"""
import json
import statistics
import sys
import time

from llama_cpp import Llama

model, threads, tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
llm = Llama(model_path=model, n_threads=threads, n_threads_batch=threads, n_ctx=1024, verbose=False)


def generate(prompt, max_tokens):
    # Forget the previous prompt: llama-cpp-python would otherwise reuse its KV cache for a
    # repeated prefix, which chatapi's engine does not do (each request is prefilled whole).
    llm.reset()
    started = time.perf_counter()
    first = last = None
    n = 0
    for chunk in llm.create_chat_completion(
        messages=[{"role": "user", "content": prompt}],
        temperature=0.0,
        max_tokens=max_tokens,
        stream=True,
    ):
        if chunk["choices"][0]["delta"].get("content"):
            n += 1
            last = time.perf_counter()
            first = first or last
    return (first - started) * 1e3, n, (last - first)


generate("Hi", 8)
ttft = [generate("What is the capital of France?", 1)[0] for _ in range(10)]
rates = []
for _ in range(3):
    _, n, span = generate("Write a long story about a dragon who learns to sing.", tokens)
    rates.append((n - 1) / span)
print(json.dumps({"decode_tps": statistics.median(rates), "ttft_ms": ttft}))
