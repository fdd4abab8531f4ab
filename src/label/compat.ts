// The "compat" label profile: byte-identical to the paper's Windows driver. Everything about
// its wire format is in this file; the rest of labelwall sees it only as a LabelProfile
// (profile.ts), picked by name from registry.ts.
//
//  byte  0      1      2..3          4..7            8..39
//       +------+------+-------------+---------------+------------------------------+
//       | 253  |  40  | ExID 0x4677 | reserved, 0s  | HMAC-SHA256 (32 bytes)       |
//       +------+------+-------------+---------------+------------------------------+
//
// MAC = HMAC-SHA256(key, seq || payload), seq = the 4 sequence-number bytes as on the wire,
// payload = the TCP payload (possibly empty). The label is the only option of a labelled
// segment, so its TCP header is always 60 bytes.
import { timingSafeEqual } from 'node:crypto';
import { setTcpPacketLengthAndChecksums } from '../wire/checksum.js';
import { IPPROTO_TCP, maxPacketLength, parseIpPacket, type ParsedPacket } from '../wire/packet.js';
import { segmentWithHeaderRoom, type TcpView } from '../wire/tcp.js';
import { checkTcpOptions, findExperimentalOption, OPT_DUPLICATE, OPT_MALFORMED, OPT_NOT_FOUND } from '../wire/tcpopts.js';
import type { LabelKey } from './keys.js';
import type { FindLabelResult, LabelProfile, LabelResult, VerifyResult } from './profile.js';

export const LABEL_KIND = 253;
export const LABEL_LENGTH = 40;
export const LABEL_EXID = 0x4677;
/** Offsets inside the option. */
export const LABEL_EXID_OFFSET = 2;
export const LABEL_RESERVED_OFFSET = 4;
export const LABEL_MAC_OFFSET = 8;
export const LABEL_MAC_LENGTH = 32;
/** TCP header length of every labelled segment: 20 + the 40-byte label. */
export const LABELLED_TCP_HEADER = 60;
/** Bytes a labelled packet may grow by relative to an option-less segment. */
export const LABEL_OVERHEAD = LABEL_LENGTH;

/** The paper's reference driver key: 24 zero bytes then ASCII "firewall". A test vector only. */
export const PAPER_TEST_KEY: Buffer = Buffer.concat([Buffer.alloc(24), Buffer.from('firewall', 'ascii')]);

/** HMAC-SHA256(key, seqBytes || payload). seqBytes: the 4 sequence-number bytes as on the wire. */
export function computeMac(key: LabelKey, seqBytes: Uint8Array, payload: Uint8Array): Buffer {
  return Buffer.from(key.mac(seqBytes, payload));
}

/** The 40 option bytes for a given MAC. */
export function buildLabelOption(mac: Uint8Array, out: Uint8Array = Buffer.alloc(LABEL_LENGTH), off = 0): Uint8Array {
  out[off] = LABEL_KIND;
  out[off + 1] = LABEL_LENGTH;
  out[off + 2] = LABEL_EXID >>> 8;
  out[off + 3] = LABEL_EXID & 0xff;
  out[off + 4] = 0;
  out[off + 5] = 0;
  out[off + 6] = 0;
  out[off + 7] = 0;
  out.set(mac.subarray(0, LABEL_MAC_LENGTH), off + LABEL_MAC_OFFSET);
  return out;
}

/**
 * Locates our label among the options of a parsed TCP header. Ours = kind 253 with ExID
 * 0x4677; such an option with a length other than 40 is malformed. Kind 253 with another ExID
 * is someone else's experiment and is ignored.
 */
export function findLabelOption(buf: Uint8Array, tcp: TcpView): FindLabelResult {
  const r = findExperimentalOption(buf, tcp.optionsOffset, tcp.optionsLen, LABEL_KIND, LABEL_EXID);
  if (r === OPT_NOT_FOUND) return { found: false, reason: 'no-label' };
  if (r === OPT_MALFORMED) return { found: false, reason: 'bad-option-length', malformed: true };
  if (r === OPT_DUPLICATE) return { found: false, reason: 'duplicate-label', malformed: true };
  if (buf[r + 1] !== LABEL_LENGTH) return { found: false, reason: 'bad-label-length', malformed: true };
  return { found: true, offset: r };
}

/**
 * Labels a whole IPv4/IPv6 TCP packet: every TCP option is removed, the label becomes the only
 * option (data offset 15), IP total/payload length and both checksums are recomputed. IPv4
 * options and IPv6 extension headers are kept. Bytes past the IP total length (link padding)
 * are dropped. If `out` is given and large enough the packet is written there (it may be the
 * same memory as `pkt`, at the same offset) and a subarray of it is returned.
 */
export function labelPacket(pkt: Uint8Array, key: LabelKey, out?: Buffer): LabelResult {
  const p = parseIpPacket(pkt);
  if (!p.ok) return { ok: false, verdict: 'malformed', reason: p.reason };
  return labelParsed(pkt, p, key, out);
}

/** labelPacket for a packet the caller has already parsed (saves a parse on the datapath). */
export function labelParsed(pkt: Uint8Array, p: ParsedPacket, key: LabelKey, out?: Buffer): LabelResult {
  if (p.protocol !== IPPROTO_TCP || !p.tcp) return { ok: false, verdict: 'skipped', reason: 'not-tcp' };
  const tcp = p.tcp;
  // All options are replaced, but a segment whose option list is broken is not ours to fix.
  const bad = checkTcpOptions(pkt, tcp.optionsOffset, tcp.optionsLen);
  if (bad) return { ok: false, verdict: 'malformed', reason: bad };
  const l4 = p.l4Offset;
  const newSegLen = LABELLED_TCP_HEADER + tcp.payloadLen;
  const newTotal = l4 + newSegLen;
  if (newTotal > maxPacketLength(p.family)) return { ok: false, verdict: 'malformed', reason: 'too-large' };
  const payload = pkt.subarray(tcp.payloadOffset, tcp.payloadOffset + tcp.payloadLen);
  // MAC first: `out` may alias `pkt`, and the payload is moved below.
  const mac = key.mac(pkt.subarray(l4 + 4, l4 + 8), payload); // reused buffer: used at once below
  const dst = segmentWithHeaderRoom(pkt, tcp, payload, l4, LABELLED_TCP_HEADER, newTotal, out);
  buildLabelOption(mac, dst, l4 + 20);
  dst[l4 + 12] = 0xf0 | (pkt[l4 + 12]! & 0x0f); // data offset 15, reserved/AE bits kept
  setTcpPacketLengthAndChecksums(dst, p.family, l4, newTotal, p.pseudoDstOffset);
  return { ok: true, packet: dst };
}

/** Verifies a whole IP packet against any of `keys` (several keys may be valid during rollover). */
export function verifyPacket(pkt: Uint8Array, keys: readonly LabelKey[]): VerifyResult {
  const p = parseIpPacket(pkt);
  if (!p.ok) return { verdict: 'malformed', reason: p.reason };
  return verifyParsed(pkt, p, keys);
}

/** verifyPacket for an already parsed packet. */
export function verifyParsed(pkt: Uint8Array, p: ParsedPacket, keys: readonly LabelKey[]): VerifyResult {
  if (p.protocol !== IPPROTO_TCP || !p.tcp) return { verdict: 'skipped', reason: 'not-tcp' };
  const tcp = p.tcp;
  const f = findLabelOption(pkt, tcp);
  if (!f.found) return f.reason === 'no-label' ? { verdict: 'unlabelled', reason: 'no-label' } : { verdict: 'malformed', reason: f.reason };
  if (keys.length === 0) return { verdict: 'invalid', reason: 'no-keys' };
  const seq = pkt.subarray(tcp.offset + 4, tcp.offset + 8);
  const payload = pkt.subarray(tcp.payloadOffset, tcp.payloadOffset + tcp.payloadLen);
  const got = pkt.subarray(f.offset + LABEL_MAC_OFFSET, f.offset + LABEL_LENGTH);
  for (let i = 0; i < keys.length; i++) {
    if (timingSafeEqual(keys[i]!.mac(seq, payload), got)) return { verdict: 'valid', keyIndex: i };
  }
  return { verdict: 'invalid', reason: 'mac-mismatch' };
}

/** The compat profile as the rest of labelwall sees it. */
export const compat: LabelProfile = {
  name: 'compat',
  formatVersion: '0',
  optionKind: LABEL_KIND,
  optionLength: LABEL_LENGTH,
  // The label replaces every option, so a packet grows by at most the label itself.
  overhead: LABEL_OVERHEAD,
  // Labelled segments carry no other option, so the handshake must not negotiate any.
  handshake: { eraseOutbound: true, eraseInbound: true, mssClamp: LABEL_LENGTH },
  // Neither needs the packet context (no time, no tag): the functions themselves, no extra hop.
  label: labelParsed,
  verify: verifyParsed,
  findOption: findLabelOption,
  isOwnOption: (buf, at, len) => buf[at] === LABEL_KIND && len === LABEL_LENGTH && ((buf[at + 2]! << 8) | buf[at + 3]!) === LABEL_EXID,
};
