#!/usr/bin/env bash
# The benchmark, one command: builds chatapi and chatapi-bench in release, sets up the FastAPI
# peer, LiteLLM's proxy and llama-cpp-python in a virtualenv (bench/.venv), then writes
# bench/out/results.{md,json} (streaming), bench/out/gateways.{md,json} (the OpenAI route against
# LiteLLM and the peer), bench/out/local.{md,json} (embedded model), bench/out/videos.{md,json}
# (video processing), bench/out/timeline.{md,json} (onsets and cuts, beside PySceneDetect and
# faster-whisper in bench/.venv-timeline) and bench/out/answers.{md,json} (the embedded model's
# offline answers, with its card's sampling with and without its example exchange, and llama.cpp's).
# Extra arguments go to the streaming run (e.g. --smoke, --streams 5000).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-build-deps.sh
./scripts/fetch-model.sh
cargo build --release --workspace --bins

peer=()
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv 2>/dev/null || python3 -m virtualenv bench/.venv || true
fi
if [ -x bench/.venv/bin/python ] && bench/.venv/bin/python -m pip install -q -r bench/peer/requirements.txt; then
  peer=(--peer-cmd "bench/.venv/bin/python bench/peer/app.py --port {port} --upstream {upstream}")
else
  echo "bench: no Python virtualenv for the FastAPI peer; running without it" >&2
fi
target/release/chatapi-bench --chatapi target/release/chatapi "${peer[@]}" "$@"

# The OpenAI route beside LiteLLM's proxy (one worker) on the same mock.
litellm=()
if [ -x bench/.venv/bin/python ] && { [ -x bench/.venv/bin/litellm ] ||
  bench/.venv/bin/python -m pip install -q 'litellm[proxy]==1.108.7'; }; then
  litellm=(--litellm bench/.venv/bin/litellm)
fi
target/release/chatapi-bench --chatapi target/release/chatapi "${peer[@]}" gateways "${litellm[@]}"

# The embedded model against llama.cpp itself (llama-cpp-python, compiled here with the same CPU
# features as llama.cpp gets from .cargo/config.toml, so the comparison is like for like).
reference=()
if [ -x bench/.venv/bin/python ] && { bench/.venv/bin/python -c 'import llama_cpp' 2>/dev/null ||
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAMA_CURL=OFF" \
    bench/.venv/bin/python -m pip install -q llama-cpp-python==0.3.36; }; then
  reference=(--reference-python bench/.venv/bin/python)
fi
threads=$(( $(nproc) > 1 ? $(nproc) - 1 : 1 ))
target/release/chatapi-bench local --threads "$threads" "${reference[@]}"

# The video library: a 10-minute 720p talk processed with speech-to-text (bench/out/videos.md).
target/release/chatapi-bench --chatapi target/release/chatapi videos

# How true the timeline is (bench/out/timeline.md): onsets and cuts on videos with known facts,
# with PySceneDetect and faster-whisper beside it, in their own virtualenv (bench/.venv-timeline).
timeline_peers=()
if [ ! -x bench/.venv-timeline/bin/python ]; then
  python3 -m venv bench/.venv-timeline 2>/dev/null || python3 -m virtualenv bench/.venv-timeline || true
fi
if [ -x bench/.venv-timeline/bin/python ] &&
  bench/.venv-timeline/bin/python -m pip install -q -r bench/peer/timeline-requirements.txt; then
  timeline_peers=(--peers bench/.venv-timeline/bin/python)
else
  echo "bench: no Python virtualenv for the timeline's peers; running without them" >&2
fi
target/release/chatapi-bench --chatapi target/release/chatapi timeline "${timeline_peers[@]}"
# The embedded model's offline answers (bench/out/answers.md): facts and questions about videos.
target/release/chatapi-bench --chatapi target/release/chatapi answers
# A two-hour video's chapters and summary (map-reduce over the mock upstream), and a kept result.
target/release/chatapi-bench --chatapi target/release/chatapi digests
