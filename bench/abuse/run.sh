#!/bin/bash
# Measures what one viewer token and one address can take from a node:
# bash bench/abuse/run.sh <podium binary> <label> [serve flags] (docs/SECURITY.md).
# usage: abuse-run.sh <podium binary> <label> [extra serve flags]
bin=$1; label=$2; shift 2
d=$(mktemp -d); secret=abuse-secret-0123456789abcdef
(ulimit -n 1024; cd $d; exec $bin serve --http-addr 127.0.0.1:18080 --data-dir $d --secret $secret --ice-udp-port 0 --ice-tcp-port -1 --bind-ip 127.0.0.1 --record=false "$@" >$d/log 2>&1) &
sleep 3
pid=$(pgrep -f "serve --http-addr 127.0.0.1:18080" | head -1)
cd /work/main
timeout 300 go run ./cmd/podium loadtest --server http://127.0.0.1:18080 --secret $secret --publish whip --classrooms 1 --duration 240s --progress 0 >/dev/null 2>&1 &
lt=$!
sleep 20
tok=$($bin token --secret $secret --room loadtest-1 --role viewer --name attacker --ttl 1h 2>/dev/null)
echo "== $label (pid $pid)"
go run ./bench/abuse --server http://127.0.0.1:18080 --token "$tok" --lesson loadtest-1 --sessions 3000 --idle 1100 --pid $pid
kill $lt 2>/dev/null; kill $pid; wait 2>/dev/null
