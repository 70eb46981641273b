#!/usr/bin/env bash
# Installs the real client packages the tests drive chatapi with (the official openai SDK...)
# into .venv-clients, pinned in tests/clients/requirements.txt. Safe to run again: an up-to-date
# environment is left alone. The tests find the interpreter at .venv-clients/bin/python.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-clients
req=tests/clients/requirements.txt
stamp="$venv/.installed-$(sha256sum "$req" | cut -c1-16)"
[ -f "$stamp" ] && exit 0
python3 -m venv "$venv" 2>/dev/null || {
  echo "install-test-clients: python3 -m venv failed; installing python3-venv" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq python3-venv
  python3 -m venv "$venv"
}
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
rm -f "$venv"/.installed-*
touch "$stamp"
echo "test clients ok: $venv"
