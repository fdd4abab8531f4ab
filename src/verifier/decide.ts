// The verifier's per-packet decision (pure apart from the HMAC): which rule selects the
// packet, what its label says, and what the rule's action makes of that.
//   drop: valid goes on (marked), everything else is dropped.
//   mark: everything goes on with mark bits for its verdict (NF_REPEAT).
//   log:  everything goes on (marked) and is counted.
// A rule's `tags` narrow what is valid: a valid label whose app tag is not listed is judged
// 'invalid' (reason 'tag-denied') and meets the rule's action as an invalid one would.
import { parseIpPacket, type ParsedPacket } from '../wire/packet.js';
import type { LabelProfile, PacketContext, Verdict } from '../label/profile.js';
import type { LabelKey } from '../label/keys.js';
import { matchCidrs, matchPorts } from '../util/match.js';
import { ifaceMatchesAny } from '../util/ifaces.js';
import type { MarkBits, VerifierRule } from '../config/model.js';

/** A rule inside the worker: its keys loaded (config/model.ts has the one rule type). */
export type RuntimeVerifierRule = VerifierRule<readonly LabelKey[]>;

export interface VerifierDecision {
  verdict: 'repeat' | 'drop' | 'accept';
  mark: number;
  judged: Verdict | 'unmatched';
  rule: number;
  reason?: string;
  keyFingerprint?: string;
  /** From the label, when the profile parsed it (v1): its profile, key id and app tag. */
  profile?: string;
  keyId?: number;
  tag?: number;
  /**
   * No rule matched in userspace although iptables queued the packet (an interface unknown or
   * renamed since the handler last read the names): it was judged by the first rule whose
   * addresses and ports match, ignoring interfaces, or else by the first rule.
   */
  fallback?: boolean;
  /** The source address, when the packet parsed (for listing sources of bad segments). */
  src?: Uint8Array;
  /** The parsed packet, when it parsed: the handler's log line and flow report use it instead of parsing again. */
  packet?: ParsedPacket;
}

/**
 * First rule whose interfaces, addresses and destination port all match; -1 if none. Interface
 * names match as in iptables (a trailing "+" is a prefix wildcard, util/ifaces.ts), so this is
 * the rule iptables' first match queued the packet for. `ignoreInterfaces`: skip the interface
 * criteria (for the fallback when the names are not known).
 */
export function selectRule(
  rules: readonly RuntimeVerifierRule[],
  src: Uint8Array | undefined,
  dst: Uint8Array | undefined,
  dport: number | undefined,
  inName: string | undefined,
  outName: string | undefined,
  ignoreInterfaces = false,
): number {
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    if (!ignoreInterfaces && r.inInterfaces.length && (inName === undefined || !ifaceMatchesAny(r.inInterfaces, inName))) continue;
    if (!ignoreInterfaces && r.outInterfaces.length && (outName === undefined || !ifaceMatchesAny(r.outInterfaces, outName))) continue;
    if (r.sources.length && (!src || !matchCidrs(r.sources, src))) continue;
    if (r.destinations.length && (!dst || !matchCidrs(r.destinations, dst))) continue;
    if (r.ports.length && (dport === undefined || !matchPorts(r.ports, dport))) continue;
    return i;
  }
  return -1;
}

function markFor(bits: MarkBits, v: Verdict): number {
  switch (v) {
    case 'valid':
      return bits.valid;
    case 'invalid':
      return bits.invalid;
    case 'unlabelled':
      return bits.unlabelled;
    // Not TCP cannot be selected by our rules; if it ever is, it is as unjudgeable as malformed.
    case 'malformed':
    case 'skipped':
      return bits.malformed;
  }
}

/** Shift that puts a value's lowest bit on `mask`'s lowest set bit (0 for mask 0). */
export function maskShift(mask: number): number {
  return mask === 0 ? 0 : 31 - Math.clz32(mask & -mask);
}

/** `oldMark` with the tag in `tagMask` (shifted to the mask's lowest set bit; bits beyond the mask are cut). */
export function withTagMark(oldMark: number, tagMask: number, tag: number): number {
  if (tagMask === 0) return oldMark >>> 0;
  return ((oldMark & ~tagMask) | ((tag << maskShift(tagMask)) & tagMask)) >>> 0;
}

/**
 * Judges one queued packet with the label profile `profile`. `ctx` carries what the profile
 * needs besides the packet; the caller sets its epoch window once and reuses it, this function
 * sets the clock (`nowMs`) and the rule's NAT tolerance on it for every packet.
 */
export function decideVerifierPacket(
  profile: LabelProfile,
  pkt: Buffer,
  oldMark: number,
  rules: readonly RuntimeVerifierRule[],
  bits: MarkBits,
  inName: string | undefined,
  outName: string | undefined,
  ctx: PacketContext = {},
  nowMs: number = Date.now(),
): VerifierDecision {
  const p = parseIpPacket(pkt);
  // An unparseable packet can only be placed by rules that do not look at addresses or ports.
  let ruleIndex = p.ok
    ? selectRule(rules, p.src, p.dst, p.tcp?.dstPort, inName, outName)
    : selectRule(rules, undefined, undefined, undefined, inName, outName);
  let fallback = false;
  if (ruleIndex < 0 && rules.length > 0) {
    // Only selected packets are queued, so a packet here that no rule matches means the handler
    // disagrees with iptables (an interface it cannot name yet, or renamed). Passing it unjudged
    // would open the filter: judge it, by addresses and ports alone, else by the first rule.
    fallback = true;
    ruleIndex = p.ok ? selectRule(rules, p.src, p.dst, p.tcp?.dstPort, inName, outName, true) : -1;
    if (ruleIndex < 0) ruleIndex = 0;
  }
  if (ruleIndex < 0) return { verdict: 'accept', mark: oldMark, judged: 'unmatched', rule: -1 };
  const rule = rules[ruleIndex]!;
  ctx.timeMs = nowMs;
  ctx.allowNat = rule.allowNat ?? 0;
  const v = p.ok ? profile.verify(pkt, p, rule.keys, ctx) : { verdict: 'malformed' as const, reason: p.reason };
  let judged = v.verdict;
  let reason = v.reason;
  // A label without a tag (compat, or v1's 0) is unclassified: tag 0.
  if (judged === 'valid' && rule.tags && !rule.tags.includes(v.tag ?? 0)) {
    judged = 'invalid';
    reason = 'tag-denied';
  }
  let mark = ((oldMark & ~bits.mask) | markFor(bits, judged)) >>> 0;
  // Mark mode hands the decision to the administrator's rules: the app tag rides in its own
  // bits, cleared on everything else so that only a valid label can put a tag there.
  if (rule.action === 'mark') mark = withTagMark(mark, bits.tagMask, judged === 'valid' ? (v.tag ?? 0) : 0);
  const keyFingerprint = judged === 'valid' && v.keyIndex !== undefined ? rule.keys[v.keyIndex]?.fingerprint : undefined;
  const pass = rule.action !== 'drop' || judged === 'valid';
  return {
    verdict: pass ? 'repeat' : 'drop',
    mark,
    judged,
    rule: ruleIndex,
    reason,
    keyFingerprint,
    ...(v.profile !== undefined ? { profile: v.profile } : {}),
    ...(v.keyId !== undefined ? { keyId: v.keyId } : {}),
    ...(v.tag !== undefined ? { tag: v.tag } : {}),
    src: p.ok ? p.src : undefined,
    packet: p.ok ? p : undefined,
    ...(fallback ? { fallback } : {}),
  };
}
