// The agent's egress step, pure apart from what is injected: from a queued packet that opens a
// flow to its tuple, and from the gate's decision to the verdict mark. The handler module
// (egress-handler.ts) wires it to the Attributor and the EgressGate inside the egress worker.
import { formatAddress, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, parseIpPacket } from '../wire/packet.js';
import { TCP_SYN } from '../wire/tcp.js';
import type { FlowTuple } from '../identity/types.js';
import type { EgressAction } from '../config/model.js';
import { DEFAULT_AGENT_MARK, egressBits, withMark, type AgentMarks } from '../config/marks.js';

/** The egress worker's counters (egress-handler.ts); the metrics give them series of their own. */
export const EGRESS_COUNTERS = [
  'egress_packets',
  'egress_decisions',
  'egress_allowed',
  'egress_denied',
  'egress_logged',
  'egress_unknown',
  'egress_unparsed',
  'egress_errors',
  'egress_log_suppressed',
  // `egress-failed` lines not written, over the worker's 10 per second (the agent's total
  // log_suppressed sums it with the labelling workers').
  'log_suppressed',
] as const;

export type TupleResult = { ok: true; tuple: FlowTuple; syn: boolean } | { ok: false; reason: string };

const ICMP_ECHO_REQUEST = 8;
const ICMPV6_ECHO_REQUEST = 128;

/**
 * The flow a packet opens, as the policy sees it: src = local end. ICMP echo: the echo
 * identifier stands for the source port (a ping socket's "port"), dport 0.
 */
export function flowTupleOf(pkt: Uint8Array): TupleResult {
  const p = parseIpPacket(pkt);
  if (!p.ok) return { ok: false, reason: p.reason };
  const l4 = p.l4Offset;
  const avail = p.totalLen - l4;
  const base = { family: p.family, src: formatAddress(p.src), dst: formatAddress(p.dst) };
  if (p.protocol === IPPROTO_TCP && p.tcp) {
    return { ok: true, syn: (p.tcp.flags & TCP_SYN) !== 0, tuple: { ...base, proto: 'tcp', sport: p.tcp.srcPort, dport: p.tcp.dstPort } };
  }
  if (p.protocol === IPPROTO_UDP) {
    if (avail < 8) return { ok: false, reason: 'truncated-udp' };
    return {
      ok: true,
      syn: false,
      tuple: { ...base, proto: 'udp', sport: (pkt[l4]! << 8) | pkt[l4 + 1]!, dport: (pkt[l4 + 2]! << 8) | pkt[l4 + 3]! },
    };
  }
  if ((p.family === 4 && p.protocol === IPPROTO_ICMP) || (p.family === 6 && p.protocol === IPPROTO_ICMPV6)) {
    if (avail < 8) return { ok: false, reason: 'truncated-icmp' };
    const echo = p.family === 4 ? ICMP_ECHO_REQUEST : ICMPV6_ECHO_REQUEST;
    if (pkt[l4] !== echo) return { ok: false, reason: `icmp-type-${pkt[l4]}` };
    return { ok: true, syn: false, tuple: { ...base, proto: 'icmp', sport: (pkt[l4 + 4]! << 8) | pkt[l4 + 5]!, dport: 0 } };
  }
  return { ok: false, reason: `protocol-${p.protocol}` };
}

/** The mark a packet goes back with: DENY for deny, ALLOW for allow and log; other bits kept. */
export function egressMark(old: number, action: EgressAction, marks: AgentMarks = DEFAULT_AGENT_MARK): number {
  return withMark(old, action === 'deny' ? marks.deny : marks.allow, egressBits(marks));
}
