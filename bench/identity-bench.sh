#!/usr/bin/env bash
# Attribution latency with IDLE idle processes x SOCKS sockets each (default 500 x 20).
# Usage: bash bench/identity-bench.sh [connections] [idle-processes] [sockets-each]
set -euo pipefail
cd "$(dirname "$0")/.."
conns=${1:-1000}; idle=${2:-500}; socks=${3:-20}
ns=lwib$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
idle_pid=
cleanup() {
  [ -n "$idle_pid" ] && kill "$idle_pid" 2>/dev/null && wait "$idle_pid" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
}
trap cleanup EXIT
[ -f dist/bench/identity-bench.js ] || npx tsc -p tsconfig.json
ip netns add "$ns"
ip netns exec "$ns" ip link set lo up
fifo=$(mktemp -u); mkfifo "$fifo"
# Idle holders: a parent forks $idle children holding $socks sockets each, until its stdin closes.
ip netns exec "$ns" /usr/bin/python3 bench/identity-idle.py "$idle" "$socks" < "$fifo" > "$fifo.out" &
idle_pid=$!
exec 9> "$fifo"
until grep -q ready "$fifo.out" 2>/dev/null; do sleep 0.2; done
echo "$(cat "$fifo.out"); processes on host: $(ls /proc | grep -c '^[0-9]'); kernel $(uname -r); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
ip netns exec "$ns" node dist/bench/identity-bench.js "$conns"
exec 9>&-
rm -f "$fifo" "$fifo.out"
