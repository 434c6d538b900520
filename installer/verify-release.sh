#!/usr/bin/env bash
# Check a downloaded release: the signature on SHA256SUMS with the published public key, then every file
# it lists. One line and a non-zero exit on the first thing wrong.
# Usage: bash installer/verify-release.sh DIR PUBFILE
set -euo pipefail
DIR=${1:?usage: verify-release.sh DIR PUBFILE}
PUB=$(cd "$(dirname "${2:?usage: verify-release.sh DIR PUBFILE}")" && pwd)/$(basename "$2")
cd "$DIR"
openssl pkeyutl -verify -rawin -pubin -inkey "$PUB" -in SHA256SUMS -sigfile SHA256SUMS.sig >/dev/null 2>&1 ||
  { echo "verify-release: SHA256SUMS.sig is not a signature of SHA256SUMS by $PUB" >&2; exit 1; }
sha256sum --check --quiet --strict SHA256SUMS >/dev/null 2>&1 ||
  { echo "verify-release: $(sha256sum --check --quiet SHA256SUMS 2>&1 | head -1)" >&2; exit 1; }
echo "verified $(wc -l <SHA256SUMS) files in $DIR"
