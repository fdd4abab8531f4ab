// The agent's GSO path, the part that is pure apart from the HMAC: a super-packet (or a segment
// that would not fit the path once labelled) in, labelled wire segments out, written into the
// transmitter's slots, in order. The handler sends them (datapath/raw-transmit.ts) and drops
// the original.
import type { LabelKey } from '../label/keys.js';
import type { LabelProfile, PacketContext } from '../label/profile.js';
import { parseIpPacket, type ParsedPacket } from '../wire/packet.js';
import { finishSegment, writeSegment } from './segment.js';

export interface CutResult {
  /** Segments written into slots[0..written). */
  written: number;
  /** Of those, labelled / sent without a label (the profile skipped them: no room for the label, as on the per-segment path). */
  labelled: number;
  unlabelled: number;
  compact: number;
  sackTrimmed: number;
  optionsRemoved: number;
  /** Bytes written (the labelled segments' lengths). */
  bytes: number;
  /** Set when a segment could not be made (then the super-packet is dropped: fail closed). */
  error?: string;
}

const result: CutResult = { written: 0, labelled: 0, unlabelled: 0, compact: 0, sackTrimmed: 0, optionsRemoved: 0, bytes: 0 };

/**
 * Cuts segments first..first+slots.length-1 (as many as there are) of the super-packet `pkt`
 * (parsed `p`) at `size` payload bytes, labels each in its slot with `profile` and `key`, and
 * stores each one's length in lens[j]. Returns a reused result object.
 */
export function cutAndLabel(
  profile: LabelProfile,
  pkt: Uint8Array,
  p: ParsedPacket,
  size: number,
  first: number,
  key: LabelKey,
  ctx: PacketContext | undefined,
  slots: readonly Buffer[],
  lens: Uint32Array,
): CutResult {
  const r = result;
  r.written = r.labelled = r.unlabelled = r.compact = r.sackTrimmed = r.optionsRemoved = r.bytes = 0;
  r.error = undefined;
  const payloadLen = p.tcp!.payloadLen;
  // The profile's fast path for the segments after this call's first, from the first's layout.
  const sibling = profile.labelSibling;
  let template: Buffer | undefined;
  for (let j = 0; j < slots.length; j++) {
    const i = first + j;
    if (i > 0 && i * size >= payloadLen) break;
    const slot = slots[j]!;
    if (template && sibling) {
      const s = sibling(template, pkt, p, size, i, slot);
      if (s.length > 0) {
        lens[j] = s.length;
        r.labelled++;
        if (s.compact) r.compact++;
        if (s.sackTrimmed) r.sackTrimmed++;
        if (s.optionsRemoved) r.optionsRemoved++;
        r.bytes += s.length;
        r.written++;
        continue;
      }
    }
    const len = writeSegment(pkt, p, size, i, slot);
    // The slot itself, not a view of its first len bytes: the IP length says where the segment
    // ends (the rest of the slot reads as link padding), and labelling in place is a no-copy case.
    const ps = parseIpPacket(slot);
    if (!ps.ok) {
      r.error = ps.reason;
      return r;
    }
    const l = profile.label(slot, ps, key, slot, ctx);
    if (l.ok && (l.packet.buffer !== slot.buffer || l.packet.byteOffset !== slot.byteOffset)) {
      // The profile wrote elsewhere (the slot was too small): what is in the slot is not it.
      r.error = 'segment-larger-than-slot';
      return r;
    }
    if (l.ok) {
      lens[j] = l.packet.length;
      if (j === 0) template = slot;
      r.labelled++;
      if (l.compact) r.compact++;
      if (l.sackTrimmed) r.sackTrimmed++;
      if (l.optionsRemoved) r.optionsRemoved++;
      r.bytes += lens[j]!;
    } else if (l.verdict === 'skipped') {
      finishSegment(slot, ps, len);
      lens[j] = len;
      r.unlabelled++;
    } else {
      r.error = l.reason;
      return r;
    }
    r.written++;
  }
  return r;
}
