#!/usr/bin/env bash
# The unit suite on the Node the single executable carries (installer/node-lts.sh), beside the suite on the
# machine's Node (npm test): a hard-linked copy of this checkout whose node_modules links to this one's,
# except better-sqlite3, which is the copy compiled for that Node. The integration tests that build and
# run the executable (sea, install, self-update) exercise the same Node end to end.
# Usage: bash scripts/test-on-node-lts.sh [vitest args; default test/unit]
set -euo pipefail
cd "$(dirname "$0")/.."
LTS=$(bash installer/node-lts.sh "${TENDER_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tender-build}")
read -r NODE ADDON <<<"$LTS"
ADDON_PKG=$(dirname "$(dirname "$(dirname "$ADDON")")")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
for f in $(ls -A); do
  case "$f" in node_modules | .git) ;; *) cp -al "$f" "$T/" ;; esac
done
mkdir "$T/node_modules"
for m in node_modules/* node_modules/.bin; do ln -s "$PWD/$m" "$T/node_modules/"; done
rm "$T/node_modules/better-sqlite3"
cp -a "$ADDON_PKG" "$T/node_modules/better-sqlite3"
cd "$T"
echo "unit tests on $("$NODE" --version) (the executable's Node)"
PATH="$(dirname "$NODE"):$PATH" node node_modules/vitest/vitest.mjs run "${@:-test/unit}"
