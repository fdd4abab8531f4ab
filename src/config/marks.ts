// Packet mark bits the agent uses. A queued packet comes back with NF_REPEAT and one of
// these marks, so the rest of the ruleset runs as usual and our chains skip it the second time.
// Each stage owns its own bits and keeps the others: the egress decision (ALLOW/DENY) must
// survive labelling, or the labelled SYN would be queued for a decision again.
//
// The bits are configurable (`agent.mark` in the config, checked there: non-zero, disjoint, and
// outside the verifier's mask). The defaults 0x2/0x4/0x8 stay clear of the marks other common
// tools use on the same hosts (README, "Mark bits of other tools"): kube-proxy 0x4000
// (masquerade) and 0x8000 (drop), Calico's mask 0xffff0000, Cilium's 0x0f00 and 0x1000, and the
// verifier's own default mask 0x0f00.

/** The agent's three marks; each non-zero, no bit shared with another. */
export interface AgentMarks {
  /** Seen by the labelling queue (labelled, handshake rewritten, or deliberately left alone). */
  done: number;
  /** Egress policy said deny: a filter rule rejects it (TCP reset, ICMP unreachable). */
  deny: number;
  /** Egress policy said allow (or log): the packet goes on, to labelling when selected. */
  allow: number;
}

export const DEFAULT_AGENT_MARK: Readonly<AgentMarks> = { done: 0x2, deny: 0x4, allow: 0x8 };

/**
 * Where a flow's v1 app tag travels from the egress worker to the labelling workers
 * (`agent.mark.tag_mask`): the egress verdict sets it in skb->mark, CONNMARK saves it in the
 * conntrack mark and restores it onto every later packet of the flow (agent/rules.ts). 16
 * contiguous bits, or 0 = no tags. The upper 16 bits are Calico's too (README, "Mark bits of
 * other tools"): they are used only when an egress rule gives a tag.
 */
export const DEFAULT_AGENT_TAG_MASK = 0xffff0000;

/** The lowest set bit's position of a mask (the tag is stored shifted there); 0 for 0. */
export function maskShift(mask: number): number {
  if (mask === 0) return 0;
  return 31 - Math.clz32((mask & -mask) >>> 0);
}

/** Whether `mask` is 16 contiguous bits (one tag fits exactly). */
export function isTagMask(mask: number): boolean {
  return mask !== 0 && mask >>> maskShift(mask) === 0xffff;
}

/** The tag carried in a mark under `mask` (0 when the mask is 0). */
export function tagOfMark(mark: number, mask: number): number {
  return mask === 0 ? 0 : ((mark & mask) >>> 0) >>> maskShift(mask);
}

/** `old` with `tag` written under `mask` (unchanged when the mask is 0). */
export function withTag(old: number, tag: number, mask: number): number {
  return mask === 0 ? old : withMark(old, ((tag << maskShift(mask)) & mask) >>> 0, mask);
}

/** Bits the agent owns in skb->mark by default. */
export const AGENT_MARK_MASK = DEFAULT_AGENT_MARK.done | DEFAULT_AGENT_MARK.deny | DEFAULT_AGENT_MARK.allow;
export const AGENT_MARK_DONE = DEFAULT_AGENT_MARK.done;
export const AGENT_MARK_DENY = DEFAULT_AGENT_MARK.deny;
export const AGENT_MARK_ALLOW = DEFAULT_AGENT_MARK.allow;

/** Bits of the egress decision of a set of marks. */
export function egressBits(m: AgentMarks): number {
  return (m.deny | m.allow) >>> 0;
}

export function withMark(old: number, value: number, mask: number): number {
  return ((old & ~mask) | value) >>> 0;
}
