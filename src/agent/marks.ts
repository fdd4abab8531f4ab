// Packet mark bits the agent uses. A queued packet comes back with NF_REPEAT and one of
// these marks, so the rest of the ruleset runs as usual and our chain skips it the second time.
/** Bits the agent owns in skb->mark. */
export const AGENT_MARK_MASK = 0x3000;
/** Seen by the agent (labelled, handshake rewritten, or deliberately left alone). */
export const AGENT_MARK_DONE = 0x1000;
/** Egress policy said deny: a filter rule rejects it (TCP reset, ICMP unreachable). */
export const AGENT_MARK_DENY = 0x2000;

export function withMark(old: number, value: number, mask: number): number {
  return ((old & ~mask) | value) >>> 0;
}
