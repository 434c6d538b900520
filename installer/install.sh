#!/bin/sh
# Install Tender on this server from the `tender` executable beside this script (a USB stick, a copied
# folder): the executable installs itself. Every option is `tender install`'s:
#   sudo ./install.sh --file vessel.enrol              offline enrolment, no link needed
#   sudo ./install.sh --hub https://hub --token T      online enrolment
#   sudo ./install.sh                                   again, later: upgrade in place
#   sudo ./install.sh --uninstall [--purge]
#   sudo ./install.sh --hub-server --root root.json     the shore hub
# TENDER_EXECUTABLE=PATH names another executable than the one beside this script.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
exe=${TENDER_EXECUTABLE:-$here/tender}
fail() {
  echo "install.sh: $*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || fail "run it as root (sudo $0 $*)"
[ -f "$exe" ] || fail "$exe not found: put the tender executable beside this script (npm run build makes dist/tender)"
[ -x "$exe" ] || chmod 0755 "$exe" 2>/dev/null ||
  fail "$exe is not executable and cannot be made so (a noexec stick? copy it first)"
"$exe" --version >/dev/null 2>&1 ||
  fail "$exe does not run here (built for another machine than $(uname -m)? on a noexec mount?)"
exec "$exe" install "$@"
