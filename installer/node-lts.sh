#!/usr/bin/env bash
# The Node that Tender's single executable carries: the current LTS, pinned, from npm's node-linux-<arch>
# package (the official build, repackaged; nodejs.org need not be reachable), its tarball checked against
# the integrity pinned here, and better-sqlite3's addon compiled for its ABI with npm's own node-gyp and
# the headers the package ships (nothing is downloaded at build time but the one tarball). The machine's
# Node (20 here) runs the tools and the source tests; only the executable changes Node.
# Usage: bash installer/node-lts.sh CACHE_DIR  -> prints "NODE ADDON" (paths), building what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_LTS=24.22.3
case "$(uname -m)" in
  x86_64) ARCH=x64 INTEGRITY='sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==' ;;
  aarch64) ARCH=arm64 INTEGRITY='sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw==' ;;
  *) echo "node-lts: no pinned Node $NODE_LTS for $(uname -m)" >&2; exit 1 ;;
esac
CACHE=${1:?usage: node-lts.sh CACHE_DIR}
NODE_DIR="$CACHE/node-$NODE_LTS-$ARCH"
SQLITE_VERSION=$(node -p "require('./node_modules/better-sqlite3/package.json').version")
ADDON_DIR="$CACHE/better-sqlite3-$SQLITE_VERSION-node-$NODE_LTS-$ARCH"
ADDON="$ADDON_DIR/build/Release/better_sqlite3.node"
mkdir -p "$CACHE"
# Builds running at once (tests build executables in parallel) wait for the first.
exec 9>"$CACHE/.lock"
flock 9
if [ ! -x "$NODE_DIR/bin/node" ]; then
  TMP=$(mktemp -d)
  trap 'rm -rf "$TMP"' EXIT
  echo "node-lts: fetching node-linux-$ARCH@$NODE_LTS from the npm registry" >&2
  (cd "$TMP" && npm pack "node-linux-$ARCH@$NODE_LTS" --silent >/dev/null)
  TARBALL=$(ls "$TMP"/node-linux-"$ARCH"-*.tgz)
  GOT="sha512-$(openssl dgst -sha512 -binary "$TARBALL" | base64 -w0)"
  if [ "$GOT" != "$INTEGRITY" ]; then
    echo "node-lts: node-linux-$ARCH@$NODE_LTS does not match its pinned integrity (got $GOT)" >&2
    exit 1
  fi
  mkdir -p "$TMP/x" && tar -xzf "$TARBALL" -C "$TMP/x"
  [ -x "$TMP/x/package/bin/node" ] && [ -f "$TMP/x/package/include/node/node.h" ] || {
    echo "node-lts: the package has no bin/node or include/node" >&2
    exit 1
  }
  rm -rf "$NODE_DIR" && mv "$TMP/x/package" "$NODE_DIR"
fi
if [ ! -f "$ADDON" ]; then
  NPM_DIR=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  NODE_GYP="$NPM_DIR/node_modules/node-gyp/bin/node-gyp.js"
  [ -f "$NODE_GYP" ] || { echo "node-lts: npm's node-gyp not found at $NODE_GYP" >&2; exit 1; }
  echo "node-lts: compiling better-sqlite3 $SQLITE_VERSION for Node $NODE_LTS (a minute or two)" >&2
  rm -rf "$ADDON_DIR" && mkdir -p "$ADDON_DIR"
  (cd node_modules/better-sqlite3 && tar --exclude=./build -cf - .) | tar -xf - -C "$ADDON_DIR"
  (cd "$ADDON_DIR" && PATH="$NODE_DIR/bin:$PATH" node "$NODE_GYP" rebuild --release --nodedir="$NODE_DIR" -j max >build.log 2>&1) || {
    tail -20 "$ADDON_DIR/build.log" >&2
    exit 1
  }
  # As the executable loads it: this checkout's better-sqlite3 with the addon given as its native binding.
  "$NODE_DIR/bin/node" -e "
    const Db = require('./node_modules/better-sqlite3');
    new Db(':memory:', { nativeBinding: process.argv[1] }).prepare('select 1').get();" "$ADDON"
fi
echo "$NODE_DIR/bin/node $ADDON"
