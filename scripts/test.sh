#!/usr/bin/env bash
# The tests, one command (what .ci/run runs): installs what the build needs, fetches the
# models (chat and speech-to-text), installs the real client packages the dialect tests drive chatapi with, then
# runs every test target. Each step leaves an up-to-date install alone.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-build-deps.sh
./scripts/fetch-model.sh
./scripts/install-test-clients.sh
# The speech-to-text program the video tests start, as the server does (its own binary).
cargo build -p chatapi-whisper
cargo test --workspace --all-targets "$@"
