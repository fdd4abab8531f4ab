# shellcheck shell=bash
# The standard labelwall topology for benchmarks, as source-able bash functions (the same
# layout as src/lab/netns.ts standardTopology()):
#
#   pc  (10.B.1.2, fd00:B:1::2) ──┐
#   uc  (10.B.2.2, fd00:B:2::2) ──┼── mb (router: .1 / ::1 on each link) ── srv (10.B.3.2, fd00:B:3::2)
#                                  (three veth pairs, B = TOPO_BASE, default 200)
#
# Usage:
#   source bench/topology.sh
#   topo_up [--shape RATE] [--offloads-off] [--mtu N]   # e.g. --shape 1gbit: tbf on mb→srv
#   in_ns srv iperf3 -s -D ...; in_ns pc iperf3 -c "$IP4_SRV" -t 10
#   topo_down                                           # also runs on EXIT / INT / TERM
#
# topo_up sets: TOPO_ID NS_PC NS_UC NS_MB NS_SRV IP4_PC IP4_UC IP4_SRV IP6_PC IP6_UC IP6_SRV
#   IP4_MB_PC IP4_MB_UC IP4_MB_SRV (mb's addresses, likewise IP6_MB_*), IF_PC IF_UC IF_SRV (the
#   end hosts' interfaces), IF_MB_PC IF_MB_UC IF_MB_SRV (mb's interfaces toward each host).
# Everything is created inside the namespaces (nothing in the root namespace), so deleting them
# removes every interface, address, route, qdisc and rule. Namespace and interface names are
# unique per run: lw + 6 random hex digits. The run is also recorded in /run/labelwall-e2e/
# so that the TypeScript harness reaps it if this shell is SIGKILLed.
# Set TOPO_NO_TRAP=1 to manage cleanup yourself.

_topo_die() {
  echo "topology: $*" >&2
  return 1
}

# Run a command in a host's namespace: in_ns pc|uc|mb|srv CMD...
in_ns() {
  local host=$1
  shift
  local ns
  case $host in
    pc) ns=$NS_PC ;; uc) ns=$NS_UC ;; mb) ns=$NS_MB ;; srv) ns=$NS_SRV ;;
    *) _topo_die "in_ns: unknown host $host"; return 1 ;;
  esac
  ip netns exec "$ns" "$@"
}

_topo_run() {
  local out
  if ! out=$("$@" 2>&1); then
    _topo_die "failed: $* :: $out"
    return 1
  fi
}

_topo_registry() {
  mkdir -p /run/labelwall-e2e 2>/dev/null || return 0
  printf '{"pid":%d,"namespaces":["%s","%s","%s","%s"]}\n' "$$" "$NS_PC" "$NS_UC" "$NS_MB" "$NS_SRV" \
    >"/run/labelwall-e2e/$TOPO_ID.json" 2>/dev/null || true
}

topo_up() {
  local shape='' offloads=on mtu=''
  while [ $# -gt 0 ]; do
    case $1 in
      --shape) shape=$2; shift 2 ;;
      --offloads-off) offloads=off; shift ;;
      --mtu) mtu=$2; shift 2 ;;
      *) _topo_die "topo_up: unknown option $1"; return 1 ;;
    esac
  done
  if [ -n "${TOPO_ID:-}" ] && ip netns list | grep -q "^$TOPO_ID-"; then
    _topo_die "topo_up: topology $TOPO_ID is already up (topo_down first)"
    return 1
  fi
  local b=${TOPO_BASE:-200}
  TOPO_ID=lw$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
  NS_PC=$TOPO_ID-pc NS_UC=$TOPO_ID-uc NS_MB=$TOPO_ID-mb NS_SRV=$TOPO_ID-srv
  IF_PC=$TOPO_ID-pc-mb IF_UC=$TOPO_ID-uc-mb IF_SRV=$TOPO_ID-srv-mb
  IF_MB_PC=$TOPO_ID-mb-pc IF_MB_UC=$TOPO_ID-mb-uc IF_MB_SRV=$TOPO_ID-mb-srv
  IP4_PC=10.$b.1.2 IP4_UC=10.$b.2.2 IP4_SRV=10.$b.3.2
  IP4_MB_PC=10.$b.1.1 IP4_MB_UC=10.$b.2.1 IP4_MB_SRV=10.$b.3.1
  IP6_PC=fd00:$b:1::2 IP6_UC=fd00:$b:2::2 IP6_SRV=fd00:$b:3::2
  IP6_MB_PC=fd00:$b:1::1 IP6_MB_UC=fd00:$b:2::1 IP6_MB_SRV=fd00:$b:3::1
  export TOPO_ID NS_PC NS_UC NS_MB NS_SRV IF_PC IF_UC IF_SRV IF_MB_PC IF_MB_UC IF_MB_SRV \
    IP4_PC IP4_UC IP4_SRV IP4_MB_PC IP4_MB_UC IP4_MB_SRV IP6_PC IP6_UC IP6_SRV IP6_MB_PC IP6_MB_UC IP6_MB_SRV

  if [ "${TOPO_NO_TRAP:-0}" != 1 ]; then
    trap 'topo_down' EXIT
    trap 'topo_down; trap - INT; kill -INT $$' INT
    trap 'topo_down; trap - TERM; kill -TERM $$' TERM
  fi
  _topo_registry

  local ns
  for ns in "$NS_PC" "$NS_UC" "$NS_MB" "$NS_SRV"; do
    _topo_run ip netns add "$ns" || { topo_down; return 1; }
    _topo_run ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
      net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 || { topo_down; return 1; }
    _topo_run ip -n "$ns" link set lo up || { topo_down; return 1; }
  done
  _topo_run ip netns exec "$NS_MB" sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 || { topo_down; return 1; }

  # link: mb-side ns, mb iface, host ns, host iface, link number
  local spec mbif hns hif n mtuarg=()
  [ -n "$mtu" ] && mtuarg=(mtu "$mtu")
  for spec in "$IF_MB_PC $NS_PC $IF_PC 1" "$IF_MB_UC $NS_UC $IF_UC 2" "$IF_MB_SRV $NS_SRV $IF_SRV 3"; do
    read -r mbif hns hif n <<<"$spec"
    _topo_run ip link add "$mbif" netns "$NS_MB" "${mtuarg[@]}" type veth peer name "$hif" netns "$hns" "${mtuarg[@]}" ||
      { topo_down; return 1; }
    _topo_run ip -n "$NS_MB" addr add "10.$b.$n.1/24" dev "$mbif" &&
      _topo_run ip -n "$NS_MB" -6 addr add "fd00:$b:$n::1/64" dev "$mbif" nodad &&
      _topo_run ip -n "$NS_MB" link set "$mbif" up &&
      _topo_run ip -n "$hns" addr add "10.$b.$n.2/24" dev "$hif" &&
      _topo_run ip -n "$hns" -6 addr add "fd00:$b:$n::2/64" dev "$hif" nodad &&
      _topo_run ip -n "$hns" link set "$hif" up || { topo_down; return 1; }
    if [ "$offloads" = off ]; then
      _topo_run ip netns exec "$NS_MB" ethtool -K "$mbif" tso off gso off gro off &&
        _topo_run ip netns exec "$hns" ethtool -K "$hif" tso off gso off gro off || { topo_down; return 1; }
    fi
  done
  # End hosts reach the other two subnets through mb (no default route: nothing leaves the topology).
  local other
  for spec in "$NS_PC 1" "$NS_UC 2" "$NS_SRV 3"; do
    read -r hns n <<<"$spec"
    for other in 1 2 3; do
      [ "$other" = "$n" ] && continue
      _topo_run ip -n "$hns" route add "10.$b.$other.0/24" via "10.$b.$n.1" &&
        _topo_run ip -n "$hns" -6 route add "fd00:$b:$other::/64" via "fd00:$b:$n::1" || { topo_down; return 1; }
    done
  done
  if [ -n "$shape" ]; then
    topo_shape "$shape" || { topo_down; return 1; }
  fi
}

# Shape mb→srv (the direction of a pc→srv upload) with tbf, like the paper's 1 Gbit/s link.
# topo_shape RATE [IFACE_IN_MB]. The burst must hold a whole GSO/GRO super-packet (64 KiB) or
# tbf segments/drops them; 256 KiB at 1 Gbit/s is 2 ms of line rate.
topo_shape() {
  local rate=$1 dev=${2:-$IF_MB_SRV}
  _topo_run ip netns exec "$NS_MB" tc qdisc replace dev "$dev" root tbf rate "$rate" burst 256kb latency 20ms
}

topo_unshape() {
  local dev=${1:-$IF_MB_SRV}
  ip netns exec "$NS_MB" tc qdisc del dev "$dev" root 2>/dev/null || true
}

# Kill every process left in the namespaces, then delete them. Idempotent.
topo_down() {
  [ -n "${TOPO_ID:-}" ] || return 0
  local ns pid
  for ns in "$NS_PC" "$NS_UC" "$NS_MB" "$NS_SRV"; do
    ip netns list 2>/dev/null | grep -q "^$ns\( \|$\)" || continue
    for pid in $(ip netns pids "$ns" 2>/dev/null); do
      kill -KILL "$pid" 2>/dev/null || true
    done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -f "/run/labelwall-e2e/$TOPO_ID.json"
  TOPO_ID=''
}
