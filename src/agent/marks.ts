// Packet mark bits the agent uses. A queued packet comes back with NF_REPEAT and one of
// these marks, so the rest of the ruleset runs as usual and our chains skip it the second time.
// Each stage owns its own bits and keeps the others: the egress decision (ALLOW/DENY) must
// survive labelling, or the labelled SYN would be queued for a decision again.
/** Bits the agent owns in skb->mark. */
export const AGENT_MARK_MASK = 0x7000;
/** Seen by the labelling queue (labelled, handshake rewritten, or deliberately left alone). */
export const AGENT_MARK_DONE = 0x1000;
/** Egress policy said deny: a filter rule rejects it (TCP reset, ICMP unreachable). */
export const AGENT_MARK_DENY = 0x2000;
/** Egress policy said allow (or log): the packet goes on, to labelling when selected. */
export const AGENT_MARK_ALLOW = 0x4000;
/** Bits of the egress decision: a packet with either set has been judged. */
export const AGENT_MARK_EGRESS = AGENT_MARK_DENY | AGENT_MARK_ALLOW;

export function withMark(old: number, value: number, mask: number): number {
  return ((old & ~mask) | value) >>> 0;
}
