#!/usr/bin/env bash
# Installs the real client packages the tests drive chatapi with (the official openai SDK...)
# into .venv-clients, pinned in tests/clients/requirements.txt. Safe to run again: an up-to-date
# environment is left alone. The tests find the interpreter at .venv-clients/bin/python.
set -euo pipefail
cd "$(dirname "$0")/.."
# One environment per set of clients that can share one (see each requirements file).
install() {
  local venv=$1; shift
  local stamp="$venv/.installed-$(cat "$@" | sha256sum | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  python3 -m venv "$venv" 2>/dev/null || {
    echo "install-test-clients: python3 -m venv failed; installing python3-venv" >&2
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv
    python3 -m venv "$venv"
  }
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$1"
  if [ $# -gt 1 ]; then
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --ignore-requires-python -r "$2"
  fi
  rm -f "$venv"/.installed-*
  touch "$stamp"
  echo "test clients ok: $venv"
}
install .venv-clients tests/clients/requirements.txt
install .venv-video-clients tests/clients/video-requirements.txt tests/clients/video-requirements-nodeps.txt
