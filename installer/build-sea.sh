#!/usr/bin/env bash
# Build Tender as one executable file with Node's single-executable applications (SEA): esbuild bundles
# the TypeScript into one CommonJS file, better-sqlite3's addon rides along as a SEA asset, postject
# injects the blob into a copy of the Node it is built on. Output: dist/tender (about 130 MB, Node
# included). That Node is the current LTS (installer/node-lts.sh: pinned, fetched from npm once and
# cached, the addon compiled for it); TENDER_SEA_NODE=system builds on the machine's own node instead.
# Usage: bash installer/build-sea.sh [OUT]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-dist/tender}
if [ "${TENDER_SEA_NODE:-lts}" = system ]; then
  SEA_NODE=$(command -v node)
  ADDON=node_modules/better-sqlite3/build/Release/better_sqlite3.node
  [ -f "$ADDON" ] || { echo "build-sea: $ADDON missing (run npm ci)" >&2; exit 1; }
else
  LTS=$(bash installer/node-lts.sh "${TENDER_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tender-build}")
  read -r SEA_NODE ADDON <<<"$LTS"
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
node installer/bundle.mjs "$WORK/tender.cjs"
cat >"$WORK/sea.json" <<JSON
{ "main": "$WORK/tender.cjs", "output": "$WORK/tender.blob", "disableExperimentalSEAWarning": true,
  "useCodeCache": false, "assets": { "better_sqlite3.node": "$(realpath "$ADDON")" } }
JSON
"$SEA_NODE" --experimental-sea-config "$WORK/sea.json" >/dev/null 2>&1
# postject warns about ELF note sections it does not use; the result is checked by test/integration/sea.test.ts.
mkdir -p "$(dirname "$OUT")"
cp "$SEA_NODE" "$OUT.tmp"
npx postject "$OUT.tmp" NODE_SEA_BLOB "$WORK/tender.blob" --sentinel-fuse NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2 >/dev/null 2>&1
chmod 0755 "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "built $OUT ($(du -h "$OUT" | cut -f1), node $("$SEA_NODE" --version))"
