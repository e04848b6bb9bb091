#!/usr/bin/env bash
# Podium and MediaMTX side by side on the same WHIP/WHEP workload (#15): a
# synthetic teacher publishes H.264 360p + Opus over WHIP, N classrooms
# watch over WHEP, with the same load tool (`podium loadtest`). Each server
# runs alone, pinned to SERVER_CPU, the tool to TOOL_CPU; the two alternate
# ROUNDS times so that drift of the machine hits both. Podium runs with
# --record=false, as MediaMTX records nothing here.
#
# MediaMTX is built from its module (Go module proxy) at MTX_VERSION: its
# source needs internal/core/VERSION and internal/servers/hls/hls.min.js,
# which its release process generates; hls.min.js is taken from Podium's
# own vendored copy (clients/web/vendor). The binary is kept in MTX_DIR.
#
# usage: bench/peers.sh
# environment:
#   CLASSROOMS=200  DURATION=30s  ROUNDS=3  SERVER_CPU=0  TOOL_CPU=1
#   MTX_VERSION=v1.15.3  MTX_DIR=/tmp/podium-mediamtx-$MTX_VERSION
#   OUT=bench/results/peers   SERVER_ARGS= (more `podium serve` flags)
#   RECEIVE_CPU=      steer loopback's receive processing to this core (the
#                     tool's, e.g. 1) for the run (bench/rps.sh): the server's
#                     figures then leave out the classrooms' kernel receive
#                     work, as on a network; default: loopback as it is
#   RECEIVER=pion     how the tool's classrooms receive: pion, or lean (the
#                     tool's own receive path, at a third of its CPU per packet)
set -euo pipefail

cd "$(dirname "$0")/.."
source bench/rps.sh
CLASSROOMS=${CLASSROOMS:-200}
DURATION=${DURATION:-30s}
ROUNDS=${ROUNDS:-3}
RECEIVER=${RECEIVER:-pion}
SERVER_CPU=${SERVER_CPU:-0}
TOOL_CPU=${TOOL_CPU:-1}
MTX_VERSION=${MTX_VERSION:-v1.15.3}
MTX_DIR=${MTX_DIR:-/tmp/podium-mediamtx-$MTX_VERSION}
OUT=${OUT:-bench/results/peers}
PORT=${PORT:-18280}
MTX_HTTP=${MTX_HTTP:-18889}
MTX_UDP=${MTX_UDP:-18189}
SECRET=${SECRET:-bench-secret-0123456789abcdef}
BIN=$(mktemp -d /tmp/podium-peers.XXXXXX)
mkdir -p "$OUT" "$MTX_DIR"

SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$BIN"
  rps_stop
}
trap cleanup EXIT
rps_start

echo "building podium and the load tool..."
go build -o "$BIN/podium" ./cmd/podium
go build -o "$BIN/loadtest" ./bench/loadtest

if [[ ! -x "$MTX_DIR/mediamtx" ]]; then
  echo "building MediaMTX $MTX_VERSION from its module..."
  mod=$(cd "$BIN" && GOFLAGS=-mod=mod go mod download -json "github.com/bluenviron/mediamtx@$MTX_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  rm -rf "$MTX_DIR/src"
  cp -r "$mod" "$MTX_DIR/src"
  chmod -R u+w "$MTX_DIR/src"
  echo "$MTX_VERSION" >"$MTX_DIR/src/internal/core/VERSION"
  cp clients/web/vendor/hls.min.js "$MTX_DIR/src/internal/servers/hls/hls.min.js"
  (cd "$MTX_DIR/src" && go build -o "$MTX_DIR/mediamtx" .)
fi

# MediaMTX: WebRTC only, on loopback, anyone may publish and read.
cat >"$BIN/mediamtx.yml" <<EOF
logLevel: warn
api: no
metrics: no
pprof: no
playback: no
rtsp: no
rtmp: no
hls: no
srt: no
webrtc: yes
webrtcAddress: 127.0.0.1:$MTX_HTTP
webrtcLocalUDPAddress: 127.0.0.1:$MTX_UDP
webrtcLocalTCPAddress: ''
webrtcIPsFromInterfaces: no
webrtcAdditionalHosts: [127.0.0.1]
authMethod: internal
authInternalUsers:
- user: any
  pass:
  ips: []
  permissions:
  - action: publish
  - action: read
paths:
  all_others:
EOF

wait_http() {
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null "$1"; then return 0; fi
    sleep 0.1
  done
  echo "$1 did not answer" >&2
  return 1
}

tool() {
  local name=$1; shift
  taskset -c "$TOOL_CPU" "$BIN/loadtest" --classrooms "$CLASSROOMS" --join-rate 40 --duration "$DURATION" \
    --publish whip --subscribe whep --codec h264 --receiver "$RECEIVER" --server-pid "$SERVER_PID" \
    --lesson-prefix "$name" --json "$OUT/$name.json" "$@" >"$OUT/$name.txt" 2>&1 || true
  tail -3 "$OUT/$name.txt" | head -1
}

run_podium() {
  local name=$1
  rm -rf "$BIN/data"
  taskset -c "$SERVER_CPU" "$BIN/podium" serve --http-addr "127.0.0.1:$PORT" --secret "$SECRET" \
    --data-dir "$BIN/data" --ice-udp-port 0 --ice-tcp-port -1 --bind-ip 127.0.0.1 --log-level warn \
    --record=false ${SERVER_ARGS:-} >"$OUT/$name.server.log" 2>&1 &
  SERVER_PID=$!
  wait_http "http://127.0.0.1:$PORT/readyz"
  tool "$name" --server "http://127.0.0.1:$PORT" --secret "$SECRET"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
}

run_mediamtx() {
  local name=$1
  taskset -c "$SERVER_CPU" "$MTX_DIR/mediamtx" "$BIN/mediamtx.yml" >"$OUT/$name.server.log" 2>&1 &
  SERVER_PID=$!
  wait_http "http://127.0.0.1:$MTX_HTTP/"
  tool "$name" --server "http://127.0.0.1:$MTX_HTTP" --bearer any --metrics-url - \
    --whip-url "http://127.0.0.1:$MTX_HTTP/{lesson}/whip" --whep-url "http://127.0.0.1:$MTX_HTTP/{lesson}/whep"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
}

for r in $(seq 1 "$ROUNDS"); do
  echo "round $r: podium"; run_podium "podium-$r"
  echo "round $r: mediamtx"; run_mediamtx "mediamtx-$r"
done

# One line per run and the medians: server CPU per receiving classroom.
python3 - "$OUT" "$ROUNDS" <<'EOF'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = {}
print("| run | receiving / started | video kbit/s p50 | loss after NACK mean % | server cores | server CPU per classroom (% of a core) |")
print("|---|---|---|---|---|---|")
for server in ("podium", "mediamtx"):
    for r in range(1, rounds + 1):
        try:
            d = json.load(open(f"{out}/{server}-{r}.json"))
        except (OSError, ValueError):
            print(f"| {server}-{r} | no report | | | | |")
            continue
        cores, n = d["server"]["cpuCores"], d["receivingVideo"]
        per = 100 * cores / n if n else float("nan")
        rows.setdefault(server, []).append(per)
        print(f"| {server}-{r} | {n} / {d['classrooms']} | {d['videoKbps']['p50']:.0f} | {d['videoLossPct']['mean']:.3f} | {cores:.2f} | {per:.3f} |")
if len(rows) == 2:
    p, m = statistics.median(rows["podium"]), statistics.median(rows["mediamtx"])
    print(f"\nmedian CPU per classroom: podium {p:.3f} %, mediamtx {m:.3f} % of a core: podium/mediamtx = {p / m:.2f}")
EOF
