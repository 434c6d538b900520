#!/usr/bin/env bash
# Sign the files of a release directory: SHA256SUMS lists them, SHA256SUMS.sig is its Ed25519 signature
# (OpenSSL 3, raw Ed25519 over the file's bytes). The key is an Ed25519 private key in PEM, e.g.
#   openssl genpkey -algorithm ed25519 -out tender-artefacts.key
#   openssl pkey -in tender-artefacts.key -pubout -out tender-artefacts.pub      # publish this one
# This key signs downloads of Tender itself; it is not a fleet release key (those stay with shore ops).
# Usage: bash installer/sign-release.sh DIR KEYFILE        Check: bash installer/verify-release.sh DIR PUBFILE
set -euo pipefail
DIR=${1:?usage: sign-release.sh DIR KEYFILE}
KEY=${2:?usage: sign-release.sh DIR KEYFILE}
cd "$DIR"
rm -f SHA256SUMS SHA256SUMS.sig
files=$(find . -maxdepth 1 -type f ! -name 'SHA256SUMS*' -printf '%f\n' | LC_ALL=C sort)
[ -n "$files" ] || { echo "sign-release: nothing to sign in $DIR" >&2; exit 1; }
# shellcheck disable=SC2086
sha256sum $files >SHA256SUMS
openssl pkeyutl -sign -rawin -inkey "$KEY" -in SHA256SUMS -out SHA256SUMS.sig
echo "signed $(wc -l <SHA256SUMS) files in $DIR (SHA256SUMS, SHA256SUMS.sig)"
