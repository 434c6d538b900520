#!/usr/bin/env bash
# The main job on one machine: a shore hub, an enrolled vessel (router + agent) on 127.0.0.1, a sample
# release published, rolled out and serving through the router, and the status page URL printed (a
# one-click sign-in link). State lives in ./demo-data; Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${TENDER_DEMO_DIR:-$PWD/demo-data}
LISTEN=${TENDER_DEMO_LISTEN:-127.0.0.1:8420}
APP_PORT=${TENDER_DEMO_APP_PORT:-8480}
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
  tender agent enroll --hub "$HUB" --token "$token" --config "$DATA/vessel/agent.json" --data "$DATA/vessel/state" \
    --console-password demo --console-listen 127.0.0.1:8421
  # Demo speed: poll every 5 s; the router holds the app port on loopback only.
  node -e 'const f=process.argv[1],c=JSON.parse(require("fs").readFileSync(f));Object.assign(c,{pollIntervalSeconds:5,routerBind:"127.0.0.1"});require("fs").writeFileSync(f,JSON.stringify(c,null,2))' "$DATA/vessel/agent.json"
fi
tender router run --config "$DATA/vessel/agent.json" >>"$DATA/router.log" 2>&1 &
pids+=($!)
tender agent run --config "$DATA/vessel/agent.json" >>"$DATA/agent.log" 2>&1 &
pids+=($!)

# A sample release: a busybox web server image built locally (no registry needed).
if ! docker image inspect tender-demo/portal:1.0.0 >/dev/null 2>&1; then
  command -v busybox >/dev/null || [ -x /bin/busybox ] || { [ "$(id -u)" = 0 ] && apt-get install -y busybox-static >/dev/null; } ||
    { echo "the sample image needs busybox-static: sudo apt-get install -y busybox-static" >&2; exit 1; }
  root=$(mktemp -d)
  mkdir -p "$root/bin" "$root/www" && cp "$(command -v busybox || echo /bin/busybox)" "$root/bin/busybox"
  for a in sh httpd; do ln -s busybox "$root/bin/$a"; done
  echo "Smart Maintenance System portal, release 1.0.0" >"$root/www/index.html" && echo ok >"$root/www/health"
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh","-c","trap \"exit 0\" TERM; httpd -f -p 8080 -h /www & wait"]' - tender-demo/portal:1.0.0 >/dev/null
  rm -rf "$root"
fi
cat >"$DATA/compose.yml" <<YAML
name: sms
services:
  portal:
    image: tender-demo/portal:1.0.0
    ports: ["$APP_PORT:8080"]
    x-tender:
      health: { http: /health, timeout: 30s }
YAML
if ! tender release list | grep -q '1.0.0'; then
  tender release publish --compose "$DATA/compose.yml" --key "$(ls "$DATA"/keys/release-*.key | head -1)" --version 1.0.0
  tender rollout start 1.0.0 --target all
fi
for _ in $(seq 1 60); do curl -fsS "http://127.0.0.1:$APP_PORT/" >/dev/null 2>&1 && break; sleep 1; done

tender status --config "$DATA/vessel/agent.json"
echo
echo "App through the router: http://127.0.0.1:$APP_PORT/  ($(curl -fsS "http://127.0.0.1:$APP_PORT/" 2>/dev/null || echo 'not answering yet'))"
echo "Crew console:           http://127.0.0.1:8421/  (any user, password: demo)"
echo "Status page:            $HUB/login?token=$TENDER_TOKEN"
echo "Logs: $DATA/*.log. Ctrl-C to stop."
if [ -z "${CI:-}" ] && command -v xdg-open >/dev/null 2>&1 && [ -n "${DISPLAY:-}" ]; then xdg-open "$HUB/login?token=$TENDER_TOKEN" >/dev/null 2>&1 || true; fi
wait
