#!/usr/bin/env bash
# Availability under flood: a genuine labelled iperf3 flow pc -> srv through `labelwall agent`
# on pc and `labelwall verifier` (forward, drop, checking what comes from pc and uc) on mb,
# measured without and during a flood from uc of unlabelled and bad-MAC segments
# (bench/flood.c: AF_PACKET + sendmmsg, paced). Medians of RUNS runs each; prints the ratios,
# the flood rate that reached mb and the verifier's counters. Needs root; builds and removes
# its own namespaces (bench/topology.sh).
#
#   bench/flood-bench.sh                       # RUNS=3 SECS=5 FLOOD_PPS=400000 LABELLED=50
#   SPOOF=1 bench/flood-bench.sh               # also: the flood forges pc's source address
#   FLOOD_PPS=0 bench/flood-bench.sh           # as fast as the generator goes
#   LW_REPO=/tmp/lw-old bench/flood-bench.sh   # the labelwall of another checkout (built), for comparison
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
RUNS=${RUNS:-3}
SECS=${SECS:-5}
FLOOD_PPS=${FLOOD_PPS:-400000}
LABELLED=${LABELLED:-50}
SPOOF=${SPOOF:-0}
# Generator processes (each sends FLOOD_PPS / FLOOD_PROCS); one core of these machines does not
# reach 400k pps, because the receiving side's softirq work runs in the sender's context.
FLOOD_PROCS=${FLOOD_PROCS:-2}
LW_REPO=${LW_REPO:-$REPO}
LW=("$(command -v node)" "$LW_REPO/bin/labelwall")
OUT=$(mktemp -d /tmp/lw-flood-XXXXXX)
# shellcheck source=bench/topology.sh
source bench/topology.sh

[ -f dist/src/cli/main.js ] || { echo "build first: make setup" >&2; exit 2; }
gcc -O2 -o "$OUT/flood" bench/flood.c
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$OUT/key"
chmod 600 "$OUT/key"

pids=()
cleanup_procs() {
  # By process id only: `ip netns exec` execs the daemon, so $! is the daemon itself (SIGTERM:
  # it removes its rules). Generators left by an interrupted run die with topo_down.
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  pids=()
}
finish() { cleanup_procs; topo_down; rm -rf "$OUT"; }
trap finish EXIT
trap 'exit 130' INT TERM
wait_sock() { for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.1; done; echo "no $1" >&2; return 1; }

iperf_mbps() {
  in_ns pc timeout $((SECS + 20)) iperf3 -c "$IP4_SRV" -t "$SECS" -J 2>/dev/null |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);if(j.error){console.error(j.error);process.exit(1)}console.log((j.end.sum_received.bits_per_second/1e6).toFixed(1))})'
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
rx_packets() { in_ns mb cat "/sys/class/net/$IF_MB_UC/statistics/rx_packets"; }

# Our EXIT trap stops the daemons (SIGTERM) before the namespaces go, and removes $OUT.
TOPO_NO_TRAP=1 topo_up
in_ns srv iperf3 -s -D
ip netns exec "$NS_PC" "${LW[@]}" agent --key-file "$OUT/key" --control-socket "$OUT/agent.sock" --log-level warn &
pids+=($!)
ip netns exec "$NS_MB" "${LW[@]}" verifier --key-file "$OUT/key" --hook forward --in-interface "$IF_MB_PC" --in-interface "$IF_MB_UC" \
  --control-socket "$OUT/verifier.sock" --log-level error &
pids+=($!)
wait_sock "$OUT/agent.sock"
wait_sock "$OUT/verifier.sock"
sleep 0.5
MB_MAC=$(in_ns mb cat "/sys/class/net/$IF_MB_UC/address")

# flood_run SRC: one iperf3 run during a flood from uc with source address SRC; prints
# "MBIT PPS_SENT PPS_AT_MB".
flood_run() {
  local src=$1 rx0 rx1 t0 t1 mbit res
  rx0=$(rx_packets); t0=$(date +%s.%N)
  local fpids=() i
  for i in $(seq "$FLOOD_PROCS"); do
    in_ns uc "$OUT/flood" "$IF_UC" "$MB_MAC" "$src" "$IP4_SRV" 5201 $((FLOOD_PPS / FLOOD_PROCS)) $((SECS + 2)) "$LABELLED" >"$OUT/flood.$i.json" &
    fpids+=($!)
  done
  sleep 1
  mbit=$(iperf_mbps) || mbit=0
  for i in "${fpids[@]}"; do wait "$i" || true; done
  rx1=$(rx_packets); t1=$(date +%s.%N)
  res=$(node -e 'let t=0;for(const f of process.argv.slice(1))t+=JSON.parse(require("fs").readFileSync(f,"utf8")).pps;process.stdout.write(String(t))' "$OUT"/flood.*.json)
  echo "$mbit $res $(awk -v a="$rx0" -v b="$rx1" -v s="$t0" -v e="$t1" -v f="$((SECS + 2))" 'BEGIN { printf "%.0f", (b - a) / f }')"
  # Let the suspect listing of the flood's source expire between runs (SUSPECT_SECONDS = 10).
  sleep 11
}

# Each run measures "before" and then the flood(s) right after it, so that every ratio pairs
# figures taken under the same load of the shared machine; the medians are over the runs.
echo "== genuine labelled flow pc -> srv, agent + verifier; flood from uc at $FLOOD_PPS pps ($FLOOD_PROCS generators, $LABELLED % bad-MAC, rest unlabelled); iperf3 -t $SECS, $RUNS runs"
echo "   load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
names=("during flood (from uc)")
srcs=("$IP4_UC")
if [ "$SPOOF" = 1 ]; then names+=("during spoofed flood (pc)"); srcs+=("$IP4_PC"); fi
before=()
declare -A V S R Q
for run in $(seq "$RUNS"); do
  b=$(iperf_mbps || echo 0)
  before+=("$b")
  for k in "${!names[@]}"; do
    read -r a f m <<<"$(flood_run "${srcs[$k]}")"
    V[$k]="${V[$k]:-} $a"; S[$k]="${S[$k]:-} $f"; R[$k]="${R[$k]:-} $m"; Q[$k]="${Q[$k]:-} $(ratio "$a" "$b")"
  done
  echo "   run $run done, load average $(cut -d' ' -f1-3 /proc/loadavg)"
done
printf '  %-26s %8s Mbit/s  (runs: %s)\n' "before" "$(echo "${before[*]}" | median)" "${before[*]}"
for k in "${!names[@]}"; do
  printf '  %-26s %8s Mbit/s  (runs:%s)  flood sent %s pps, reaching mb %s pps (medians)\n' "${names[$k]}" "$(echo "${V[$k]}" | median)" "${V[$k]}" \
    "$(echo "${S[$k]}" | median)" "$(echo "${R[$k]}" | median)"
  echo "  ratio ${names[$k]} / before: median $(echo "${Q[$k]}" | median) (runs:${Q[$k]})"
done
echo "   load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== verifier counters"
"${LW[@]}" status --control-socket "$OUT/verifier.sock" | sed 's/^/  /'
