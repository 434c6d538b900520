#!/usr/bin/env bash
# The main job on one machine: a shore hub, and a vessel (router + agent) with a Docker engine of its own
# (a second dockerd, as a ship has its own server) reaching the hub only through a simulated satellite
# link (512 kbit/s, 600 ms round trip). A sample release is published ashore, rolled out, downloaded over
# the link and served through the vessel's router; then an update, with the bytes it cost on the link
# against the image's size. State lives in ./demo-data; Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${TENDER_DEMO_DIR:-$PWD/demo-data}
LISTEN=${TENDER_DEMO_LISTEN:-127.0.0.1:8420}
APP_PORT=${TENDER_DEMO_APP_PORT:-8480}
CONSOLE=${TENDER_DEMO_CONSOLE:-127.0.0.1:8421}
LINK_PORT=${TENDER_DEMO_LINK_PORT:-8422}
LINK_KBIT=${TENDER_DEMO_LINK_KBIT:-512}
HUB="http://$LISTEN"
tender() { node "$PWD/bin/tender.js" "$@"; }
# Background processes are started as node itself, not through the function above: `$!` of a function run
# with & is a subshell, and stopping that leaves its node running.
TENDER=(node "$PWD/bin/tender.js")

# Ports in use are found before anything starts: what this prints at the end is what runs.
for hp in "$LISTEN" "$CONSOLE" "127.0.0.1:$APP_PORT" "127.0.0.1:$LINK_PORT"; do
  if ! node -e 'const [h,p]=process.argv[1].split(":");const s=require("net").createServer();s.once("error",()=>process.exit(1));s.listen(+p,h,()=>s.close())' "$hp"; then
    echo "port $hp is in use; set TENDER_DEMO_LISTEN, TENDER_DEMO_CONSOLE, TENDER_DEMO_APP_PORT or TENDER_DEMO_LINK_PORT" >&2
    exit 1
  fi
done

mkdir -p "$DATA"
[ -f "$DATA/keys/root.json" ] || tender keys init --out "$DATA/keys"
[ -f "$DATA/admin.token" ] || tender hub token create --data "$DATA/hub" --role admin --name demo >"$DATA/admin.token"
export TENDER_HUB="$HUB" TENDER_TOKEN
TENDER_TOKEN=$(cat "$DATA/admin.token")

pids=()
# Ctrl-C and SIGTERM stop everything the demo started: hub, router, agent and the app's containers.
VESSEL_ENGINE="$DATA/vessel-engine"
VESSEL_SOCK=""
VESSEL_BRIDGE=tdemo0
vdocker() { if [ -n "$VESSEL_SOCK" ]; then docker -H "unix://$VESSEL_SOCK" "$@"; else docker "$@"; fi; }
cleanup() {
  trap - EXIT INT TERM
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  ids=$(vdocker ps -aq --filter label=io.tender.vessel=demo-ship 2>/dev/null || true)
  [ -z "$ids" ] || vdocker rm -f $ids >/dev/null 2>&1 || true
  if [ -n "${engine_pid:-}" ]; then
    kill "$engine_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$engine_pid" 2>/dev/null || break; sleep 0.1; done
    ip link del "$VESSEL_BRIDGE" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"${TENDER[@]}" hub serve --data "$DATA/hub" --root "$DATA/keys/root.json" --listen "$LISTEN" >>"$DATA/hub.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do curl -fsS "$HUB/ready" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "$HUB/ready" >/dev/null || { echo "hub did not start; see $DATA/hub.log" >&2; exit 1; }

# The vessel's own Docker engine: a second dockerd with its own socket, data, bridge and address pool (a
# ship has its own server; images reach it only over the link). It needs root; without, the vessel shares
# this machine's engine and the demo says so.
if [ "$(id -u)" = 0 ] && command -v dockerd >/dev/null && [ -z "${TENDER_DEMO_ONE_ENGINE:-}" ]; then
  mkdir -p "$VESSEL_ENGINE"
  VESSEL_SOCK="$VESSEL_ENGINE/docker.sock"
  ip link show "$VESSEL_BRIDGE" >/dev/null 2>&1 || {
    ip link add "$VESSEL_BRIDGE" type bridge && ip addr add 10.231.255.1/24 dev "$VESSEL_BRIDGE"
  }
  ip link set "$VESSEL_BRIDGE" up
  dockerd --host "unix://$VESSEL_SOCK" --data-root "$VESSEL_ENGINE/data" --exec-root "$VESSEL_ENGINE/exec" \
    --pidfile "$VESSEL_ENGINE/docker.pid" --iptables=false --bridge="$VESSEL_BRIDGE" \
    --default-address-pool base=10.231.0.0/16,size=24 >>"$DATA/vessel-engine.log" 2>&1 &
  engine_pid=$!
  for _ in $(seq 1 100); do vdocker info >/dev/null 2>&1 && break; sleep 0.2; done
  vdocker info >/dev/null 2>&1 || { echo "the vessel's Docker engine did not start; see $DATA/vessel-engine.log" >&2; exit 1; }
else
  echo "note: not root (or TENDER_DEMO_ONE_ENGINE set): the vessel shares this machine's Docker engine" >&2
fi

# The satellite link between the vessel and the hub, counting its bytes (from zero each run).
rm -f "$DATA/link.json"
"$PWD/node_modules/.bin/tsx" scripts/demo-link.ts "$LINK_PORT" "$LISTEN" "$DATA/link.json" "$LINK_KBIT" 600 \
  >>"$DATA/link.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do [ -s "$DATA/link.json" ] && break; sleep 0.2; done
link_down() { node -e 'console.log(JSON.parse(require("fs").readFileSync(process.argv[1])).down)' "$DATA/link.json"; }

if [ ! -f "$DATA/vessel/agent.json" ]; then
  token=$(tender vessel add demo-ship --group demo --json | node -e 'process.stdin.on("data",d=>console.log(JSON.parse(d).token))')
  tender agent enroll --hub "http://127.0.0.1:$LINK_PORT" --token "$token" --config "$DATA/vessel/agent.json" \
    --data "$DATA/vessel/state" \
    --console-password demo --console-listen "$CONSOLE" --insecure-http
  # Demo speed: poll every 5 s; the router holds the app port on loopback only.
  node -e 'const f=process.argv[1],c=JSON.parse(require("fs").readFileSync(f));Object.assign(c,{pollIntervalSeconds:5,routerBind:"127.0.0.1"});require("fs").writeFileSync(f,JSON.stringify(c,null,2))' "$DATA/vessel/agent.json"
fi
"${TENDER[@]}" router run --config "$DATA/vessel/agent.json" >>"$DATA/router.log" 2>&1 &
pids+=($!)
# Only the vessel's processes and commands use the vessel's engine; publishing reads this machine's.
VESSEL_DOCKER="${VESSEL_SOCK:-/var/run/docker.sock}"
DOCKER_SOCKET="$VESSEL_DOCKER" "${TENDER[@]}" agent run --config "$DATA/vessel/agent.json" >>"$DATA/agent.log" 2>&1 &
pids+=($!)

# The sample releases: a busybox web server image built locally (no registry needed); 1.0.1 changes its page.
build_image() { # VERSION
  docker image inspect "tender-demo/portal:$1" >/dev/null 2>&1 && return
  command -v busybox >/dev/null || [ -x /bin/busybox ] || { [ "$(id -u)" = 0 ] && apt-get install -y busybox-static >/dev/null; } ||
    { echo "the sample image needs busybox-static: sudo apt-get install -y busybox-static" >&2; exit 1; }
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/www" && cp "$(command -v busybox || echo /bin/busybox)" "$root/bin/busybox"
  for a in sh httpd; do ln -s busybox "$root/bin/$a"; done
  echo "Smart Maintenance System portal, release $1" >"$root/www/index.html" && echo ok >"$root/www/health"
  # httpd -v logs each request: `tender logs` shows them ashore.
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh","-c","trap \"exit 0\" TERM; httpd -f -v -p 8080 -h /www & wait"]' - "tender-demo/portal:$1" >/dev/null
  rm -rf "$root"
}
release() { # VERSION: publish ashore and roll out (once), then wait for it through the vessel's router
  build_image "$1"
  sed "s/@VERSION@/$1/" >"$DATA/compose-$1.yml" <<YAML
name: sms
services:
  portal:
    image: tender-demo/portal:@VERSION@
    ports: ["$APP_PORT:8080"]
    x-tender:
      health: { http: /health, timeout: 30s }
YAML
  before=$(link_down)
  if tender release list | grep -q "$1"; then
    # A run before this one published it: say what serves now (the crew may hold an older release). The
    # containers were removed when that run stopped; the agent puts the live release's back (drift repair).
    for _ in $(seq 1 60); do curl -fsS "http://127.0.0.1:$APP_PORT/" >/dev/null 2>&1 && break; sleep 1; done
    echo "sms@$1: published in an earlier run; the vessel serves: $(curl -fsS "http://127.0.0.1:$APP_PORT/" 2>/dev/null || echo nothing yet)"
    return
  fi
  tender release publish --compose "$DATA/compose-$1.yml" --key "$(ls "$DATA"/keys/release-*.key | head -1)" --version "$1"
  tender rollout start "sms@$1" --target all >/dev/null
  echo "sms@$1: waiting for the vessel to download it over the link and switch..."
  for _ in $(seq 1 300); do
    curl -fsS "http://127.0.0.1:$APP_PORT/" 2>/dev/null | grep -q "release $1" && break
    sleep 1
  done
  size=$(docker image inspect --format '{{.Size}}' "tender-demo/portal:$1")
  echo "sms@$1: $(($(link_down) - before)) bytes came down the link; the image is $size bytes"
}
release 1.0.0
release 1.0.1

DOCKER_SOCKET="$VESSEL_DOCKER" tender status --config "$DATA/vessel/agent.json"
echo
echo "App through the router: http://127.0.0.1:$APP_PORT/  ($(curl -fsS "http://127.0.0.1:$APP_PORT/" 2>/dev/null || echo 'not answering yet'))"
echo "Crew console:           http://$CONSOLE/  (any user, password: demo)"
echo "Status page:            $HUB/  (sign in by pasting the token: $TENDER_TOKEN)"
echo "Logs: $DATA/*.log. Ctrl-C to stop."
echo
echo "In another shell (the vessel's commands read its own engine through DOCKER_SOCKET):"
echo "  export TENDER_AGENT_CONFIG=$DATA/vessel/agent.json TENDER_HUB=$HUB TENDER_TOKEN=$TENDER_TOKEN \\"
echo "    DOCKER_SOCKET=$VESSEL_DOCKER"
echo "  tender status; tender vessel list; tender logs --vessel demo-ship (ashore); tender logs (on board);"
echo "  tender rollback (on board, no link needed); alias tender='node $PWD/bin/tender.js' from a checkout"
if [ -z "${CI:-}" ] && command -v xdg-open >/dev/null 2>&1 && [ -n "${DISPLAY:-}" ]; then xdg-open "$HUB/" >/dev/null 2>&1 || true; fi
wait
