#!/usr/bin/env bash
# Throughput of the live datapath, every figure against a baseline measured in the same run:
# iperf3 from pc to srv through mb (bench/topology.sh), in these configurations:
#   baseline        no labelling, no verifying
#   agent           `labelwall agent` on pc
#   agent+verifier  agent on pc, `labelwall verifier` (forward, drop) on mb
#   ref-labeler     the per-packet C labeller of shared/bench (libnetfilter_queue) on pc
# each RUNS times (median reported), first unshaped, then with mb->srv shaped to 1 Gbit/s
# (tc tbf), as in the paper's setup. Needs root; builds and removes its own namespaces.
#
#   bench/datapath-bench.sh                 # RUNS=3 SECS=5 QUEUES=2
#   RUNS=5 SECS=10 QUEUES=1 bench/datapath-bench.sh
#   PARALLEL=4 bench/datapath-bench.sh      # iperf3 -P 4: four flows (spread over the queues)
# The compat profile erases window scaling, so one labelled flow never has more than 64 KiB
# in flight: its throughput is 64 KiB / RTT, and every queue on the path adds to the RTT.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
RUNS=${RUNS:-3}
SECS=${SECS:-5}
QUEUES=${QUEUES:-2}
PARALLEL=${PARALLEL:-1}
SHARED=${SHARED:-$REPO/../shared}
LW=("$(command -v node)" "$REPO/bin/labelwall")
OUT=$(mktemp -d /tmp/lw-bench-XXXXXX)
# shellcheck source=bench/topology.sh
source bench/topology.sh

[ -f dist/src/cli/main.js ] || { echo "build first: make setup" >&2; exit 2; }

REF=""
if [ -f "$SHARED/bench/ref-labeler.c" ]; then
  REF=$OUT/ref-labeler
  gcc -O2 -o "$REF" "$SHARED/bench/ref-labeler.c" -lnetfilter_queue -lcrypto
else
  echo "note: $SHARED/bench/ref-labeler.c not found; the C baseline is left out" >&2
fi
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$OUT/key"
chmod 600 "$OUT/key"

pids=()
# `ip netns exec` may stay as the parent of the daemon: stop the daemons themselves (SIGTERM,
# so they remove their rules) by their unique control socket, then reap the background jobs.
cleanup_procs() {
  pkill -TERM -f -- "--control-socket $OUT/" 2>/dev/null || true
  pkill -TERM -f -- "$OUT/ref-labeler" 2>/dev/null || true
  for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  pids=()
}
finish() { cleanup_procs; topo_down; rm -rf "$OUT"; }
trap finish EXIT
trap 'exit 130' INT TERM

wait_sock() { for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.1; done; echo "no $1" >&2; return 1; }

start_agent() {
  in_ns pc "${LW[@]}" agent --key-file "$OUT/key" --queues "$QUEUES" --control-socket "$OUT/agent.sock" --log-level warn &
  pids+=($!)
  wait_sock "$OUT/agent.sock"
}
start_verifier() {
  in_ns mb "${LW[@]}" verifier --key-file "$OUT/key" --hook forward --in-interface "$IF_MB_PC" --queues "$QUEUES" \
    --control-socket "$OUT/verifier.sock" --log-level warn &
  pids+=($!)
  wait_sock "$OUT/verifier.sock"
}
start_ref() {
  in_ns pc iptables -A OUTPUT -p tcp -d "$IP4_SRV" -j NFQUEUE --queue-num 0
  in_ns pc iptables -t mangle -A PREROUTING -p tcp --tcp-flags SYN SYN -j TCPMSS --set-mss 1420
  in_ns pc "$REF" 0 "$(cat "$OUT/key")" >/dev/null 2>&1 &
  pids+=($!)
  sleep 0.5
}
stop_ref() {
  cleanup_procs
  in_ns pc iptables -D OUTPUT -p tcp -d "$IP4_SRV" -j NFQUEUE --queue-num 0
  in_ns pc iptables -t mangle -D PREROUTING -p tcp --tcp-flags SYN SYN -j TCPMSS --set-mss 1420
}

# One iperf3 run; prints Gbit/s received.
iperf_gbps() {
  # Bounded: the C reference labeller exits on its first receive error (socket overrun with
  # several flows), after which nothing passes the queue and iperf3 would wait forever.
  in_ns pc timeout $((SECS + 20)) iperf3 -c "$IP4_SRV" -t "$SECS" -P "$PARALLEL" -J 2>/dev/null |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);if(j.error){console.error(j.error);process.exit(1)}console.log((j.end.sum_received.bits_per_second/1e9).toFixed(3))})'
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# measure NAME SETUP TEARDOWN: RUNS runs, records the median in RESULT[NAME]
declare -A RESULT
measure() {
  local name=$1 setup=$2 teardown=$3 vals=() v
  $setup
  for _ in $(seq "$RUNS"); do
    v=$(iperf_gbps) || v=0
    vals+=("$v")
  done
  $teardown
  RESULT[$name]=$(echo "${vals[*]}" | median)
  printf '  %-16s %s Gbit/s  (runs: %s)\n' "$name" "${RESULT[$name]}" "${vals[*]}"
}
noop() { :; }
agent_up() { start_agent; }
both_up() { start_agent; start_verifier; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

run_suite() {
  local label=$1
  shift
  topo_up "$@"
  in_ns srv iperf3 -s -D
  sleep 0.3
  echo "== $label (iperf3 -t $SECS -P $PARALLEL, $RUNS runs each, $QUEUES queue(s))"
  measure baseline noop noop
  measure agent agent_up cleanup_procs
  measure agent+verifier both_up cleanup_procs
  if [ -n "$REF" ]; then measure ref-labeler start_ref stop_ref; fi
  echo "  ratios: agent/baseline $(ratio "${RESULT[agent]}" "${RESULT[baseline]}")," \
    "agent+verifier/baseline $(ratio "${RESULT[agent+verifier]}" "${RESULT[baseline]}")"
  if [ -n "$REF" ]; then
    echo "          agent/ref-labeler $(ratio "${RESULT[agent]}" "${RESULT[ref-labeler]}")," \
      "agent+verifier/ref-labeler $(ratio "${RESULT[agent+verifier]}" "${RESULT[ref-labeler]}")," \
      "ref-labeler/baseline $(ratio "${RESULT[ref-labeler]}" "${RESULT[baseline]}")"
  fi
  topo_down
}

run_suite "unshaped veth"
run_suite "mb->srv shaped to 1 Gbit/s (tbf)" --shape 1gbit
