#!/usr/bin/env bash
# Build the realistic image pair for bench/transfer.ts (no registry needed):
#   base: Debian bookworm minbase via debootstrap; node: this machine's node binary; app: an app with
#   real npm dependencies. v2 edits a few sources, bumps one dependency, adds one Debian package (jq) in a
#   new layer (TENDER_BENCH_EXTRA=python3-minimal: that package and every dependency the base lacks, the
#   second pair). Each app is a fresh `npm ci`-style install in a fresh folder, as a CI rebuild would be, so
#   unchanged files get new timestamps.
set -euo pipefail
W=${TENDER_BENCH_DIR:-/var/tmp/tender-bench}
IMAGE=${TENDER_BENCH_IMAGE:-tender-bench/portal}
mkdir -p "$W"
if [ ! -x "$W/base/bin/sh" ]; then
  debootstrap --variant=minbase --include=libstdc++6,ca-certificates bookworm "$W/base" http://deb.debian.org/debian
fi
tar -C "$W/base" --numeric-owner -cf "$W/base.tar" .
rm -rf "$W/node" && mkdir -p "$W/node/usr/local/bin" && cp "$(command -v node)" "$W/node/usr/local/bin/node"
tar -C "$W/node" -cf "$W/node.tar" .

app() { # $1 dir, $2 lodash version, $3 greeting
  rm -rf "$1" && mkdir -p "$1/app/src"
  cat >"$1/app/package.json" <<JSON
{ "name": "sms-portal", "version": "1.0.0", "private": true,
  "dependencies": { "express": "4.19.2", "lodash": "$2", "dayjs": "1.11.10", "pino": "8.17.2", "zod": "3.22.4" } }
JSON
  for i in $(seq 1 30); do
    printf "const _ = require('lodash');\nmodule.exports = function handler%s(req, res) { res.json({ id: %s, ok: true, at: Date.now() }); };\n" "$i" "$i" >"$1/app/src/route$i.js"
  done
  printf "const express = require('express');\nconst app = express();\napp.get('/', (q, s) => s.send('%s'));\napp.get('/health', (q, s) => s.send('ok'));\napp.listen(8080);\n" "$3" >"$1/app/src/index.js"
  (cd "$1/app" && npm install --omit=dev --no-audit --no-fund --ignore-scripts >/dev/null)
}
app "$W/app1" 4.17.20 "portal v1"
app "$W/app2" 4.17.21 "portal v2"
# v2 edits a few sources as well.
for i in 3 7 11; do echo "// changed in v2: route $i now validates its input" >>"$W/app2/app/src/route$i.js"; done
tar -C "$W/app1" -cf "$W/app1.tar" .
tar -C "$W/app2" -cf "$W/app2.tar" .

# One more Debian package for v2, in a layer of its own.
if [ -n "${TENDER_BENCH_EXTRA:-}" ]; then
  # The package and its dependencies (recursively, no recommends) that the base does not have installed.
  installed=$(dpkg-query --admindir="$W/base/var/lib/dpkg" -W -f '${Package}\n' | sort -u)
  wanted=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces \
    --no-enhances $TENDER_BENCH_EXTRA | grep -v '^ ' | grep -v '^<' | sed 's/:any$//' | sort -u)
  packages=$(comm -23 <(echo "$wanted") <(echo "$installed"))
else
  packages="jq libjq1 libonig5"
fi
echo "extra packages for v2: $(echo $packages | wc -w): $(echo $packages)"
rm -rf "$W/extra" && mkdir -p "$W/extra/root" && (cd "$W/extra" && apt-get download $packages >/dev/null 2>&1)
for d in "$W"/extra/*.deb; do dpkg-deb -x "$d" "$W/extra/root"; done
tar -C "$W/extra/root" -cf "$W/extra.tar" .

for v in 1 2; do
  ctx="$W/ctx$v" && rm -rf "$ctx" && mkdir -p "$ctx"
  ln "$W/base.tar" "$ctx/base.tar"; ln "$W/node.tar" "$ctx/node.tar"; ln "$W/app$v.tar" "$ctx/app.tar"
  {
    echo "FROM scratch"
    echo "ADD base.tar /"
    echo "ADD node.tar /"
    echo "ADD app.tar /"
    if [ "$v" = 2 ]; then ln "$W/extra.tar" "$ctx/extra.tar"; echo "ADD extra.tar /"; fi
    echo 'CMD ["/usr/local/bin/node", "/app/src/index.js"]'
  } >"$ctx/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "$IMAGE:v$v" "$ctx" >/dev/null
done
docker image ls "$IMAGE"
