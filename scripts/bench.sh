#!/usr/bin/env bash
# The benchmark, one command: builds chatapi and chatapi-bench in release, sets up the FastAPI
# peer in a virtualenv (bench/.venv), and writes bench/out/results.{md,json}.
# Extra arguments go to chatapi-bench (e.g. --smoke, --streams 5000).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins
peer=()
if [ ! -x bench/.venv/bin/python ]; then
  python3 -m venv bench/.venv 2>/dev/null || python3 -m virtualenv bench/.venv || true
fi
if [ -x bench/.venv/bin/python ] && bench/.venv/bin/python -m pip install -q -r bench/peer/requirements.txt; then
  peer=(--peer-cmd "bench/.venv/bin/python bench/peer/app.py --port {port} --upstream {upstream}")
else
  echo "bench: no Python virtualenv for the FastAPI peer; running without it" >&2
fi
exec target/release/chatapi-bench --chatapi target/release/chatapi "${peer[@]}" "$@"
