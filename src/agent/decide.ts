// The agent's per-packet decision (pure apart from the HMAC): label what leaves, rewrite the
// options of handshakes that arrive. Every packet goes back with NF_REPEAT and the agent's mark,
// so the rest of the ruleset runs as if labelwall were not there.
import type { LabelKey } from '../label/keys.js';
import type { LabelProfile, PacketContext } from '../label/profile.js';
import { parseIpPacket } from '../wire/packet.js';
import type { AgentNatRule } from '../config/model.js';
import { matchCidrs } from '../util/match.js';
import { rewriteInboundSyn } from './handshake.js';
import { DEFAULT_AGENT_MARK, withMark, type AgentMarks } from '../config/marks.js';

export const NF_INET_LOCAL_IN = 1;
export const NF_INET_LOCAL_OUT = 3;

export const AGENT_COUNTERS = [
  'labelled',
  'labelled_bytes',
  'handshakes_rewritten',
  'handshakes_unchanged',
  'passed_not_tcp',
  // v1: TCP segments that left unlabelled because even after trimming the label did not fit
  // (TCP-MD5 or TCP-AO with timestamps; docs/label-v1.md).
  'unlabelled_no_room',
  'dropped_malformed',
  'inbound_malformed',
  // v1: labels in the 16-byte form (the full one did not fit), and what made room for them.
  'labelled_compact',
  'sack_trimmed',
  'options_removed',
  // The GSO path (agent.gso): super-packets taken whole, the segments cut from them and sent;
  // segments the kernel had made that were cut again because, labelled, they would not fit the
  // path MTU; super-packets dropped (larger than the queue copies, or a segment that could not
  // be made); segments the kernel refused on the raw socket (a DROP rule, a full queue); cuts
  // made at the fallback size because the socket's tcp_info could not be read.
  'gso_packets',
  'gso_segments',
  'oversize_cut',
  'gso_dropped',
  'transmit_errors',
  'segment_size_fallback',
  // Warning lines (not-labelled, not-cut) not written: over the worker's 20 per second.
  'log_suppressed',
] as const;
export type AgentCounter = (typeof AGENT_COUNTERS)[number];

export interface AgentDecision {
  verdict: 'repeat' | 'drop';
  mark: number;
  payload?: Buffer;
  counter: AgentCounter;
  reason?: string;
  /** v1: the compact form was used / what made room for the label (LabelResult). */
  compact?: boolean;
  sackTrimmed?: boolean;
  optionsRemoved?: boolean;
}

/** The NAT flags (agent.nat) for a destination: the first rule whose destinations hold it; 0 = strict. */
export function natFor(rules: readonly AgentNatRule[], dst: Uint8Array): number {
  for (const r of rules) if (matchCidrs(r.destinations, dst)) return r.nat;
  return 0;
}

/**
 * Decides one queued packet with the label profile `profile`. `hook` is the netfilter hook it
 * was queued from, `mtu` the MTU of the interface an inbound packet arrived on (for the MSS
 * clamp), `out` scratch space for the rewritten packet (valid until the next call), `ctx` what
 * the profile may need besides the packet (reused by the caller), `csumNotReady` the kernel's
 * word that the packet's checksum is not filled in yet (QueuedPacket.csumNotReady).
 */
export function decideAgentPacket(
  profile: LabelProfile,
  hook: number,
  pkt: Buffer,
  mark: number,
  mtu: number,
  key: LabelKey,
  out: Buffer,
  marks: AgentMarks = DEFAULT_AGENT_MARK,
  ctx?: PacketContext,
  nat?: readonly AgentNatRule[],
  csumNotReady = false,
): AgentDecision {
  // Only our own bit: the egress decision bits (marks.ts) must survive labelling.
  const done = withMark(mark, marks.done, marks.done);
  if (hook === NF_INET_LOCAL_IN) {
    const r = rewriteInboundSyn(profile, pkt, mtu, out, csumNotReady);
    if (r.kind === 'rewritten') return { verdict: 'repeat', mark: done, payload: r.packet, counter: 'handshakes_rewritten' };
    if (r.kind === 'malformed') return { verdict: 'repeat', mark: done, counter: 'inbound_malformed', reason: r.reason };
    return { verdict: 'repeat', mark: done, counter: 'handshakes_unchanged' };
  }
  const p = parseIpPacket(pkt);
  if (!p.ok) return { verdict: 'drop', mark, counter: 'dropped_malformed', reason: p.reason };
  if (ctx && nat && nat.length > 0) ctx.nat = natFor(nat, p.dst);
  const r = profile.label(pkt, p, key, out, ctx);
  if (r.ok) {
    const d: AgentDecision = { verdict: 'repeat', mark: done, payload: r.packet, counter: 'labelled' };
    if (r.compact) d.compact = true;
    if (r.sackTrimmed) d.sackTrimmed = true;
    if (r.optionsRemoved) d.optionsRemoved = true;
    return d;
  }
  if (r.verdict === 'skipped') {
    if (r.reason === 'not-tcp') return { verdict: 'repeat', mark: done, counter: 'passed_not_tcp' };
    // No room even after trimming: it leaves as the stack wrote it, counted and logged.
    return { verdict: 'repeat', mark: done, counter: 'unlabelled_no_room', reason: r.reason };
  }
  // An outgoing TCP segment we cannot label must not leave unlabelled (fail closed).
  return { verdict: 'drop', mark, counter: 'dropped_malformed', reason: r.reason };
}
