#!/usr/bin/env bash
# Package the single executable as a .deb: /usr/bin/tender, the units of systemd/ in /usr/lib/systemd/system
# (run from /usr/bin/tender), and the maintainer scripts of installer/deb/. Then, on a vessel:
#   sudo apt install ./tender_VERSION_ARCH.deb
#   sudo tender agent enroll --file vessel.enrol      (or --hub URL --token T)
#   sudo systemctl start tender-router tender-agent
# Usage: bash installer/build-deb.sh [EXECUTABLE] [OUTDIR]   (defaults: dist/tender, dist; npm run build:deb)
set -euo pipefail
cd "$(dirname "$0")/.."
EXE=${1:-dist/tender}
OUT=${2:-dist}
[ -x "$EXE" ] || { echo "build-deb: $EXE missing (npm run build makes it)" >&2; exit 1; }
command -v dpkg-deb >/dev/null || { echo "build-deb: dpkg-deb not found (apt-get install dpkg)" >&2; exit 1; }
VERSION=$("$EXE" --version)
ARCH=$(dpkg --print-architecture)
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
chmod 0755 "$STAGE"

install -D -m 0755 "$EXE" "$STAGE/usr/bin/tender"
# /usr/lib: where systemd looks on merged and unmerged systems alike.
for unit in systemd/*.service; do
  dest="$STAGE/usr/lib/systemd/system/$(basename "$unit")"
  install -D -m 0644 "$unit" "$dest"
  sed -i 's|/usr/local/bin/tender|/usr/bin/tender|g' "$dest"
done
install -d "$STAGE/DEBIAN"
install -m 0755 installer/deb/preinst installer/deb/postinst installer/deb/prerm installer/deb/postrm "$STAGE/DEBIAN/"
cat >"$STAGE/DEBIAN/control" <<CONTROL
Package: tender
Version: $VERSION
Architecture: $ARCH
Maintainer: Tender maintainers <tender@invalid>
Section: admin
Priority: optional
Installed-Size: $(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
Depends: docker.io | docker-ce, libc6 (>= 2.28), libstdc++6 (>= 8), libgcc-s1
Description: ship-to-shore release and telemetry sync for vessel fleets
 The vessel agent and router (tender-agent.service, tender-router.service) and the shore hub
 (tender-hub.service), as one executable with Node.js inside.
CONTROL
mkdir -p "$OUT"
DEB="$OUT/tender_${VERSION}_${ARCH}.deb"
# gzip: every dpkg reads it (zstd needs dpkg 1.21.18); level 6: quicker than the default 9, the same 35 MB.
dpkg-deb --root-owner-group -Zgzip -z6 --build "$STAGE" "$DEB" >/dev/null
echo "built $DEB ($(du -h "$DEB" | cut -f1))"
