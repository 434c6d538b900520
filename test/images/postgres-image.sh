#!/usr/bin/env bash
# Build the PostgreSQL image the backup tests run (no image registry is reachable here): debootstrap a
# Debian bookworm root from the Debian mirror apt already uses, install Debian's `postgresql` package in
# it, and `docker import` it. The tag carries a hash of this script, so a changed recipe builds anew and
# an unchanged one is built once per machine (CI calls this before the tests; tests call it too).
#
# Usage: bash test/images/postgres-image.sh        prints the image tag on stdout (progress on stderr)
# Needs: root, debootstrap, docker. Env: TENDER_DEBIAN_MIRROR overrides the mirror.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
HASH="$(sha256sum "$HERE/$(basename "$0")" | cut -c1-12)"
TAG="tender-test/postgres:15-$HASH"

if docker image inspect "$TAG" >/dev/null 2>&1; then echo "$TAG"; exit 0; fi

# Two test workers may ask at once: one builds, the other waits for it and finds the image.
exec 9>"${TMPDIR:-/tmp}/tender-postgres-image.lock"
flock 9
if docker image inspect "$TAG" >/dev/null 2>&1; then echo "$TAG"; exit 0; fi

mirror="${TENDER_DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  # The first Debian URI apt is configured with (deb822 or one-line format), else the public one.
  mirror="$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1 || true)"
  [ -n "$mirror" ] || mirror="$(grep -hsE '^deb ' /etc/apt/sources.list | awk '{print $2}' | head -1 || true)"
  [ -n "$mirror" ] || mirror="http://deb.debian.org/debian"
fi

root="$(mktemp -d "${TMPDIR:-/tmp}/tender-pg-root.XXXXXX")"
trap 'rm -rf "$root"' EXIT
start=$(date +%s)
echo "building $TAG from $mirror (debootstrap bookworm + postgresql; a few minutes)" >&2

debootstrap --variant=minbase --include=postgresql-15 bookworm "$root" "$mirror" >&2

# The package made a cluster of its own at install time; the container makes its own in its volume.
rm -rf "$root/var/lib/postgresql/15" "$root/etc/postgresql/15"
# Smaller image: no apt lists or caches, documentation or locales beyond C.
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
  "$root"/usr/share/info/* "$root"/usr/share/locale/*
install -d -o "$(stat -c %u "$root/var/lib/postgresql")" -g "$(stat -c %g "$root/var/lib/postgresql")" -m 0700 \
  "$root/var/lib/postgresql/data"

cat >"$root/usr/local/bin/tender-postgres" <<'SH'
#!/bin/sh
# A fresh volume gets a cluster (trust auth: the container's port is loopback-only on the vessel);
# TERM from `docker stop` reaches postgres itself (exec), which shuts down cleanly.
set -e
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb -D "$PGDATA" -U postgres --auth=trust --encoding=UTF8 --locale=C >/dev/null
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  echo "unix_socket_directories = '/tmp'" >>"$PGDATA/postgresql.conf"
  echo "host all all 0.0.0.0/0 trust" >>"$PGDATA/pg_hba.conf"
fi
exec postgres -D "$PGDATA"
SH
chmod 0755 "$root/usr/local/bin/tender-postgres"

uid="$(stat -c %u "$root/var/lib/postgresql")"
tar -C "$root" -c . | docker import \
  -c "USER $uid" \
  -c 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/bin:/usr/bin:/bin' \
  -c 'ENV PGDATA=/var/lib/postgresql/data' \
  -c 'ENV PGHOST=/tmp' \
  -c 'ENV PGUSER=postgres' \
  -c 'EXPOSE 5432' \
  -c 'CMD ["/usr/local/bin/tender-postgres"]' \
  - "$TAG" >&2
echo "built $TAG in $(($(date +%s) - start)) s" >&2
echo "$TAG"
