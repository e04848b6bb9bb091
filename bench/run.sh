#!/usr/bin/env bash
# Podium load benchmarks (docs/BENCHMARKS.md): starts a fresh `podium serve`
# pinned to one core for each scenario, runs the load tool pinned to the
# other, and keeps each run's table, JSON report and (PROFILE=1) a CPU
# profile of the server.
#
# usage: bench/run.sh [scenario...]      (default: all, in the order below)
#   scenarios: fanout50 fanout200 fanout500 lossy30 lessons10x20 whep200
#              smoke (5 classrooms, to check the setup)
#              custom (the tool flags in $CUSTOM, e.g. CUSTOM="--classrooms 120")
# environment:
#   DURATION=40s      measuring time per scenario (after the last join)
#   SERVER_CPU=0      core the server is pinned to
#   TOOL_CPU=1        core the load tool is pinned to
#   OUT=bench/results directory for the reports
#   PROFILE=1         record the server with `perf` during the run
#                     (perf report --stdio -i OUT/<scenario>.perf.data)
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION=${DURATION:-40s}
SERVER_CPU=${SERVER_CPU:-0}
TOOL_CPU=${TOOL_CPU:-1}
OUT=${OUT:-bench/results}
PORT=${PORT:-18080}
SECRET=${SECRET:-bench-secret-0123456789abcdef}
BIN=$(mktemp -d /tmp/podium-bench.XXXXXX)
mkdir -p "$OUT"

SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$BIN"
}
trap cleanup EXIT

echo "building podium and the load tool..."
go build -o "$BIN/podium" ./cmd/podium
go build -o "$BIN/loadtest" ./bench/loadtest

start_server() {
  local name=$1
  rm -rf "$BIN/data"
  taskset -c "$SERVER_CPU" "$BIN/podium" serve \
    --http-addr "127.0.0.1:$PORT" --secret "$SECRET" --data-dir "$BIN/data" \
    --ice-udp-port 0 --ice-tcp-port -1 --bind-ip 127.0.0.1 --log-level warn \
    >"$OUT/$name.server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "server did not become ready; see $OUT/$name.server.log" >&2
  return 1
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 150); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "server did not stop within 15 s of SIGTERM; goroutine dump in the server log" >&2
    kill -QUIT "$SERVER_PID" 2>/dev/null || true
    sleep 1
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# run NAME ARGS... : one scenario against a fresh server.
run() {
  local name=$1; shift
  echo
  echo "=== $name: loadtest $* ==="
  start_server "$name"
  local perf_pid=""
  if [[ "${PROFILE:-0}" == 1 ]]; then
    # Start sampling after the join phase has begun; stop with the run.
    perf record -F 199 -g -p "$SERVER_PID" -o "$OUT/$name.perf.data" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  taskset -c "$TOOL_CPU" "$BIN/loadtest" \
    --server "http://127.0.0.1:$PORT" --secret "$SECRET" --server-pid "$SERVER_PID" \
    --lesson-prefix "$name" --duration "$DURATION" --json "$OUT/$name.json" "$@" \
    | tee "$OUT/$name.txt"
  if [[ -n "$perf_pid" ]]; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    perf report --stdio --no-children -i "$OUT/$name.perf.data" 2>/dev/null \
      | grep -v '^#' | grep -v '^$' | head -60 >"$OUT/$name.perf.txt" || true
  fi
  stop_server
}

scenario() {
  case $1 in
    smoke)        run smoke     --classrooms 5   --join-rate 10 ;;
    custom)       run custom    $CUSTOM ;;
    # One 720p simulcast teacher (VP8 q/h/f + Opus) to many classrooms.
    fanout50)     run fanout50  --classrooms 50  --join-rate 25 ;;
    fanout200)    run fanout200 --classrooms 200 --join-rate 40 ;;
    fanout500)    run fanout500 --classrooms 500 --join-rate 50 ;;
    # Rural classrooms: 1 Mbit/s, 3 % loss, 40 ms +- 10 ms, 200 ms queue.
    lossy30)      run lossy30   --classrooms 30  --join-rate 10 --link "rate=1mbit,loss=3%,delay=40ms,jitter=10ms" ;;
    # Ten lessons at once, twenty classrooms each.
    lessons10x20) run lessons10x20 --lessons 10 --classrooms 20 --join-rate 40 ;;
    # The same fan-out through plain WHEP (comparable with other servers).
    whep200)      run whep200   --classrooms 200 --join-rate 40 --subscribe whep ;;
    *) echo "unknown scenario $1" >&2; return 2 ;;
  esac
}

if [[ $# -eq 0 ]]; then
  set -- fanout50 fanout200 fanout500 lossy30 lessons10x20
fi
reports=()
for s in "$@"; do scenario "$s"; reports+=("$OUT/$s.json"); done
echo
go run ./bench/summary "${reports[@]}" | tee "$OUT/summary.md"
echo "reports in $OUT/"
