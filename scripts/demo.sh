#!/usr/bin/env bash
# The main job on one machine: a shore hub and an enrolled vessel agent on 127.0.0.1, with the status page
# URL printed (a one-click sign-in link). State lives in ./demo-data; Ctrl-C stops both processes.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${TENDER_DEMO_DIR:-$PWD/demo-data}
LISTEN=${TENDER_DEMO_LISTEN:-127.0.0.1:8420}
HUB="http://$LISTEN"
tender() { node "$PWD/bin/tender.js" "$@"; }

mkdir -p "$DATA"
[ -f "$DATA/keys/root.json" ] || tender keys init --out "$DATA/keys"
[ -f "$DATA/admin.token" ] || tender hub token create --data "$DATA/hub" --role admin --name demo >"$DATA/admin.token"
export TENDER_HUB="$HUB" TENDER_TOKEN
TENDER_TOKEN=$(cat "$DATA/admin.token")

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

tender hub serve --data "$DATA/hub" --root "$DATA/keys/root.json" --listen "$LISTEN" >>"$DATA/hub.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do curl -fsS "$HUB/ready" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "$HUB/ready" >/dev/null || { echo "hub did not start; see $DATA/hub.log" >&2; exit 1; }

if [ ! -f "$DATA/vessel/agent.json" ]; then
  token=$(tender vessel add demo-ship --group demo --json | node -e 'process.stdin.on("data",d=>console.log(JSON.parse(d).token))')
  tender agent enroll --hub "$HUB" --token "$token" --config "$DATA/vessel/agent.json" --data "$DATA/vessel/state"
fi
tender agent run --config "$DATA/vessel/agent.json" >>"$DATA/agent.log" 2>&1 &
pids+=($!)

sleep 2
tender status --config "$DATA/vessel/agent.json"
echo
echo "Status page: $HUB/login?token=$TENDER_TOKEN"
echo "Logs: $DATA/hub.log, $DATA/agent.log. Ctrl-C to stop."
if [ -z "${CI:-}" ] && command -v xdg-open >/dev/null 2>&1 && [ -n "${DISPLAY:-}" ]; then xdg-open "$HUB/login?token=$TENDER_TOKEN" >/dev/null 2>&1 || true; fi
wait
