// Per-frame decisions for captures: the same pure label/verify code the datapath uses, behind
// the link-layer decoding.
import type { LabelKey } from '../label/keys.js';
import { labelWith, verifyWith, type LabelProfile, type PacketContext, type VerifyResult } from '../label/profile.js';
import { decodeLink, familyMatches } from './link.js';

/** One verdict for a captured frame, by `profile`; `ctx.timeMs` is the frame's capture time. */
export function verifyFrame(
  profile: LabelProfile,
  linktype: number,
  frame: Uint8Array,
  keys: readonly LabelKey[],
  ctx?: PacketContext,
): VerifyResult {
  const d = decodeLink(linktype, frame);
  if (d.kind === 'skipped') return { verdict: 'skipped', reason: d.reason };
  if (d.kind === 'malformed') return { verdict: 'malformed', reason: d.reason };
  const ip = frame.subarray(d.ipOffset);
  if (!familyMatches(d.family, ip)) return { verdict: 'malformed', reason: 'bad-ip-version' };
  return verifyWith(profile, ip, keys, ctx);
}

export type LabelFrameResult =
  | { labelled: true; frame: Buffer; compact?: boolean; sackTrimmed?: boolean; optionsRemoved?: boolean }
  | { labelled: false; verdict: 'skipped' | 'malformed'; reason: string };

/** Labels the TCP packet inside a frame, rebuilding the frame around it; anything else is reported, not changed. */
export function labelFrame(
  profile: LabelProfile,
  linktype: number,
  frame: Uint8Array,
  key: LabelKey,
  ctx?: PacketContext,
): LabelFrameResult {
  const d = decodeLink(linktype, frame);
  if (d.kind !== 'ip') return { labelled: false, verdict: d.kind, reason: d.reason };
  const ip = frame.subarray(d.ipOffset);
  if (!familyMatches(d.family, ip)) return { labelled: false, verdict: 'malformed', reason: 'bad-ip-version' };
  // One allocation: the link header, then the labelled packet written in place after it (a
  // label adds at most the profile's overhead).
  const out = Buffer.allocUnsafe(d.ipOffset + ip.length + profile.overhead);
  const r = labelWith(profile, ip, key, out.subarray(d.ipOffset), ctx);
  if (!r.ok) return { labelled: false, verdict: r.verdict, reason: r.reason };
  out.set(frame.subarray(0, d.ipOffset), 0);
  const frameOut = out.subarray(0, d.ipOffset + r.packet.length);
  return { labelled: true, frame: frameOut, compact: r.compact, sackTrimmed: r.sackTrimmed, optionsRemoved: r.optionsRemoved };
}
