// Per-frame decisions for captures: the same pure label/verify code the datapath uses, behind
// the link-layer decoding.
import { labelPacket, verifyPacket, type VerifyResult } from '../label/compat.js';
import type { LabelKey } from '../label/keys.js';
import { decodeLink, familyMatches } from './link.js';

/** One verdict for a captured frame. */
export function verifyFrame(linktype: number, frame: Uint8Array, keys: readonly LabelKey[]): VerifyResult {
  const d = decodeLink(linktype, frame);
  if (d.kind === 'skipped') return { verdict: 'skipped', reason: d.reason };
  if (d.kind === 'malformed') return { verdict: 'malformed', reason: d.reason };
  const ip = frame.subarray(d.ipOffset);
  if (!familyMatches(d.family, ip)) return { verdict: 'malformed', reason: 'bad-ip-version' };
  return verifyPacket(ip, keys);
}

export type LabelFrameResult =
  | { labelled: true; frame: Buffer }
  | { labelled: false; verdict: 'skipped' | 'malformed'; reason: string };

/** Labels the TCP packet inside a frame, rebuilding the frame around it; anything else is reported, not changed. */
export function labelFrame(linktype: number, frame: Uint8Array, key: LabelKey): LabelFrameResult {
  const d = decodeLink(linktype, frame);
  if (d.kind !== 'ip') return { labelled: false, verdict: d.kind, reason: d.reason };
  const ip = frame.subarray(d.ipOffset);
  if (!familyMatches(d.family, ip)) return { labelled: false, verdict: 'malformed', reason: 'bad-ip-version' };
  // One allocation: the link header, then the labelled packet written in place after it (the
  // label adds at most 40 bytes: the options it replaces are never negative in length).
  const out = Buffer.allocUnsafe(d.ipOffset + ip.length + 40);
  const r = labelPacket(ip, key, out.subarray(d.ipOffset));
  if (!r.ok) return { labelled: false, verdict: r.verdict, reason: r.reason };
  out.set(frame.subarray(0, d.ipOffset), 0);
  return { labelled: true, frame: out.subarray(0, d.ipOffset + r.packet.length) };
}
