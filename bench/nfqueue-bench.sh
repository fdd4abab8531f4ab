#!/usr/bin/env bash
# NFQUEUE datapath throughput: iperf3 between two network namespaces joined by a veth pair,
# the client's outgoing TCP to the server queued to userspace. Prints Gbit/s (median of RUNS
# runs of `iperf3 -t SECS -J`) for:
#   baseline         no queue
#   ts-accept        labelwall workers (src/datapath), accept-only handler
#   ts-accept-gso    the same with NFQA_CFG_F_GSO: whole GSO packets, not segmented
#   ts-label         labelwall workers, compat labelling (src/label/compat.ts labelPacket:
#                    40-byte option + HMAC-SHA256 from libcrypto's reused HMAC_CTX via koffi,
#                    src/label/hmac.ts + checksums), new bytes in every verdict
#   c-ref-label      /work/shared/bench/ref-labeler.c (libnetfilter_queue, one recv and one
#                    verdict per packet), same labelling work
# with 1 queue (--queue-num 0) and 2 queues (--queue-balance 0:1 --queue-cpu-fanout, two
# iperf3 clients pinned to CPU 0 and CPU 1 with taskset, so each CPU's packets go to its own
# queue; xt_NFQUEUE's flow hash covers addresses only, so without the fanout every flow
# between two hosts lands in one queue).
# The client's MSS is clamped to 1420 (mangle PREROUTING on SYN, as in ref-labeler's README)
# in every configuration, so a labelled segment still fits the 1500-byte MTU.
# Builds its own topology with unique names and always removes it (trap). Needs root.
# Usage: bench/nfqueue-bench.sh [RUNS=3] [SECS=5]
set -euo pipefail
RUNS=${1:-3}; ONLY=${3:-}
SECS=${2:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
[ "$(id -u)" = 0 ] || { echo "nfqueue-bench: needs root" >&2; exit 1; }
[ -f dist/test/helpers/queue-runner.js ] && [ -f dist/bench/nfqueue-label-handler.js ] || npx tsc -p tsconfig.json

# shellcheck source=bench/veth-pair.sh
source "$ROOT/bench/veth-pair.sh"
pair_up nfqueue-bench
KEYHEX=$(head -c32 /dev/urandom | od -An -tx1 | tr -d ' \n')
RUNNER=
ip netns exec "$C" iptables -t mangle -A PREROUTING -p tcp --tcp-flags SYN SYN -j TCPMSS --set-mss 1420

ip netns exec "$S" iperf3 -s -B "$IPS" -p 5201 >/dev/null 2>&1 &
PAIR_PIDS+=($!)
ip netns exec "$S" iperf3 -s -B "$IPS" -p 5202 >/dev/null 2>&1 &
PAIR_PIDS+=($!)

gcc -O2 -o "$TMP/ref-labeler" /work/shared/bench/ref-labeler.c -lnetfilter_queue -lcrypto

sleep 0.5
# One iperf3 run: prints received Gbit/s.
gbps() { node -e 'let s=0;for(const f of process.argv.slice(1)){const j=JSON.parse(require("fs").readFileSync(f,"utf8"));if(!j.end||!j.end.sum_received){console.log(0);process.exit(0)}s+=j.end.sum_received.bits_per_second}console.log((s/1e9).toFixed(3))' "$@"; }
# One measurement into $R1 (Gbit/s, 0 on failure). No command substitution: it runs in this shell.
one_run() { # $1 = 1: one client; 2: two clients pinned to CPU 0 and 1
  local ok=1 a
  if [ "$1" = 1 ]; then
    ip netns exec "$C" iperf3 -c "$IPS" -p 5201 -t "$SECS" -J >"$TMP/i1.json" 2>&1 || ok=0
    [ $ok = 1 ] && R1=$(gbps "$TMP/i1.json")
  else
    ip netns exec "$C" taskset -c 0 iperf3 -c "$IPS" -p 5201 -t "$SECS" -J >"$TMP/i1.json" 2>&1 &
    a=$!
    ip netns exec "$C" taskset -c 1 iperf3 -c "$IPS" -p 5202 -t "$SECS" -J >"$TMP/i2.json" 2>&1 || ok=0
    wait "$a" || ok=0
    [ $ok = 1 ] && R1=$(gbps "$TMP/i1.json" "$TMP/i2.json")
  fi
  if [ $ok = 0 ]; then
    echo "    iperf3 failed: $(cat "$TMP"/i*.json | grep -m1 '"error"')" >&2
    R1=0
  fi
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

set_rule() { # $@ = NFQUEUE target options, or nothing for no rule
  ip netns exec "$C" iptables -F OUTPUT
  [ $# -eq 0 ] || ip netns exec "$C" iptables -A OUTPUT -p tcp -d "$IPS" -j NFQUEUE "$@"
}

start_ts() { # $1 = JSON queues, $2 = handler URL, $3 = handler data JSON, $4 = more options
  local opts="{\"queues\":$1,\"handlerModule\":\"$2\",\"handlerData\":$3,\"failOpen\":false${4:-}}"
  LW_RUNNER_NO_STDIN=1 ip netns exec "$C" node dist/test/helpers/queue-runner.js "$opts" >"$TMP/runner.out" 2>&1 &
  RUNNER=$!
  PAIR_PIDS+=("$RUNNER")
  for _ in $(seq 50); do grep -qs "\"event\":\"ready\"" "$TMP/runner.out" && return 0; grep -qs "\"event\":\"error\"" "$TMP/runner.out" && break; sleep 0.1; done
  echo "runner failed: $(cat "$TMP/runner.out")" >&2; exit 1
}
stop_ts() {
  kill -TERM "$RUNNER"; wait "$RUNNER" 2>/dev/null || true
  pair_forget "$RUNNER"
  RUNNER=
  # Datapath counters of the run (all iperf3 runs together): packets per recvmmsg, drops.
  node -e '
    const l=require("fs").readFileSync(process.argv[1],"utf8").split("\n").filter(x=>x.includes("\"stopped\""));
    if(!l.length){console.log("    (no stats)");process.exit(0)}
    const s=JSON.parse(l[0]).stats;
    for(const w of s.workers){const k=s.kernel[w.queueNum]||{};console.log(`    q${w.queueNum}: ${w.received} pkts, ${(w.received/Math.max(1,w.batches)).toFixed(1)} pkts/recvmmsg, ${w.sends} sends, ${w.batchVerdictMsgs} batch-verdict msgs, enobufs ${w.enobufs}, kernel errors ${w.kernelErrors}, handler ${JSON.stringify(w.handler)}`)}' "$TMP/runner.out"
}
start_ref() {
  ip netns exec "$C" "$TMP/ref-labeler" 0 "$KEYHEX" >/dev/null 2>"$TMP/ref.err" &
  RUNNER=$!
  PAIR_PIDS+=("$RUNNER")
  sleep 0.5
}
stop_ref() {
  kill -TERM "$RUNNER" 2>/dev/null || echo "    ref-labeler had exited: $(cat "$TMP/ref.err")"
  wait "$RUNNER" 2>/dev/null || true
  pair_forget "$RUNNER"
  RUNNER=
}

declare -A RESULT
measure() { # $1 = name, $2 = clients (1, or 2 pinned)
  local v=() load
  load=$(cut -d' ' -f1 /proc/loadavg)
  for _ in $(seq "$RUNS"); do one_run "$2"; v+=("$R1"); done
  RESULT[$1]=$(echo "${v[*]}" | median)
  printf '%-20s clients=%s  runs: %-26s median %6s Gbit/s   (load avg before: %s)\n' "$1" "$2" "${v[*]}" "${RESULT[$1]}" "$load"
}
qdrops() { ip netns exec "$C" cat /proc/net/netfilter/nfnetlink_queue 2>/dev/null | awk '{printf "    kernel q%s: dropped %s user_dropped %s\n",$1,$6,$7}'; }

ACCEPT_URL="file://$ROOT/dist/test/helpers/queue-handlers/accept-all.js"
LABEL_URL="file://$ROOT/dist/bench/nfqueue-label-handler.js"
echo "nfqueue-bench: $(nproc) CPUs, kernel $(uname -r), node $(node --version), $RUNS x iperf3 -t $SECS, $(date -u +%FT%TZ)"

set_rule
measure baseline 1
measure baseline-2c 2

set_rule --queue-num 0
start_ts '[0]' "$ACCEPT_URL" null
measure ts-accept-1q 1
qdrops; stop_ts

start_ts '[0]' "$ACCEPT_URL" null ',"gso":true'
measure ts-accept-gso-1q 1
qdrops; stop_ts

start_ts '[0]' "$LABEL_URL" "{\"keyHex\":\"$KEYHEX\"}"
measure ts-label-1q 1
qdrops; stop_ts

start_ref
measure c-ref-label-1q 1
qdrops; stop_ref

set_rule --queue-balance 0:1 --queue-cpu-fanout
start_ts '[0,1]' "$ACCEPT_URL" null
measure ts-accept-2q-2c 2
qdrops; stop_ts

start_ts '[0,1]' "$LABEL_URL" "{\"keyHex\":\"$KEYHEX\"}"
measure ts-label-2q-2c 2
qdrops; stop_ts

# Not measured: ref-labeler with the two pinned clients. Its socket overruns (one packet per
# recv) and it exits on the first recv error ("recv: No buffer space available"), after which
# nothing passes the queue.

echo
ratio() { awk -v a="${RESULT[$1]}" -v b="${RESULT[$2]}" 'BEGIN{printf "%.2f", (b>0?a/b:0)}'; }
echo "ratio ts-label-1q / c-ref-label-1q:        $(ratio ts-label-1q c-ref-label-1q)"
echo "ratio ts-label-2q-2c / c-ref-label-1q:      $(ratio ts-label-2q-2c c-ref-label-1q)"
echo "ratio ts-accept-1q / baseline:             $(ratio ts-accept-1q baseline)"
echo "ratio ts-label-1q / baseline:              $(ratio ts-label-1q baseline)"
