#!/usr/bin/env bash
# New outbound TCP connections through `labelwall agent` with the egress policy on, against no
# agent, in one run, with IDLE idle processes holding SOCKS sockets each on the host.
# Usage (root): bash bench/egress-bench.sh [latency-connections] [rate-seconds] [rate-procs] [idle] [socks]
# LW_BENCH_IDENTITY='index_interval_ms: 0, ebpf: off' (for example) adds agent.identity settings.
# Prints connections/s (PROCS client processes in parallel, no agent vs agent) and the p50/p99
# connect() latency of sequential connections, and what the agent adds.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}; secs=${2:-5}; procs=${3:-4}; idle=${4:-500}; socks=${5:-20}
id=lweb$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
c=$id-c; s=$id-s
dir=$(mktemp -d)
idle_pid=; srv_pid=; agent_pid=
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
  [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null || true
  [ -n "$idle_pid" ] && kill "$idle_pid" 2>/dev/null && wait "$idle_pid" 2>/dev/null || true
  ip netns del "$c" 2>/dev/null || true
  ip netns del "$s" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM
[ -f dist/src/cli/main.js ] || npx tsc -p tsconfig.json

ip netns add "$c"; ip netns add "$s"
ip link add "$id-a" netns "$c" type veth peer name "$id-b" netns "$s"
ip -n "$c" addr add 10.251.0.1/24 dev "$id-a"; ip -n "$s" addr add 10.251.0.2/24 dev "$id-b"
for ns in "$c" "$s"; do ip -n "$ns" link set lo up; done
ip -n "$c" link set "$id-a" up; ip -n "$s" link set "$id-b" up

# Idle holders on the host (in the client namespace; /proc shows every process anyway).
mkfifo "$dir/idle"
ip netns exec "$c" /usr/bin/python3 bench/identity-idle.py "$idle" "$socks" < "$dir/idle" > "$dir/idle.out" &
idle_pid=$!
exec 9> "$dir/idle"
until grep -q ready "$dir/idle.out" 2>/dev/null; do sleep 0.2; done

mkfifo "$dir/srv"
ip netns exec "$s" /usr/bin/python3 bench/egress-client.py serve 8080 < "$dir/srv" > "$dir/srv.out" &
srv_pid=$!
exec 8> "$dir/srv"
until grep -q ready "$dir/srv.out" 2>/dev/null; do sleep 0.1; done

measure() {
  local lat rate
  lat=$(ip netns exec "$c" /usr/bin/python3 bench/egress-client.py lat "$n" 10.251.0.2 8080)
  rate=$(ip netns exec "$c" /usr/bin/python3 bench/egress-client.py rate "$secs" "$procs" 10.251.0.2 8080)
  echo "$lat $rate"
}

echo "host: $(cat "$dir/idle.out"); processes $(ls /proc | grep -c '^[0-9]'); kernel $(uname -r); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"
base=$(measure)

# The agent with a policy of 12 rules (hash, exe globs, users, ports) that the client passes
# through to the default; executables are hashed; eBPF tracking when it loads (default).
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/k.key"; chmod 600 "$dir/k.key"
{
  echo "agent:"
  [ -n "${LW_BENCH_IDENTITY:-}" ] && echo "  identity: { $LW_BENCH_IDENTITY }"
  echo "  egress:"
  echo "    default: allow"
  echo "    unknown: deny"
  echo "    rules:"
  echo "      - { name: bad-hash, app: { sha256: \"$(printf '%064d' 7)\" }, action: deny }"
  for i in $(seq 1 8); do echo "      - { name: no-tool-$i, app: { exe: \"/opt/tool$i/**\" }, action: deny }"; done
  echo "      - { name: no-guest, app: { user: nobody }, action: deny }"
  echo "      - { name: no-smtp, dst: { ports: [25, 465, 587], proto: tcp }, action: deny }"
  echo "      - { name: no-internal, app: { cmdline: \"--evil\" }, dst: { cidr: [192.168.0.0/16] }, action: deny }"
} > "$dir/agent.yaml"
ip netns exec "$c" node ${LW_BENCH_NODE_FLAGS:-} bin/labelwall agent --key-file "$dir/k.key" --config "$dir/agent.yaml" \
  --control-socket "$dir/agent.sock" --queue-base 310 --log-file "$dir/agent.log" ${LW_BENCH_AGENT_ARGS:-} &
agent_pid=$!
for _ in $(seq 1 100); do [ -S "$dir/agent.sock" ] && break; sleep 0.1; done
sleep 1
with=$(measure)
status=$(node bin/labelwall status --control-socket "$dir/agent.sock" --json)
kill "$agent_pid"; wait "$agent_pid" 2>/dev/null || true; agent_pid=
# Attribution time per decision (inside the egress worker), from the decision log.
attr=$(node -e '
const ms = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter((l) => l.includes("\"egress decision\"")).map((l) => JSON.parse(l).attributionMs).sort((a, b) => a - b);
const p = (q) => ms[Math.min(ms.length - 1, Math.round(q * (ms.length - 1)))];
const bpf = require("fs").readFileSync(process.argv[1], "utf8").match(/"bpf":(true|false)/);
console.log(`attribution in the egress worker: p50 ${p(0.5)} ms, p99 ${p(0.99)} ms over ${ms.length} decisions; eBPF ${bpf ? bpf[1] : "?"}`);
' "$dir/agent.log")
denied=$(grep -c '"action":"deny"' "$dir/agent.log" || true)

node -e '
const [b, w, st, attr, denied] = process.argv.slice(1);
const [bl, br] = b.trim().split(/ (?={)/).map(JSON.parse);
const [wl, wr] = w.trim().split(/ (?={)/).map(JSON.parse);
const s = JSON.parse(st);
const f = (x) => x.toFixed(3);
console.log(`                     connections/s (${br.seconds}s)   connect p50 ms   p99 ms    max ms`);
console.log(`no agent             ${br.per_s.toFixed(0).padStart(10)}            ${f(bl.p50_ms).padStart(8)}     ${f(bl.p99_ms).padStart(7)}   ${f(bl.max_ms).padStart(7)}`);
console.log(`agent, policy on     ${wr.per_s.toFixed(0).padStart(10)}            ${f(wl.p50_ms).padStart(8)}     ${f(wl.p99_ms).padStart(7)}   ${f(wl.max_ms).padStart(7)}`);
console.log(`added by the agent: p50 ${f(wl.p50_ms - bl.p50_ms)} ms, p99 ${f(wl.p99_ms - bl.p99_ms)} ms; rate ratio ${(wr.per_s / br.per_s).toFixed(2)}`);
console.log(`agent: egress decisions ${s.counters.egress_decisions}, denied ${s.counters.egress_denied} (deny log lines ${denied}), unknown ${s.counters.egress_unknown}, errors ${s.counters.egress_errors}; queue drops ${s.datapath.queueDropped}+${s.datapath.userDropped}; client errors ${wr.errors}`);
console.log(attr);
' "$base" "$with" "$status" "$attr" "$denied"
