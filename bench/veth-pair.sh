# shellcheck shell=bash
# Two network namespaces joined by one veth pair, for the benchmarks that measure one host
# sending to another without a router (nfqueue-bench.sh, gso-bench.sh), as source-able bash:
#
#   source bench/veth-pair.sh
#   pair_up NAME             # NAME: the script's name in messages, e.g. gso-bench
#   ... PAIR_PIDS+=($!) for every process started; ip netns exec "$C" ...
#
# pair_up sets TAG (lw + 6 random hex digits), C and S (the client's and the server's
# namespace), IPC and IPS (their addresses on a random 10.x.y.0/24), the interfaces ${TAG}x
# (in C) and ${TAG}y (in S), and TMP (a fresh directory). On EXIT, INT and TERM the processes
# in PAIR_PIDS get SIGTERM, then SIGKILL, and the namespaces and TMP are removed. Only
# processes this script started and has not reaped are signalled (a reaped pid may already be
# someone else's): take a pid out of PAIR_PIDS once it is waited for.
PAIR_PIDS=()

_pair_cleanup() {
  [ "$BASHPID" = "$_PAIR_MAINPID" ] || return 0 # not in command-substitution subshells
  set +e
  for p in "${PAIR_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  sleep 0.5
  for p in "${PAIR_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  ip netns del "$C" 2>/dev/null
  ip netns del "$S" 2>/dev/null
  rm -rf "$TMP"
}

pair_up() {
  local name=$1 net
  TAG=lw$(head -c3 /dev/urandom | od -An -tx1 | tr -d ' \n')
  C=${TAG}c
  S=${TAG}s
  net=10.$((100 + RANDOM % 100)).$((RANDOM % 250))
  IPC=$net.1
  IPS=$net.2
  TMP=$(mktemp -d "/tmp/$name.XXXXXX")
  _PAIR_MAINPID=$BASHPID
  trap _pair_cleanup EXIT
  # shellcheck disable=SC2064 # the name is fixed now
  trap "echo '$name: interrupted' >&2; exit 130" INT
  # shellcheck disable=SC2064
  trap "echo '$name: terminated' >&2; exit 143" TERM
  ip netns add "$C"
  ip netns add "$S"
  ip link add "${TAG}x" netns "$C" type veth peer name "${TAG}y" netns "$S"
  ip -n "$C" addr add "$IPC/24" dev "${TAG}x"
  ip -n "$S" addr add "$IPS/24" dev "${TAG}y"
  for ns in "$C" "$S"; do ip -n "$ns" link set lo up; done
  ip -n "$C" link set "${TAG}x" up
  ip -n "$S" link set "${TAG}y" up
}

# pair_forget PID: a process that was waited for leaves PAIR_PIDS.
pair_forget() {
  local keep=() p
  for p in "${PAIR_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PAIR_PIDS=("${keep[@]}")
}
