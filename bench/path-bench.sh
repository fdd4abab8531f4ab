#!/usr/bin/env bash
# One TCP flow over a path with delay: iperf3 pc -> srv through mb (bench/topology.sh), where
# mb delays the packets it forwards (bench/delayline.c on NFQUEUE: this kernel has no netem),
# DELAY_FWD_MS on the way pc -> srv and DELAY_REV_MS on the way back, and shapes both directions
# to RATE_MBIT with tbf (limit above the path's BDP). Defaults: the whole 20 ms RTT on the way
# back (the ACKs), none on the data's way, 1 Gbit/s. TCP sees the round trip, not how it is
# split; a real path delays for free, but each delayed packet here is a trip through user space
# on the same two CPUs as the hosts, and a labelled flow's data segments (one skb each: the
# labels differ, nothing coalesces) outnumber its ACKs about two to one. DELAY_MS=N: N ms each
# way (two lines, the split of earlier figures). Arms, each measured in every run, the runs
# interleaved so that each ratio pairs figures taken under the same load of the shared machine:
#   unlabelled                 no labelwall
#   unlabelled, no GSO         no labelwall, TSO/GSO off on pc: one skb per 1500-byte segment, as
#                              a labelled flow has (each label differs, nothing coalesces): the
#                              path's bound for per-segment packets on this machine
#   compat agent               `labelwall agent --profile compat` on pc
#   compat agent + verifier    and `labelwall verifier --profile compat` (forward, drop) on mb
#   v1 agent                   `labelwall agent --profile v1` on pc
#   v1 agent + verifier        and `labelwall verifier --profile v1` (forward, drop) on mb
# then the same arms on the plain veth path (no delay, no shaping): v1 against compat there.
# Prints medians of RUNS runs and the per-run ratios' medians against unlabelled (and v1 /
# compat). The v1 arms need daemons whose --help lists --profile; without it they are reported
# as not run, and compat is the daemons' only profile (their default). Needs root; builds and
# removes its own namespaces; every daemon is stopped by its process id.
#
#   bench/path-bench.sh                          # RUNS=3 SECS=10 VETH_SECS=5 DELAY_FWD_MS=0 DELAY_REV_MS=20 RATE_MBIT=1000 QUEUES=2 DL_QUANTUM_US=500
#   DELAY_MS=10 bench/path-bench.sh              # 10 ms each way: a delay line per direction
#   DL_QUANTUM_US=0 bench/path-bench.sh          # the delay lines wake per arriving packet (before the quantum)
#   PIN=1 bench/path-bench.sh                    # agent on CPU 0, delay lines on CPU 1; SPLIT=1: every host on its CPU
#   PIN=1 PIN_WIRE=1 bench/path-bench.sh         # and mb's receive from pc on CPU 1 (the segment leaves pc's CPU)
#   CEILING=1 bench/path-bench.sh                # the delay line alone: unshaped, offloads on and off
#   ARMS="unlabelled v1-agent" bench/path-bench.sh
#   VETH=0 bench/path-bench.sh                   # the delay path only
#   IPERF_ARGS="-w 64K" bench/path-bench.sh      # extra iperf3 client options (here: cap the window)
#   LW_REPO=/path/to/other/checkout bench/path-bench.sh   # the labelwall of another (built) checkout
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
RUNS=${RUNS:-3}
SECS=${SECS:-10}
VETH_SECS=${VETH_SECS:-5}
if [ -n "${DELAY_MS:-}" ]; then
  DELAY_FWD_MS=$DELAY_MS
  DELAY_REV_MS=$DELAY_MS
fi
DELAY_FWD_MS=${DELAY_FWD_MS:-0}
DELAY_REV_MS=${DELAY_REV_MS:-20}
RTT_MS=$((DELAY_FWD_MS + DELAY_REV_MS))
[ "$RTT_MS" -gt 0 ] || { echo "DELAY_FWD_MS + DELAY_REV_MS must be > 0" >&2; exit 2; }
RATE_MBIT=${RATE_MBIT:-1000}
QUEUES=${QUEUES:-2}
# The delay lines' release quantum (bench/delayline.c): wake on a 500 µs grid, not per packet.
DL_QUANTUM_US=${DL_QUANTUM_US:-500}
IPERF_ARGS=${IPERF_ARGS:-}
VETH=${VETH:-1}
# SPLIT=1: pc as a host on CPU 0 (iperf3 client, agent), mb and srv on CPU 1 (delay lines, verifier,
# iperf3 server), each interface's receive steered to its host's CPU (RPS): veth otherwise runs
# the next host's receive inside the sender's system call, so mb's forwarding ran in the agent's
# thread, as it would not on separate machines.
# PIN=1: only the path's emulation and the labeller placed: the delay lines on CPU 1, the agent
# on CPU 0, everything else (iperf3, the verifier, softirqs) where the scheduler puts it. The
# real-time delay lines otherwise pre-empt the agent wherever they wake, and the scheduler does
# not move a waiting agent to the other CPU when it goes idle. PIN_WIRE=1 (with PIN=1) also
# steers mb's receive from pc to CPU 1 (RPS), as a wire would take the segment off pc's CPU:
# the agent's thread then does pc's work only, not mb's forwarding and srv's receive too.
SPLIT=${SPLIT:-0}
PIN=${PIN:-0}
CPU_PC=()
CPU_FAR=()
CPU_AGENT=()
CPU_DL=()
if [ "$SPLIT" = 1 ]; then
  CPU_PC=(taskset -c 0)
  CPU_FAR=(taskset -c 1)
  CPU_AGENT=("${CPU_PC[@]}")
  CPU_DL=("${CPU_FAR[@]}")
elif [ "$PIN" = 1 ]; then
  CPU_AGENT=(taskset -c 0)
  CPU_DL=(taskset -c 1)
fi
PIN_WIRE=${PIN_WIRE:-0}
CEILING=${CEILING:-0}
ARMS=${ARMS:-unlabelled unlabelled-nogso compat-agent compat-both v1-agent v1-both}
# NFQUEUE numbers of the delay lines on mb (pc -> srv, srv -> pc): away from the daemons'
# defaults (agent 100+, verifier 200+). Only a direction with a delay has a line.
DL_QUEUE=900
DL_QUEUES=()
[ "$DELAY_FWD_MS" -gt 0 ] && DL_QUEUES+=("$DL_QUEUE")
[ "$DELAY_REV_MS" -gt 0 ] && DL_QUEUES+=($((DL_QUEUE + 1)))
dl_delay() { if [ "$1" = "$DL_QUEUE" ]; then echo "$DELAY_FWD_MS"; else echo "$DELAY_REV_MS"; fi; }
LW_REPO=${LW_REPO:-$REPO}
LW=("$(command -v node)" "$LW_REPO/bin/labelwall")
OUT=$(mktemp -d /tmp/lw-path-XXXXXX)
# shellcheck source=bench/topology.sh
source bench/topology.sh

[ -f "$LW_REPO/dist/src/cli/main.js" ] || { echo "build first: make setup (no $LW_REPO/dist)" >&2; exit 2; }
gcc -O2 -o "$OUT/delayline" bench/delayline.c -lnetfilter_queue
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$OUT/key"
chmod 600 "$OUT/key"

# Profiles: each daemon names its profile with --profile once it speaks v1. A daemon without
# the flag speaks only compat: the compat arms run it without the flag, and a v1 arm that
# needs it is reported as not run (the agent may take --profile before the verifier does).
PROFILE_agent=0
PROFILE_verifier=0
for role in agent verifier; do
  if "${LW[@]}" "$role" --help | grep -q -- '--profile'; then printf -v "PROFILE_$role" 1; fi
done
profile_args() { # profile_args agent|verifier compat|v1
  local v="PROFILE_$1"
  if [ "${!v}" = 1 ]; then echo "--profile $2"; fi
}

pids=()
dl_pids=()
stop_daemons() {
  # `ip netns exec` execs its command, so each $! is the daemon itself; SIGTERM so that it
  # removes its iptables rules.
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  pids=()
}
stop_delayline() {
  for p in "${dl_pids[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
  for p in "${dl_pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  dl_pids=()
}
finish() { stop_daemons; stop_delayline; topo_down; rm -rf "$OUT"; }
trap finish EXIT
trap 'exit 130' INT TERM
wait_sock() { for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.1; done; echo "no $1" >&2; return 1; }

start_agent() { # start_agent PROFILE
  rm -f "$OUT/agent.sock"
  # shellcheck disable=SC2046
  ip netns exec "$NS_PC" "${CPU_AGENT[@]}" "${LW[@]}" agent $(profile_args agent "$1") --key-file "$OUT/key" --queues "$QUEUES" \
    --control-socket "$OUT/agent.sock" --log-level warn &
  pids+=($!)
  wait_sock "$OUT/agent.sock"
}
start_verifier() { # start_verifier PROFILE
  rm -f "$OUT/verifier.sock"
  # shellcheck disable=SC2046
  ip netns exec "$NS_MB" "${CPU_FAR[@]}" "${LW[@]}" verifier $(profile_args verifier "$1") --key-file "$OUT/key" --hook forward \
    --in-interface "$IF_MB_PC" --queues "$QUEUES" --control-socket "$OUT/verifier.sock" --log-level warn &
  pids+=($!)
  wait_sock "$OUT/verifier.sock"
}

# counters SOCKET: the daemon's counters as "name=value ..." (non-zero ones).
counters() {
  "${LW[@]}" status --json --control-socket "$1" |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const o={};for(const l of s.split("\n")){if(!l.trim())continue;const j=JSON.parse(l);for(const [k,v] of Object.entries(j.counters??{}))if(typeof v==="number")o[k]=(o[k]??0)+v}console.log(Object.entries(o).filter(([,v])=>v).map(([k,v])=>k+"="+v).join(" "))})'
}
counter() { tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }'; }

# One iperf3 run; prints "GBIT RETRANSMITS MEAN_RTT_MS".
iperf_run() {
  local secs=$1
  # shellcheck disable=SC2086 # IPERF_ARGS: extra iperf3 options, word-split on purpose
  in_ns pc "${CPU_PC[@]}" timeout $((secs + 20)) iperf3 -c "$IP4_SRV" -t "$secs" $IPERF_ARGS -J 2>/dev/null |
    node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const j=JSON.parse(s);if(j.error){console.error(j.error);process.exit(1)}const st=j.end.streams[0].sender;console.log((j.end.sum_received.bits_per_second/1e9).toFixed(3),j.end.sum_sent.retransmits??0,((st.mean_rtt??0)/1000).toFixed(1))})'
}

# The machine's CPU ticks: "total idle steal" (all CPUs, /proc/stat), to show per run how much
# CPU was left (idle) and taken by the hypervisor (steal): the bound of a labelled flow here.
cpu_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t, $5 + $6, $9 }' /proc/stat; }
cpu_share() { # cpu_share "BEFORE" "AFTER" FIELD(2 idle, 3 steal): percent of all CPU time
  awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN { split(a, x, " "); split(b, y, " "); d = y[1] - x[1];
    printf "%.0f", (d > 0 ? 100 * (y[f] - x[f]) / d : 0) }'
}

# CPU time (utime + stime, clock ticks) of a process, all its threads; 0 without one. A
# daemon's time includes the softirq work that ran in its threads: on veth that is the next
# hosts' receive (mb's forwarding and queueing, often srv's TCP), which on separate machines
# would run on theirs; PIN=1 PIN_WIRE=1 moves mb's receive from pc to the other CPU.
HZ=$(getconf CLK_TCK)
proc_ticks() { if [ -n "$1" ] && [ -r "/proc/$1/stat" ]; then awk '{ print $14 + $15 }' "/proc/$1/stat"; else echo 0; fi; }
per_segment_us() { # per_segment_us TICKS_BEFORE TICKS_AFTER SEGMENTS: µs of CPU per segment
  awk -v a="$1" -v b="$2" -v n="$3" -v hz="$HZ" 'BEGIN { printf "%.1f", (n > 0 ? (b - a) / hz * 1e6 / n : 0) }'
}

# median: of whitespace-separated numbers; the mean of the middle two keeps the inputs' format.
median() {
  tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1; if ($1 ~ /\./) f=1} END {
    if (NR == 0) print "n/a"; else if (NR%2) print a[(NR+1)/2]; else printf (f ? "%.3f\n" : "%d\n"), (a[NR/2]+a[NR/2+1])/2}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "n/a" }'; }

# Big enough TCP buffers for the path's BDP (autotuning stops at tcp_rmem/tcp_wmem's max).
tcp_buffers() {
  local ns
  for ns in "$NS_PC" "$NS_SRV"; do
    ip netns exec "$ns" sysctl -q -w net.ipv4.tcp_rmem="4096 131072 33554432" net.ipv4.tcp_wmem="4096 16384 33554432"
  done
}

# SPLIT=1: pc's interface receives on CPU 0, mb's and srv's on CPU 1. PIN_WIRE=1 (with PIN=1):
# only mb's receive from pc, on CPU 1.
split_rps() {
  if [ "$PIN" = 1 ] && [ "$PIN_WIRE" = 1 ]; then
    ip netns exec "$NS_MB" sh -c "echo 2 > /sys/class/net/$IF_MB_PC/queues/rx-0/rps_cpus"
    return 0
  fi
  [ "$SPLIT" = 1 ] || return 0
  ip netns exec "$NS_PC" sh -c "echo 1 > /sys/class/net/$IF_PC/queues/rx-0/rps_cpus"
  ip netns exec "$NS_MB" sh -c "echo 2 > /sys/class/net/$IF_MB_PC/queues/rx-0/rps_cpus; echo 2 > /sys/class/net/$IF_MB_SRV/queues/rx-0/rps_cpus"
  ip netns exec "$NS_SRV" sh -c "echo 2 > /sys/class/net/$IF_SRV/queues/rx-0/rps_cpus"
}

# The path: on mb's forward path (mangle, before the verifier's filter rules) a delay line per
# delayed direction (queue DL_QUEUE pc -> srv, DL_QUEUE+1 back: each keeps its direction in
# order; reinjecting runs in the line's thread). SCHED_FIFO, as a link that
# does not wait for a CPU: under SCHED_OTHER on this shared 2-core machine the line fell
# behind (mean lateness 5-13 ms with 1500-byte packets), with it 0.05-0.2 ms. No
# --queue-bypass: if a delay line dies, the flow stops and the run fails. tbf on both of mb's
# egresses, limit above the BDP so the shaper, not its buffer, is the bound.
BDP_BYTES=$((RATE_MBIT * 1000000 / 8 * RTT_MS / 1000))
TBF_LIMIT=$((BDP_BYTES * 5 / 4 + 262144))
DL_PRIO=(chrt -f 5)
path_up() { # path_up SHAPE(0|1) [topo_up args]
  local shape=$1 q
  shift
  TOPO_NO_TRAP=1 topo_up "$@"
  tcp_buffers
  split_rps
  for q in "${DL_QUEUES[@]}"; do
    : >"$OUT/dl.$q.json"
    ip netns exec "$NS_MB" "${CPU_DL[@]}" "${DL_PRIO[@]}" "$OUT/delayline" "$q" "$(dl_delay "$q")" "$OUT/dl.$q.json" "$DL_QUANTUM_US" 2>/dev/null &
    dl_pids+=($!)
  done
  sleep 0.3
  dl_rules -A
  if [ "$shape" = 1 ]; then
    local dev
    for dev in "$IF_MB_SRV" "$IF_MB_PC"; do
      in_ns mb tc qdisc replace dev "$dev" root tbf rate "${RATE_MBIT}mbit" burst 256kb limit "$TBF_LIMIT"
    done
  fi
  in_ns srv "${CPU_FAR[@]}" iperf3 -s -D
  sleep 0.3
}
dl_rules() { # dl_rules -A|-D: send mb's forwarded traffic through the delay lines, or stop
  if [ "$DELAY_FWD_MS" -gt 0 ]; then
    in_ns mb iptables -t mangle "$1" FORWARD -i "$IF_MB_PC" -o "$IF_MB_SRV" -j NFQUEUE --queue-num "$DL_QUEUE"
  fi
  if [ "$DELAY_REV_MS" -gt 0 ]; then
    in_ns mb iptables -t mangle "$1" FORWARD -i "$IF_MB_SRV" -o "$IF_MB_PC" -j NFQUEUE --queue-num $((DL_QUEUE + 1))
  fi
}
# dl_stats: the delay lines' counters since the last call, summed, as one JSON line.
dl_stats() {
  local p q n files=()
  for p in "${dl_pids[@]}"; do kill -0 "$p" 2>/dev/null || { echo "a delay line died" >&2; return 1; }; done
  for q in "${DL_QUEUES[@]}"; do
    n=$(wc -l <"$OUT/dl.$q.json")
    echo "$n" >"$OUT/dl.$q.n"
  done
  for p in "${dl_pids[@]}"; do kill -USR1 "$p"; done
  for q in "${DL_QUEUES[@]}"; do
    files+=("$OUT/dl.$q.json")
    n=$(cat "$OUT/dl.$q.n")
    for _ in $(seq 50); do [ "$(wc -l <"$OUT/dl.$q.json")" -gt "$n" ] && break; sleep 0.02; done
  done
  node -e 'const fs=require("fs");const js=process.argv.slice(1).map(f=>JSON.parse(fs.readFileSync(f,"utf8").trim().split("\n").pop()));
    const pk=js.reduce((a,j)=>a+j.packets,0);
    console.log(JSON.stringify({packets:pk,seconds:Math.max(...js.map(j=>j.seconds)),late_us_mean:+(pk?js.reduce((a,j)=>a+j.late_us_mean*j.packets,0)/pk:0).toFixed(1),
      late_us_max:Math.max(...js.map(j=>j.late_us_max)),max_held:js.map(j=>j.max_held),enobufs:js.reduce((a,j)=>a+j.enobufs,0),stamped:js.reduce((a,j)=>a+(j.stamped??0),0),wakeups:js.reduce((a,j)=>a+(j.wakeups??0),0),
      verdict_us_mean:js.map(j=>j.verdict_us_mean),verdict_us_max:js.map(j=>j.verdict_us_max),batches:js.map(j=>j.batches)}))' \
    "${files[@]}"
}
dl_field() { node -e 'const j=JSON.parse(process.argv[1]);console.log(String(j[process.argv[2]]))' "$1" "$2"; }
path_down() { stop_delayline; topo_down; }

show_rtt() {
  if command -v ping >/dev/null; then
    echo "   ping pc -> srv: $(in_ns pc ping -q -c 10 -i 0.2 "$IP4_SRV" | tail -1)"
  else
    echo "   (no ping installed: apt-get install iputils-ping; the iperf3 mean RTTs below stand for it)"
  fi
}

arm_name() {
  case $1 in
    unlabelled) echo "unlabelled" ;;
    unlabelled-nogso) echo "unlabelled, no GSO on pc" ;;
    compat-agent) echo "compat agent" ;;
    compat-both) echo "compat agent + verifier" ;;
    v1-agent) echo "v1 agent" ;;
    v1-both) echo "v1 agent + verifier" ;;
  esac
}
arm_runnable() {
  case $1 in
    v1-agent) [ "$PROFILE_agent" = 1 ] ;;
    v1-both) [ "$PROFILE_agent" = 1 ] && [ "$PROFILE_verifier" = 1 ] ;;
    *) true ;;
  esac
}
arm_up() {
  case $1 in
    unlabelled) ;;
    unlabelled-nogso) in_ns pc ethtool -K "$IF_PC" tso off gso off >/dev/null ;;
    compat-agent) start_agent compat ;;
    compat-both) start_agent compat; start_verifier compat ;;
    v1-agent) start_agent v1 ;;
    v1-both) start_agent v1; start_verifier v1 ;;
  esac
}
# arm_check ARM: after a run, the daemons' counters show the flow was labelled (and verified
# valid); a labelled arm with nothing labelled would be an unlabelled figure under a false name.
arm_check() {
  local c l v
  LABELLED=0
  VALID=0
  case $1 in unlabelled*) return 0 ;; esac
  c=$(counters "$OUT/agent.sock")
  l=$(echo "$c" | counter labelled)
  LABELLED=$l
  echo "agent: $c" >>"$OUT/counters.log"
  [ "$l" -gt 0 ] || { echo "   !! $1: the agent labelled nothing ($c)" >&2; return 1; }
  case $1 in *-both)
    c=$(counters "$OUT/verifier.sock")
    v=$(echo "$c" | counter valid)
    VALID=$v
    echo "verifier: $c" >>"$OUT/counters.log"
    [ "$v" -gt 0 ] || { echo "   !! $1: the verifier found nothing valid ($c)" >&2; return 1; }
    ;;
  esac
}

# suite TITLE SECS WITH_DL: every arm RUNS times, interleaved; prints medians and ratios.
suite() {
  local title=$1 secs=$2 with_dl=$3 run arm r g rt rtt s
  declare -A G=() Q=() RT=() RTT=() LATE=() PK=() VD=() WK=() IDLE=() STEAL=() AUS=() VUS=()
  echo "== $title (iperf3 -t $secs, one flow, $RUNS runs, $QUEUES queue(s) per daemon)"
  echo "   load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  [ "$with_dl" = 1 ] && show_rtt
  for run in $(seq "$RUNS"); do
    local base=''
    for arm in $ARMS; do
      arm_runnable "$arm" || continue
      arm_up "$arm"
      [ "$with_dl" = 1 ] && dl_stats >/dev/null
      local c0 c1 a0 a1 v0 v1
      c0=$(cpu_ticks)
      a0=$(proc_ticks "${pids[0]:-}")
      v0=$(proc_ticks "${pids[1]:-}")
      r=$(iperf_run "$secs") || r="0 0 0"
      c1=$(cpu_ticks)
      a1=$(proc_ticks "${pids[0]:-}")
      v1=$(proc_ticks "${pids[1]:-}")
      IDLE[$arm]="${IDLE[$arm]:-} $(cpu_share "$c0" "$c1" 2)"
      STEAL[$arm]="${STEAL[$arm]:-} $(cpu_share "$c0" "$c1" 3)"
      read -r g rt rtt <<<"$r"
      if [ "$with_dl" = 1 ]; then
        s=$(dl_stats)
        LATE[$arm]="${LATE[$arm]:-} $(dl_field "$s" late_us_mean)"
        # The first line's: a packet that arrives during a verdict call is read that much
        # later (its due time comes from the kernel's stamp with a quantum, not without one).
        VD[$arm]="${VD[$arm]:-} $(dl_field "$s" verdict_us_mean | cut -d, -f1)"
        PK[$arm]="${PK[$arm]:-} $(awk -v p="$(dl_field "$s" packets)" -v t="$(dl_field "$s" seconds)" 'BEGIN { printf "%.0f", p / t }')"
        WK[$arm]="${WK[$arm]:-} $(awk -v p="$(dl_field "$s" wakeups)" -v t="$(dl_field "$s" seconds)" 'BEGIN { printf "%.0f", p / t }')"
        # With a quantum each due time comes from the kernel's stamp; a packet without one was
        # timed from its reading (later): say so rather than report a longer path as this one.
        if [ "$DL_QUANTUM_US" != 0 ] && [ "$(dl_field "$s" stamped)" -lt "$(dl_field "$s" packets)" ]; then
          echo "   !! $arm: $(dl_field "$s" stamped) of $(dl_field "$s" packets) packets had a kernel timestamp" >&2
        fi
      fi
      arm_check "$arm" || g=0
      [ "$LABELLED" -gt 0 ] && AUS[$arm]="${AUS[$arm]:-} $(per_segment_us "$a0" "$a1" "$LABELLED")"
      [ "$VALID" -gt 0 ] && VUS[$arm]="${VUS[$arm]:-} $(per_segment_us "$v0" "$v1" "$VALID")"
      stop_daemons
      [ "$arm" = unlabelled-nogso ] && in_ns pc ethtool -K "$IF_PC" tso on gso on >/dev/null
      G[$arm]="${G[$arm]:-} $g"
      RT[$arm]="${RT[$arm]:-} $rt"
      RTT[$arm]="${RTT[$arm]:-} $rtt"
      [ "$arm" = unlabelled ] && base=$g
      [ -n "$base" ] && Q[$arm]="${Q[$arm]:-} $(ratio "$g" "$base")"
    done
    echo "   run $run done, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  done
  printf '   %-24s %9s %10s %12s %9s %7s %7s %9s %9s' "arm" "Gbit/s" "/unlabelled" "retransmits" "RTT ms" "idle %" "steal %" "agent µs" "verif. µs"
  [ "$with_dl" = 1 ] && printf ' %14s %12s %12s %10s' "delay late µs" "verdict µs" "skb/s at mb" "wakeups/s"
  printf '   (medians; Gbit/s of each run)\n'
  for arm in $ARMS; do
    if ! arm_runnable "$arm"; then
      printf '   %-24s NOT RUN: `labelwall agent --help`%s lists no --profile (no v1 daemon in this checkout)\n' "$(arm_name "$arm")" \
        "$([ "$arm" = v1-both ] && echo ' or `labelwall verifier --help`')"
      continue
    fi
    printf '   %-24s %9s %10s %12s %9s %7s %7s %9s %9s' "$(arm_name "$arm")" "$(echo "${G[$arm]}" | median)" "$(echo "${Q[$arm]:-}" | median)" \
      "$(echo "${RT[$arm]}" | median)" "$(echo "${RTT[$arm]}" | median)" "$(echo "${IDLE[$arm]}" | median)" "$(echo "${STEAL[$arm]}" | median)" \
      "$(echo "${AUS[$arm]:-}" | median | sed 's/^n\/a$/-/')" "$(echo "${VUS[$arm]:-}" | median | sed 's/^n\/a$/-/')"
    [ "$with_dl" = 1 ] && printf ' %14s %12s %12s %10s' "$(echo "${LATE[$arm]}" | median)" "$(echo "${VD[$arm]}" | median)" "$(echo "${PK[$arm]}" | median)" "$(echo "${WK[$arm]}" | median)"
    printf '   (%s )\n' "${G[$arm]}"
  done
  if arm_runnable v1-agent; then
    local a b
    for a in agent both; do
      [[ " $ARMS " == *" v1-$a "* && " $ARMS " == *" compat-$a "* ]] || continue
      arm_runnable "v1-$a" || continue
      # Per-run v1 / compat, paired like the ratios to unlabelled.
      local vs=() c v i
      read -ra c <<<"${G[compat-$a]}"
      read -ra v <<<"${G[v1-$a]}"
      for i in "${!c[@]}"; do vs+=("$(ratio "${v[$i]}" "${c[$i]}")"); done
      b=$(arm_name "v1-$a")
      echo "   $b / $(arm_name "compat-$a"): median $(echo "${vs[*]}" | median) (runs: ${vs[*]})"
    done
  fi
  echo "   load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
}

# The delay line's own ceiling: unshaped, no labelwall, with the stack's offloads (GSO skbs, as
# unlabelled in the benchmark) and without them (every skb one 1500-byte packet, as a labelled
# flow: each label differs, so nothing coalesces). Each against the same topology a moment
# before without the delay line (no delay, so more throughput: the machine's forwarding bound).
ceiling() {
  local off g rt rtt s
  for off in on off; do
    local args=()
    [ "$off" = off ] && args=(--offloads-off)
    path_up 0 "${args[@]}"
    echo "== delay line alone, unshaped, offloads $off, $DELAY_FWD_MS ms pc -> srv, $DELAY_REV_MS ms back"
    dl_rules -D
    read -r g rt rtt <<<"$(iperf_run "$SECS")"
    echo "   without the delay line: $g Gbit/s, $rt retransmits, mean RTT $rtt ms"
    dl_rules -A
    show_rtt
    dl_stats >/dev/null
    read -r g rt rtt <<<"$(iperf_run "$SECS")"
    s=$(dl_stats)
    echo "   with the delay line:    $g Gbit/s, $rt retransmits, mean RTT $rtt ms"
    echo "   delay line: $(awk -v p="$(dl_field "$s" packets)" -v t="$(dl_field "$s" seconds)" 'BEGIN { printf "%.0f", p / t }') skb/s, $s"
    path_down
  done
}

echo "labelwall $LW_REPO at $(git -C "$LW_REPO" log -1 --format='%h %s' | cut -c1-80)"
for role in agent verifier; do
  v="PROFILE_$role"
  if [ "${!v}" = 1 ]; then
    echo "profiles: \`labelwall $role --help\` lists --profile: its v1 and compat arms run with --profile"
  else
    echo "profiles: \`labelwall $role --help\` lists no --profile: it speaks compat only (run without the flag); its v1 arms are NOT run"
  fi
done
# This machine's speed now: the same code's labelling cost per segment, without the kernel.
# Labelled arms are CPU-bound here and the shared hosts' speed varies by half between days, so
# a ratio means little without it (unlabelled stays at the shaper's rate either way).
if [ -f "$LW_REPO/dist/bench/gso-micro.js" ]; then
  echo "machine speed: node dist/bench/gso-micro.js 1000 (CPU time): $(node "$LW_REPO/dist/bench/gso-micro.js" 1000 | sed -E 's/^(.*[^ ]) +([0-9.]+ µs\/segment).*/\1 \2/' | paste -sd';' | sed 's/;/; /g')"
fi
if [ "$CEILING" = 1 ]; then
  ceiling
  exit 0
fi
path_up 1
echo "path: mb delays $DELAY_FWD_MS ms pc -> srv and $DELAY_REV_MS ms back (bench/delayline.c, NFQUEUE ${DL_QUEUES[*]}, ${DL_PRIO[*]}, release quantum ${DL_QUANTUM_US} µs), tbf ${RATE_MBIT} Mbit/s both ways," \
  "limit $TBF_LIMIT bytes (BDP $BDP_BYTES); tcp_rmem/tcp_wmem max 32 MiB on pc and srv;" \
  "congestion control $(in_ns pc sysctl -n net.ipv4.tcp_congestion_control) (the kernel's default);" \
  "CPUs: $( [ "$SPLIT" = 1 ] && echo "SPLIT (pc on 0, mb and srv on 1, RPS)" || { [ "$PIN" = 1 ] && echo "PIN (agent on 0, delay lines on 1$([ "$PIN_WIRE" = 1 ] && echo ", mb's receive from pc on 1"))"; } || echo "shared")"
suite "path with delay: ${RATE_MBIT} Mbit/s, $RTT_MS ms RTT" "$SECS" 1
path_down
if [ "$VETH" = 1 ]; then
  TOPO_NO_TRAP=1 topo_up
  tcp_buffers
  split_rps
  in_ns srv "${CPU_FAR[@]}" iperf3 -s -D
  sleep 0.3
  suite "plain veth, no delay, no shaping" "$VETH_SECS" 0
  topo_down
fi
if [ -s "$OUT/counters.log" ]; then
  echo "== daemon counters of the last labelled run"
  for role in agent verifier; do grep "^$role:" "$OUT/counters.log" | tail -1 | sed "s/^/   /" || true; done
fi
