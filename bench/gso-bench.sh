#!/usr/bin/env bash
# The agent's GSO path against the per-segment paths: iperf3 from a client namespace to a
# server namespace over one veth pair (the plain veth path), the real `labelwall agent` on the
# client and `labelwall verifier --hook input` on the server. Prints Gbit/s (median of RUNS
# runs of `iperf3 -t SECS -J`), the ratios the issue asks for, and CPU seconds per Gbit/s of
# each role (utime + stime of its processes from /proc/PID/stat, all threads; softirq work the
# kernel runs on a thread's way out of a system call counts for that thread: on one veth pair
# that is the receiving side's work too).
#
# Arms (profile v1 unless named):
#   unlabelled        no labelwall
#   agent-gso         agent, GSO path (the default)
#   agent-nogso       agent --no-gso: the kernel cuts, one queue trip per segment
#   agent-gso+verify  agent (GSO) and the verifier on the server, drop mode
#   compat-gso        agent --profile compat, GSO path
#   c-ref             /work/shared/bench/ref-labeler.c: compat labelling in C, one packet per
#                     recv and per verdict (MSS clamped to 1420 for it, as its README says)
#   unlabelled-4f, agent-gso-1q-4f, agent-gso-2q-4f
#                     4 flows (iperf3 -P 4, client ports 40000-40003), the agent with 1 and 2 queues
# Builds its own namespaces with unique names and always removes them (trap). Needs root.
# Usage: bench/gso-bench.sh [RUNS=3] [SECS=5]   env ARMS="unlabelled agent-gso ..." picks arms
set -euo pipefail
RUNS=${1:-3}
SECS=${2:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[ "$(id -u)" = 0 ] || { echo "gso-bench: needs root" >&2; exit 1; }
ARMS=${ARMS:-unlabelled agent-gso agent-nogso agent-gso+verify compat-gso c-ref unlabelled-4f agent-gso-1q-4f agent-gso-2q-4f}
LW=(node "$ROOT/bin/labelwall")

# shellcheck source=bench/veth-pair.sh
source "$ROOT/bench/veth-pair.sh"
pair_up gso-bench
# SPLIT=1: each namespace a host on its own CPU: the client side (iperf3 client, agent or
# ref-labeler) pinned to CPU 0, the server side (iperf3 server, verifier) to CPU 1, and each
# veth end's receive steered to its host's CPU (RPS), so the receiver's TCP no longer runs inside
# the sender's system call (veth's default), as it would not with two machines.
CPU_C=()
CPU_S=()
if [ "${SPLIT:-}" = 1 ]; then
  CPU_C=(taskset -c 0)
  CPU_S=(taskset -c 1)
  ip netns exec "$C" sh -c "echo 1 > /sys/class/net/${TAG}x/queues/rx-0/rps_cpus"
  ip netns exec "$S" sh -c "echo 2 > /sys/class/net/${TAG}y/queues/rx-0/rps_cpus"
fi
head -c32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$TMP/key"
chmod 600 "$TMP/key"
ip netns exec "$S" "${CPU_S[@]}" iperf3 -s -B "$IPS" -p 5201 >/dev/null 2>&1 &
PAIR_PIDS+=($!)
SERVER=$!
if [[ " $ARMS " == *" c-ref "* ]]; then
  gcc -O2 -o "$TMP/ref-labeler" /work/shared/bench/ref-labeler.c -lnetfilter_queue -lcrypto
fi
sleep 0.5

gbps() { node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));console.log(j.end&&j.end.sum_received?(j.end.sum_received.bits_per_second/1e9).toFixed(3):0)' "$1"; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# CPU ticks (utime + stime, all threads) of the processes whose pids are given.
ticks() { local t=0 p; for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo $t; }
HZ=$(getconf CLK_TCK)
# CPU seconds per Gbit moved: $1 ticks over the run, $2 Gbit/s of the run.
per_gbit() { awk -v t="$1" -v s="$SECS" -v g="$2" -v hz="$HZ" 'BEGIN{printf "%.3f", (g>0 ? t/hz/s/g : 0)}'; }

AGENT=
VERIFIER=
REF=
wait_rules() { # $1 namespace
  for _ in $(seq 100); do ip netns exec "$1" iptables-save 2>/dev/null | grep -q NFQUEUE && return 0; sleep 0.1; done
  echo "gso-bench: no NFQUEUE rule appeared in $1: $(tail -3 "$TMP"/*.log 2>/dev/null)" >&2
  exit 1
}
start_agent() { # agent flags...
  ip netns exec "$C" "${CPU_C[@]}" "${LW[@]}" agent --no-egress --key-file "$TMP/key" --control-socket "$TMP/agent.sock" --log-level warn "$@" >"$TMP/agent.log" 2>&1 &
  AGENT=$!
  PAIR_PIDS+=("$AGENT")
  wait_rules "$C"
}
start_verifier() {
  ip netns exec "$S" "${CPU_S[@]}" "${LW[@]}" verifier --hook input --action drop --key-file "$TMP/key" --control-socket "$TMP/verifier.sock" --log-level warn \
    --in-interface "${TAG}y" >"$TMP/verifier.log" 2>&1 &
  VERIFIER=$!
  PAIR_PIDS+=("$VERIFIER")
  wait_rules "$S"
}
start_ref() {
  ip netns exec "$C" iptables -A OUTPUT -p tcp -d "$IPS" -j NFQUEUE --queue-num 0
  ip netns exec "$C" iptables -t mangle -A PREROUTING -p tcp --tcp-flags SYN SYN -j TCPMSS --set-mss 1420
  ip netns exec "$C" "${CPU_C[@]}" "$TMP/ref-labeler" 0 "$(cat "$TMP/key")" >/dev/null 2>"$TMP/ref.err" &
  REF=$!
  PAIR_PIDS+=("$REF")
  sleep 0.5
}
stop_all() {
  local p
  for p in $AGENT $VERIFIER $REF; do
    kill -TERM "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
    pair_forget "$p"
  done
  if [ -n "$REF" ]; then
    ip netns exec "$C" iptables -F OUTPUT
    ip netns exec "$C" iptables -t mangle -F PREROUTING
  fi
  AGENT= VERIFIER= REF=
}
counters() { # $1 socket: the GSO counters and the verifier verdicts, one line
  "${LW[@]}" status --control-socket "$1" --json 2>/dev/null | node -e '
    const s=JSON.parse(require("fs").readFileSync(0,"utf8").split("\n")[0]);const c=s.counters||{};
    const keys=["labelled","gso_packets","gso_segments","oversize_cut","transmit_errors","segment_size_fallback","valid","invalid","unlabelled","malformed"];
    const q=(s.queues||[]).map(x=>"q"+x.queue+":"+x.received).join(" ");
    console.log("    "+s.role+": "+keys.filter(k=>k in c).map(k=>k+"="+c[k]).join(" ")+"  packets per queue: "+q);' || true
}

declare -A RESULT CPU
measure() { # $1 = arm name, $2 = iperf3 parallel flows
  local v=() cpu_agent=() cpu_ver=() cpu_recv=() load r ta tv ts
  load=$(cut -d' ' -f1 /proc/loadavg)
  for _ in $(seq "$RUNS"); do
    ta=$(ticks $AGENT $REF); tv=$(ticks $VERIFIER); ts=$(ticks $SERVER)
    # Several flows: client ports from 40000 (--cport), so the agent's port rule (bit 1 of the
    # source port) puts half of them on each of two queues; ports the kernel picks would spread
    # them by chance (four flows on one queue one time in eight).
    local cport=()
    [ "$2" = 1 ] || cport=(--cport 40000)
    ip netns exec "$C" "${CPU_C[@]}" iperf3 -c "$IPS" -p 5201 -t "$SECS" -P "$2" "${cport[@]}" -J >"$TMP/i.json" 2>&1 &
    wait $! || true
    r=$(gbps "$TMP/i.json")
    v+=("$r")
    cpu_agent+=("$(per_gbit $(($(ticks $AGENT $REF) - ta)) "$r")")
    cpu_ver+=("$(per_gbit $(($(ticks $VERIFIER) - tv)) "$r")")
    cpu_recv+=("$(per_gbit $(($(ticks $SERVER) - ts)) "$r")")
    [ "$r" != 0 ] || echo "    iperf3 failed: $(grep -m1 '"error"' "$TMP/i.json" || true)" >&2
  done
  RESULT[$1]=$(echo "${v[*]}" | median)
  CPU[$1]="labeller $(echo "${cpu_agent[*]}" | median)  verifier $(echo "${cpu_ver[*]}" | median)  iperf3 server $(echo "${cpu_recv[*]}" | median)"
  printf '%-18s flows=%s runs: %-24s median %6s Gbit/s  CPU s per Gbit: %s  (load avg before: %s)\n' "$1" "$2" "${v[*]}" "${RESULT[$1]}" "${CPU[$1]}" "$load"
}

echo "gso-bench: $(nproc) CPUs, kernel $(uname -r), node $(node --version), $RUNS x iperf3 -t $SECS, $(date -u +%FT%TZ)"
echo "congestion control $(ip netns exec "$C" sysctl -n net.ipv4.tcp_congestion_control), $(ip -n "$C" -o link show "${TAG}x" | grep -o 'qdisc [a-z_]*'), hosts on CPUs: ${SPLIT:-no}"
for arm in $ARMS; do
  case $arm in
    unlabelled) measure unlabelled 1 ;;
    unlabelled-4f) measure unlabelled-4f 4 ;;
    agent-gso) start_agent; measure agent-gso 1; counters "$TMP/agent.sock"; stop_all ;;
    agent-nogso) start_agent --no-gso; measure agent-nogso 1; counters "$TMP/agent.sock"; stop_all ;;
    agent-gso+verify) start_verifier; start_agent; measure agent-gso+verify 1; counters "$TMP/agent.sock"; counters "$TMP/verifier.sock"; stop_all ;;
    compat-gso) start_agent --profile compat; measure compat-gso 1; counters "$TMP/agent.sock"; stop_all ;;
    c-ref) start_ref; measure c-ref 1; stop_all ;;
    agent-gso-1q-4f) start_agent; measure agent-gso-1q-4f 4; counters "$TMP/agent.sock"; stop_all ;;
    agent-gso-2q-4f) start_agent --queues 2; measure agent-gso-2q-4f 4; counters "$TMP/agent.sock"; stop_all ;;
    *) echo "gso-bench: unknown arm $arm" >&2; exit 2 ;;
  esac
done

echo
ratio() { [ -n "${RESULT[$1]:-}" ] && [ -n "${RESULT[$2]:-}" ] && awk -v a="${RESULT[$1]}" -v b="${RESULT[$2]}" -v n="$1 / $2" 'BEGIN{printf "ratio %-34s %.2f\n", n, (b>0?a/b:0)}' || true; }
ratio agent-gso unlabelled
ratio agent-gso c-ref
ratio agent-gso+verify c-ref
ratio agent-gso agent-nogso
ratio compat-gso c-ref
ratio agent-gso-2q-4f unlabelled-4f
ratio agent-gso-2q-4f agent-gso-1q-4f
