#!/usr/bin/env bash
# Rebuilds vendor/hyper: hyper's published crate, checked against its crates.io checksum, with
# vendor/hyper-initial-buf-size.patch applied (vendor/README.md says why). Run it to move to a
# new hyper: set VERSION and SHA256 to the new release's (Cargo.lock's `checksum` before the
# patch, or crates.io's), run, and fix the patch if it no longer applies.
#   scripts/vendor-hyper.sh          rebuild vendor/hyper
#   scripts/vendor-hyper.sh --check  say whether vendor/hyper is exactly that, change nothing
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=1.12.0
SHA256=2c3e324da4c95177d6291d4c8730197c0d1822f8a9766814a4a44fa5ab797c9c
PATCH=vendor/hyper-initial-buf-size.patch

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
crate=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"hyper-$VERSION.crate" 2>/dev/null | head -1 || true)
if [ -z "$crate" ]; then
  crate="$work/hyper-$VERSION.crate"
  curl -fsSL "https://static.crates.io/crates/hyper/hyper-$VERSION.crate" -o "$crate"
fi
echo "$SHA256  $crate" | sha256sum --check --quiet
tar -xzf "$crate" -C "$work"
patch --quiet --directory "$work/hyper-$VERSION" -p1 <"$PATCH"

if [ "${1:-}" = "--check" ]; then
  diff -r "$work/hyper-$VERSION" vendor/hyper && echo "vendor/hyper is hyper $VERSION with $PATCH"
  exit
fi
rm -rf vendor/hyper
cp -r "$work/hyper-$VERSION" vendor/hyper
echo "vendor/hyper: hyper $VERSION with $PATCH"
