#!/usr/bin/env bash
# The demo: a Socket.IO app (namespaces /, /chat, /notifications, admin-ui instrumented)
# with simulated users coming and going, the exporter running with ./config.toml, and a
# live view of what /metrics says next to what the app itself counts. Ctrl-C stops all.
#
# Ports: the app on 127.0.0.1:3000 (as config.toml expects), /metrics on 127.0.0.1:8797.
# DEMO_SECONDS=N stops the demo after N seconds (used by the tests).
set -euo pipefail
cd "$(dirname "$0")/../.."

APP_PORT=3000
EXPORTER=127.0.0.1:8797
export SOCKETIO_ADMIN_PASSWORD=${SOCKETIO_ADMIN_PASSWORD:-changeit}
LOGS=$(mktemp -d)

scripts/setup node
# The first build compiles every dependency: say so, and let cargo show its progress.
echo "demo: building the exporter (the first build takes 2-3 minutes; later ones seconds)..."
cargo build --locked
echo "demo: starting the app on 127.0.0.1:$APP_PORT and the exporter on $EXPORTER"

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "demo stopped; logs in $LOGS"
}
trap stop INT TERM EXIT

for port in "$APP_PORT" "${EXPORTER#*:}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use: stop what runs there and try again" >&2
    exit 1
  fi
done

node tests/app/demo.js --port "$APP_PORT" 2>"$LOGS/app.log" &
pids+=($!)
target/debug/socketio-exporter --config config.toml --listen "$EXPORTER" 2>"$LOGS/exporter.log" &
pids+=($!)

# GET with bash alone, so the demo needs no curl: prints the response body.
http_get() {
  local host=${1%:*} port=${1#*:} path=$2
  exec 3<>"/dev/tcp/$host/$port" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$1" >&3
  sed '1,/^\r$/d' <&3
  exec 3<&-
}

view() {
  local metrics truth
  metrics=$(http_get "$EXPORTER" /metrics 2>/dev/null) || metrics=""
  truth=$(http_get "127.0.0.1:$APP_PORT" /truth 2>/dev/null) || truth="{}"
  printf 'socketio-exporter demo: http://%s/metrics   (Ctrl-C to stop)\n\n' "$EXPORTER"
  printf '%-18s %14s %14s\n' namespace "/metrics says" "app right now"
  awk -v truth="$truth" '
    /^websocket_connections\{/ {
      match($0, /namespace="[^"]*"/); ns = substr($0, RSTART + 11, RLENGTH - 12)
      n = $NF; app = "-"
      if (match(truth, "\"" ns "\":[0-9]+")) { app = substr(truth, RSTART + length(ns) + 3, RLENGTH - length(ns) - 3) }
      printf "%-18s %14s %14s\n", ns, n, app; found = 1
    }
    /^websocket_clients\{/ { clients = $NF }
    /^socketio_exporter_source_up\{/ { up = $NF }
    END {
      if (!found) print "(no connection series: the source is not up yet, so nothing is claimed)"
      printf "\nengine clients (incl. the exporter): %s   source up: %s\n", clients == "" ? "-" : clients, up == "" ? "-" : up
      print "(/metrics trails the app by up to 2 s: admin-ui reports every 2 s, and the exporter publishes each report at once)"
    }' <<<"$metrics"
}

deadline=$(( ${DEMO_SECONDS:-0} > 0 ? SECONDS + DEMO_SECONDS : 0 ))
while [ "$deadline" -eq 0 ] || [ "$SECONDS" -lt "$deadline" ]; do
  sleep 2
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "a demo process exited; see $LOGS" >&2; exit 1; }
  done
  if [ -t 1 ]; then clear; fi
  view
  echo
done
