#!/usr/bin/env bash
# The tests, one command (what .ci/run runs): installs what the build needs, fetches the
# models (chat and speech-to-text), installs the real client packages the dialect tests drive chatapi with, then
# runs every test target. Each step leaves an up-to-date install alone.
set -euo pipefail
cd "$(dirname "$0")/.."
# A whole-suite run gains nothing from incremental builds and they cost gigabytes of disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# Said up front so a run that dies of a full disk (the linker's SIGBUS) is recognised at once.
df -h "${CARGO_TARGET_DIR:-target}" 2>/dev/null || df -h .
./scripts/install-build-deps.sh
./scripts/fetch-model.sh
./scripts/install-test-clients.sh
# The speech-to-text program the video tests start, as the server does (its own binary).
cargo build -p chatapi-whisper
cargo test --workspace --all-targets "$@"
