#!/usr/bin/env bash
# Podium load benchmarks (docs/BENCHMARKS.md): starts a fresh `podium serve`
# pinned to one core for each scenario, runs the load tool pinned to the
# other, and keeps each run's table, JSON report and (PROFILE=1) a CPU
# profile of the server.
#
# usage: bench/run.sh [scenario...]      (default: all, in the order below)
#   scenarios: fanout50 fanout200 fanout500 lossy30 lessons10x20 whep200
#              satellite20 (1 Mbit/s, 3 % loss, 300 ms each way, 20 ms jitter)
#              lowband (150 kbit/s, 5 % loss, 60 ms: sound and stills; the
#              teacher's voice mono at 32 kbit/s, as a browser sends it)
#              tcp443 (serve --single-port; 20 classrooms with no UDP, over
#              ICE-TCP on the HTTP port, behind 2 Mbit/s, 0.5 % loss, 40 ms
#              +- 5 ms; the teacher stays on UDP)
#              tcp443-turn (the same relayed by the TURN over TCP of that port)
#              smoke (5 classrooms, to check the setup)
#              custom (the tool flags in $CUSTOM, e.g. CUSTOM="--classrooms 120")
#              restart50 (5 lessons x 10 classrooms rejoining by themselves,
#              --reconnect; the server is killed with SIGKILL RESTART_AFTER
#              seconds after the start and started again on the same port
#              and data dir: restart to first frame per classroom)
#              cascade2 (two cluster nodes with cascading against one node:
#              redis-server and two nodes, origin pinned to SERVER_CPU and
#              edge to EDGE_CPU, the tool unpinned; then the same classrooms
#              on one node alone, the usual way; CASCADE_N classrooms)
# environment:
#   DURATION=40s      measuring time per scenario (after the last join)
#   SERVER_CPU=0      core the server is pinned to
#   TOOL_CPU=1        core the load tool is pinned to
#   EDGE_CPU=1        cascade2: core the edge node is pinned to
#   CASCADE_TOOL_CPU= cascade2: cores the tool is pinned to (default: none,
#                     it shares both cores with the nodes)
#   CASCADE_N=300     cascade2: classrooms of the one teacher
#   RESTART_AFTER=15  restart50: seconds from the start to the kill
#   NODE_CPU_QUOTA=   cap every podium node at this many cores (e.g. 0.5),
#                     with a cpu cgroup (needs root; cgroup v1 or v2), so
#                     the tool keeps CPU when nodes and tool share 2 cores
#   OUT=bench/results directory for the reports
#   SERVER_ARGS=      more `podium serve` flags (e.g. --udp-unbatched, to
#                     compare sendto with the default sendmmsg batches)
#   RECEIVER=pion     how the tool's classrooms receive: pion (pion/webrtc's
#                     pipeline), or lean (the tool's own, at a third of the CPU per
#                     packet: the tool stays below the server at fanout200;
#                     scenarios with --link or --transport keep pion)
#   RECEIVE_CPU=      steer loopback's receive processing to this core (the
#                     tool's, e.g. 1) for the run (bench/rps.sh): the server's
#                     figures then leave out the classrooms' kernel receive
#                     work, as on a network; default: loopback as it is
#   PROFILE=1         take a CPU profile of the server in the steady phase from
#                     its /debug/pprof (OUT/<scenario>.cpu.pprof, top in .pprof.txt;
#                     PROFILE_DELAY=12 seconds after the start, DURATION/2 long)
set -euo pipefail

cd "$(dirname "$0")/.."
source bench/rps.sh
DURATION=${DURATION:-40s}
SERVER_CPU=${SERVER_CPU:-0}
TOOL_CPU=${TOOL_CPU:-1}
EDGE_CPU=${EDGE_CPU:-1}
CASCADE_N=${CASCADE_N:-300}
OUT=${OUT:-bench/results}
PORT=${PORT:-18080}
SECRET=${SECRET:-bench-secret-0123456789abcdef}
BIN=$(mktemp -d /tmp/podium-bench.XXXXXX)
mkdir -p "$OUT"

SERVER_PID=""
EDGE_PID=""
REDIS_PID=""
CGROUPS=()
cleanup() {
  for pid in "$SERVER_PID" "$EDGE_PID" "$REDIS_PID"; do
    if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  done
  for dir in "${CGROUPS[@]}"; do rmdir "$dir" 2>/dev/null || true; done
  rm -rf "$BIN"
  rps_stop
}
trap cleanup EXIT
rps_start

echo "building podium and the load tool..."
go build -o "$BIN/podium" ./cmd/podium
go build -o "$BIN/loadtest" ./bench/loadtest

# cap_cpu PID LABEL: with NODE_CPU_QUOTA set, move the process into its
# own cpu cgroup limited to that many cores (10 ms period, so the limit
# does not come as 100 ms stalls). The cgroup is removed at exit.
cap_cpu() {
  [[ -n "${NODE_CPU_QUOTA:-}" ]] || return 0
  local pid=$1 period=10000 quota dir
  quota=$(awk -v q="$NODE_CPU_QUOTA" -v p="$period" 'BEGIN { printf "%d", q * p }')
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    dir=/sys/fs/cgroup/podium-bench-$$-$2
    mkdir -p "$dir"
    echo "$quota $period" >"$dir/cpu.max"
  else
    dir=/sys/fs/cgroup/cpu/podium-bench-$$-$2
    mkdir -p "$dir"
    echo "$period" >"$dir/cpu.cfs_period_us"
    echo "$quota" >"$dir/cpu.cfs_quota_us"
  fi
  CGROUPS+=("$dir")
  echo "$pid" >"$dir/cgroup.procs"
}

# start_server NAME [keep]: a fresh server (keep: on the data dir of the
# last one, as a restart, its log appended).
start_server() {
  local name=$1
  if [[ "${2:-}" != keep ]]; then rm -rf "$BIN/data"; : >"$OUT/$name.server.log"; fi
  taskset -c "$SERVER_CPU" "$BIN/podium" serve \
    --http-addr "127.0.0.1:$PORT" --secret "$SECRET" --data-dir "$BIN/data" \
    --ice-udp-port 0 --ice-tcp-port -1 --bind-ip 127.0.0.1 --log-level warn \
    ${SERVER_ARGS:-} >>"$OUT/$name.server.log" 2>&1 &
  SERVER_PID=$!
  cap_cpu "$SERVER_PID" server
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "server did not become ready; see $OUT/$name.server.log" >&2
  return 1
}

# stop_pid PID: SIGTERM, then a goroutine dump (SIGQUIT) after 15 s.
stop_pid() {
  local pid=$1
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "process $pid did not stop within 15 s of SIGTERM; goroutine dump in its log" >&2
    kill -QUIT "$pid" 2>/dev/null || true
    sleep 1
  fi
  wait "$pid" 2>/dev/null || true
}

stop_server() {
  stop_pid "$SERVER_PID"
  SERVER_PID=""
}

# free_port FROM: the first loopback TCP port from FROM nobody listens on.
free_port() {
  local p
  for p in $(seq "$1" $(($1 + 200))); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  echo "no free port from $1" >&2
  return 1
}

wait_ready() { # URL LOG
  for _ in $(seq 1 100); do
    if curl -fsS "$1/readyz" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "$1 did not become ready; see $2" >&2
  return 1
}

# start_cluster NAME: redis-server on a free loopback port (its own
# directory, no persistence) and two podium nodes with cascading, flags as
# in cmd/podium's TestClusterThreeNodeCascade: the origin (region
# "origin", pinned to SERVER_CPU) on PORT and the edge (region "edge",
# pinned to EDGE_CPU) on the next free port. Unlike the test, the nodes
# keep the default heartbeat (2 s): with the test's 200 ms a node starved
# of CPU for 600 ms is declared dead and its lesson released mid-run.
start_cluster() {
  local name=$1 rport
  rport=$(free_port 16379)
  mkdir -p "$BIN/redis"
  redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$BIN/redis" --logfile "$BIN/redis/redis.log" &
  REDIS_PID=$!
  for _ in $(seq 1 50); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$rport") 2>/dev/null; then break; fi
    sleep 0.1
  done
  EDGE_PORT=$(free_port $((PORT + 1)))
  local node
  for node in origin edge; do
    local port=$PORT cpu=$SERVER_CPU
    if [[ $node == edge ]]; then port=$EDGE_PORT cpu=$EDGE_CPU; fi
    rm -rf "$BIN/data-$node"
    taskset -c "$cpu" "$BIN/podium" serve \
      --http-addr "127.0.0.1:$port" --secret "$SECRET" --data-dir "$BIN/data-$node" \
      --ice-udp-port 0 --ice-tcp-port -1 --bind-ip 127.0.0.1 --log-level warn \
      --cluster-redis "127.0.0.1:$rport" --cluster-node-id "$node" \
      --cluster-advertise-url "http://127.0.0.1:$port" --cluster-region "$node" \
      --cluster-key "$SECRET-cluster" \
      >"$OUT/$name.$node.log" 2>&1 &
    if [[ $node == edge ]]; then EDGE_PID=$!; else SERVER_PID=$!; fi
    cap_cpu "$!" "$node"
    wait_ready "http://127.0.0.1:$port" "$OUT/$name.$node.log"
  done
  # Both nodes registered (as the origin sees them) before anyone joins.
  for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$PORT/metrics" 2>/dev/null | grep -q '^podium_cluster_nodes 2$'; then return 0; fi
    sleep 0.1
  done
  echo "the origin does not see two cluster nodes; see $OUT/$name.*.log" >&2
  return 1
}

stop_cluster() {
  stop_pid "$EDGE_PID"; EDGE_PID=""
  stop_pid "$SERVER_PID"; SERVER_PID=""
  stop_pid "$REDIS_PID"; REDIS_PID=""
  rm -rf "$BIN/redis"
}

# run_cascade NAME ARGS...: one scenario over two cluster nodes; the
# teacher joins the origin, classrooms alternate between origin and edge.
run_cascade() {
  local name=$1; shift
  echo
  echo "=== $name: two nodes (origin on core $SERVER_CPU, edge on core $EDGE_CPU${NODE_CPU_QUOTA:+, each capped at $NODE_CPU_QUOTA cores}, tool on ${CASCADE_TOOL_CPU:-any core}): loadtest $* ==="
  start_cluster "$name"
  local pin=()
  if [[ -n "${CASCADE_TOOL_CPU:-}" ]]; then pin=(taskset -c "$CASCADE_TOOL_CPU"); fi
  "${pin[@]}" "$BIN/loadtest" \
    --server "http://127.0.0.1:$PORT" --region origin --server-pid "$SERVER_PID" \
    --edge "http://127.0.0.1:$EDGE_PORT,region=edge,pid=$EDGE_PID" \
    --secret "$SECRET" --lesson-prefix "$name" --duration "$DURATION" --json "$OUT/$name.json" "$@" \
    | tee "$OUT/$name.txt"
  stop_cluster
  reports+=("$OUT/$name.json")
}

# run NAME ARGS... : one scenario against a fresh server.
run() {
  local name=$1; shift
  echo
  echo "=== $name${NODE_CPU_QUOTA:+ (server capped at $NODE_CPU_QUOTA cores)}: loadtest $* ==="
  start_server "$name"
  local prof_pid=""
  if [[ "${PROFILE:-0}" == 1 ]]; then
    # A CPU profile of the steady phase from the server's own profiler:
    # start after the joins (the tool's --join-rate), sample half the
    # measuring time.
    local token secs
    token=$("$BIN/podium" token --secret "$SECRET" --room '*' --role admin --name bench)
    secs=$(( ${DURATION%s} / 2 ))
    (sleep "${PROFILE_DELAY:-12}" && curl -fsS -H "Authorization: Bearer $token" \
      -o "$OUT/$name.cpu.pprof" "http://127.0.0.1:$PORT/debug/pprof/profile?seconds=$secs") &
    prof_pid=$!
  fi
  local receiver=()
  if [[ "${RECEIVER:-pion}" != pion && " $* " != *" --link "* && " $* " != *" --transport "* ]]; then
    receiver=(--receiver "$RECEIVER")
  fi
  taskset -c "$TOOL_CPU" "$BIN/loadtest" \
    --server "http://127.0.0.1:$PORT" --secret "$SECRET" --server-pid "$SERVER_PID" \
    --lesson-prefix "$name" --duration "$DURATION" --json "$OUT/$name.json" "${receiver[@]}" "$@" \
    | tee "$OUT/$name.txt"
  if [[ -n "$prof_pid" ]]; then
    wait "$prof_pid" 2>/dev/null || true
    go tool pprof -top -cum -nodecount=60 "$BIN/podium" "$OUT/$name.cpu.pprof" \
      >"$OUT/$name.pprof.txt" 2>/dev/null || true
  fi
  stop_server
  reports+=("$OUT/$name.json")
}

# run_restart NAME ARGS...: one scenario whose classrooms and teachers
# rejoin by themselves (--reconnect); RESTART_AFTER seconds after the start
# the server is killed (SIGKILL, as a crash) and started again on the same
# port and data dir. The tool reads the server's cost from /metrics (the
# process id changes).
run_restart() {
  local name=$1; shift
  echo
  echo "=== $name: loadtest --reconnect $*; server killed and restarted after ${RESTART_AFTER:-15} s ==="
  start_server "$name"
  taskset -c "$TOOL_CPU" "$BIN/loadtest" \
    --server "http://127.0.0.1:$PORT" --secret "$SECRET" --reconnect \
    --lesson-prefix "$name" --duration "$DURATION" --json "$OUT/$name.json" "$@" \
    >"$OUT/$name.txt" 2>&1 &
  local tool=$!
  sleep "${RESTART_AFTER:-15}"
  echo "killing the server (SIGKILL) at $(date +%T.%N | cut -c1-12)"
  kill -9 "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  start_server "$name" keep
  echo "server ready again at $(date +%T.%N | cut -c1-12)"
  wait "$tool" || true
  cat "$OUT/$name.txt"
  stop_server
  reports+=("$OUT/$name.json")
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
    # Satellite schools (#16): 1 Mbit/s, 3 % loss, 300 ms each way, 20 ms jitter.
    satellite20)  run satellite20 --classrooms 20 --join-rate 10 --link "rate=1mbit,loss=3%,delay=300ms,jitter=20ms" ;;
    # Below the lowest layer (#16): 150 kbit/s, 5 % loss; sound and stills.
    lowband)      run lowband --classrooms 10 --join-rate 5 --audio voice --link "rate=150kbit,loss=5%,delay=60ms,jitter=10ms" ;;
    # Schools whose firewall lets only TCP 443 out (#16), on a county
    # network: the node in --single-port mode (HTTP, ICE-TCP and TURN over
    # TCP on its one port), classrooms with no UDP at all; the teacher
    # publishes over UDP. A variable set before a function call holds for
    # that call only, so the other scenarios keep their server flags.
    tcp443)       SERVER_ARGS="${SERVER_ARGS:-} --single-port" \
                  run tcp443 --classrooms 20 --join-rate 10 --transport tcp --link "rate=2mbit,loss=0.5%,delay=40ms,jitter=5ms" ;;
    tcp443-turn)  SERVER_ARGS="${SERVER_ARGS:-} --single-port" \
                  run tcp443-turn --classrooms 20 --join-rate 10 --transport turn-tcp --link "rate=2mbit,loss=0.5%,delay=40ms,jitter=5ms" ;;
    # Ten lessons at once, twenty classrooms each.
    lessons10x20) run lessons10x20 --lessons 10 --classrooms 20 --join-rate 40 ;;
    # The same fan-out through plain WHEP (comparable with other servers).
    whep200)      run whep200   --classrooms 200 --join-rate 40 --subscribe whep ;;
    # One teacher, CASCADE_N classrooms over two cluster nodes (half on
    # each), then the same on one node alone.
    cascade2)     run_cascade cascade2 --classrooms "$CASCADE_N" --join-rate 40
                  run cascade2-single  --classrooms "$CASCADE_N" --join-rate 40 ;;
    # A crash mid-lesson: 50 classrooms in 5 lessons rejoin by themselves.
    restart50)    run_restart restart50 --lessons 5 --classrooms 10 --join-rate 25 ;;
    *) echo "unknown scenario $1" >&2; return 2 ;;
  esac
}

if [[ $# -eq 0 ]]; then
  set -- fanout50 fanout200 fanout500 lossy30 lessons10x20
fi
reports=()
for s in "$@"; do scenario "$s"; done
echo
go run ./bench/summary "${reports[@]}" | tee "$OUT/summary.md"
echo "reports in $OUT/"
