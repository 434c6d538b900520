#!/usr/bin/env bash
# A fresh Debian server for test/integration/install.test.ts: a bookworm root made with debootstrap, systemd
# as its init, Docker's packages installed as `apt install docker.io` leaves them (the docker group, the
# CLI), but their services masked: the test mounts the host engine's socket instead of running a second
# engine. Imported as a local image once and reused; the tag carries this script's digest, so editing the
# script's commands builds a new one. Prints the image tag on stdout; everything else goes to stderr.
# Takes 1-2 minutes the first time here (debootstrap from deb.debian.org), longer on a slow mirror;
# nothing afterwards. The tag follows the script's commands, not its comments.
# Usage: bash test/helpers/debian-systemd-image.sh
set -euo pipefail
SUITE=bookworm
MIRROR=${TENDER_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=systemd,systemd-sysv,dbus,docker.io,procps,iproute2,passwd,adduser
REPO=tender-install-test/debian-systemd
TAG="$REPO:$SUITE-$(grep -v '^[[:space:]]*#' "$0" | sha256sum | cut -c1-12)"

have() { docker image inspect "$TAG" >/dev/null 2>&1; }
if have; then
  echo "$TAG"
  exit 0
fi
# Two test runs at once build it once: the second waits for the first.
exec 9>/tmp/tender-install-test-image.lock
flock 9
if have; then
  echo "$TAG"
  exit 0
fi

for tool in debootstrap docker tar chroot; do
  command -v "$tool" >/dev/null || { echo "debian-systemd-image: $tool not found (apt-get install $tool)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "debian-systemd-image: debootstrap needs root" >&2; exit 1; }

ROOT=$(mktemp -d /var/tmp/tender-debootstrap.XXXXXX)
cleanup() {
  # debootstrap mounts /proc and /sys inside the root while it runs; never descend into them.
  for m in proc sys dev/pts dev; do umount -l "$ROOT/$m" 2>/dev/null || true; done
  rm -rf --one-file-system "$ROOT"
}
trap cleanup EXIT

started=$(date +%s)
# From Ubuntu (GitHub's runners) Debian's own keyring must be named (package debian-archive-keyring).
keyring=()
[ ! -f /usr/share/keyrings/debian-archive-keyring.gpg ] ||
  keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
debootstrap --variant=minbase "${keyring[@]}" --include="$PACKAGES" "$SUITE" "$ROOT" "$MIRROR" >&2
# The host's engine serves the agent through the mounted socket; a second engine would start otherwise.
chroot "$ROOT" systemctl mask docker.service docker.socket containerd.service >&2
# Nothing to log in on: no getty on a console the container does not have.
chroot "$ROOT" systemctl mask console-getty.service getty@tty1.service >&2
# A machine id is made at first boot, as on a freshly installed server.
: >"$ROOT/etc/machine-id"
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/*
tar -C "$ROOT" --numeric-owner -c . |
  docker import \
    -c 'ENV container=docker' \
    -c 'CMD ["/sbin/init"]' \
    - "$TAG" >&2
echo "debian-systemd-image: built $TAG in $(($(date +%s) - started))s" >&2
echo "$TAG"
