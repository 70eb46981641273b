#!/usr/bin/env bash
# llama.cpp's BERT path beside candle's (issue: search by meaning, "measure both"). Not run in
# CI. Needs `scripts/fetch-model.sh` and a release build (`cargo build --release`), whose
# llama-cpp-sys-2 output holds the libllama.a this links against: the same llama.cpp chatapi runs.
# Writes the GGUF and the driver under bench/out/llama-bert/.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=bench/out/llama-bert
mkdir -p "$out"
if [ ! -x "$out/venv/bin/python" ]; then
    python3 -m venv "$out/venv"
    "$out/venv/bin/pip" install -q gguf==0.19.0 safetensors numpy
fi
"$out/venv/bin/python" bench/llama-bert/convert.py models/all-MiniLM-L6-v2 "$out/minilm-f32.gguf"
lib=$(realpath "$(ls -td target/release/build/llama-cpp-sys-2-*/out | head -1)")
g++ -O2 -std=c++17 bench/llama-bert/embed.cpp -I"$lib/include" -o "$out/embed" \
    "$lib/lib/libllama.a" "$lib/build/ggml/src/libggml.a" "$lib/build/ggml/src/libggml-cpu.a" \
    "$lib/build/ggml/src/libggml-base.a" -fopenmp -lpthread -ldl
# The 240 segments `chatapi-bench search` embeds with candle, word for word.
python3 - "$out/segments.txt" <<'PY'
import sys
W = ("garden tomato water season soil planting harvest weather compost seeds morning sunlight "
     "leaves roots careful simple because then train mountain coast bicycle kitchen bread "
     "meeting agenda budget").split()
s = lambda seed, n: " ".join(W[(seed * 7 + w * 13 + w * w) % len(W)] for w in range(n))
open(sys.argv[1], "w").write("\n".join(s(i, 75) for i in range(240)) + "\n")
PY
python3 -c 'import json,sys; print("\n".join(x["text"].replace("\n"," ") for x in json.load(open("tests/data/minilm-reference.json"))["sentences"]))' > "$out/reference.txt"
"$out/embed" "$out/minilm-f32.gguf" "$out/reference.txt" 2 "$out/reference.vec"
python3 - "$out/reference.vec" <<'PY'
import json, math, sys
ref = json.load(open("tests/data/minilm-reference.json"))["sentences"]
got = [json.loads(l) for l in open(sys.argv[1])]
cos = lambda a, b: sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))
print("worst cosine to the reference:", min(cos(r["vector"], g) for r, g in zip(ref, got)))
PY
for _ in 1 2 3; do PACK=1 "$out/embed" "$out/minilm-f32.gguf" "$out/segments.txt" 2; done
target/release/chatapi-bench search --segments 1000 | grep "segments of 75 words"
