// The "v1" label profile: a label bound to its flow that keeps TCP's options, names its key and
// carries the application tag. Everything about its wire format is in this file; the spec,
// byte by byte with worked examples, is docs/label-v1.md (normative text: issue 9).
//
//  byte  0      1        2..3          4                    5        6..7      8..19 (8..15)
//       +------+--------+-------------+--------------------+--------+---------+---------------------+
//       | 253  | 20/16  | ExID 0x4677 | 01 S D P keyid(3)  | epoch8 | app tag | MAC 12 (compact: 8) |
//       +------+--------+-------------+--------------------+--------+---------+---------------------+
//
// MAC = HMAC-SHA256(K_tag, M), K_tag = HMAC-SHA256(K[key id], "labelwall-v1" || key id || tag),
// M = option bytes 0-7 || E (4) || IP version || src || dst || sport || dport || seq || ack ||
//     TCP bytes 12-13 || window || urgent || canonical options || payload length (2) || payload.
//
// Layout chosen by the labeller (not part of the contract: a verifier reads any layout): the
// label is the first option, so it is always 4-byte aligned and before any EOL; the stack's
// options follow in their order, with their NOPs when they fit so, packed without NOPs when
// only that fits; the area is padded to a multiple of 4 with EOL (zero) bytes.
import { setTcpPacketLengthAndChecksums } from '../wire/checksum.js';
import { IPPROTO_TCP, maxPacketLength, type ParsedPacket } from '../wire/packet.js';
import { TCP_CWR, TCP_FIN, TCP_PSH, TCP_SYN, segmentWithHeaderRoom, type TcpView } from '../wire/tcp.js';
import {
  TCPOPT_AO,
  TCPOPT_EOL,
  TCPOPT_EXP2,
  TCPOPT_MD5,
  TCPOPT_MSS,
  TCPOPT_NOP,
  TCPOPT_SACK,
  TCPOPT_SACK_PERMITTED,
  TCPOPT_TIMESTAMP,
  TCPOPT_WSCALE,
  tcpOptionLengthOk,
} from '../wire/tcpopts.js';
import type { LabelKey } from './keys.js';
import {
  NAT_DST,
  NAT_PORTS,
  NAT_SRC,
  type FindLabelResult,
  type LabelProfile,
  type LabelResult,
  type PacketContext,
  type SiblingResult,
  type VerifyResult,
} from './profile.js';

export const V1_KIND = 253;
export const V1_EXID = 0x4677;
export const V1_FULL_LENGTH = 20;
export const V1_COMPACT_LENGTH = 16;
/** The compat profile's length for the same kind and ExID (a label of the other profile). */
const COMPAT_LENGTH = 40;
export const V1_MAC_OFFSET = 8;
export const V1_FULL_MAC = 12;
export const V1_COMPACT_MAC = 8;
/** Version bits (7-6 of byte 4) = 01. */
export const V1_VERSION_BITS = 0x40;
/** One epoch is 16 seconds. */
export const EPOCH_MS = 16_000;
export const DEFAULT_EPOCH_BEFORE = 2;
export const DEFAULT_EPOCH_AFTER = 1;
/** TCP options area limit (data offset 15). */
const MAX_OPTIONS = 40;
/** A packet grows by at most the full label: the other options are only ever kept, trimmed or removed. */
export const V1_OVERHEAD = V1_FULL_LENGTH;

/** Kinds the labeller may remove, by class, in the order it removes them (docs/label-v1.md, "Making room"). */
const TCPOPT_MPTCP = 30;
const TCPOPT_FASTOPEN = 34;
const EXID_FASTOPEN = 0xf989; // RFC 7413's experimental form on kind 254
const CLASS_KEEP = 0; // MSS, window scale, SACK-permitted, timestamps, MD5, AO: never removed
const CLASS_FASTOPEN = 1;
const CLASS_MPTCP = 2;
const CLASS_UNKNOWN = 3; // any other kind, others' RFC 6994 experiments included
const CLASS_SACK = 4; // removed whole only after the above (its blocks beyond the first go first)

/** Byte 4 of the option from the NAT flags and a key id. */
export function v1FlagsByte(nat: number, keyId: number): number {
  return V1_VERSION_BITS | (nat & NAT_SRC ? 0x20 : 0) | (nat & NAT_DST ? 0x10 : 0) | (nat & NAT_PORTS ? 0x08 : 0) | (keyId & 7);
}

/** NAT flags (NAT_* bits) of byte 4. */
export function v1NatFlags(b4: number): number {
  return (b4 & 0x20 ? NAT_SRC : 0) | (b4 & 0x10 ? NAT_DST : 0) | (b4 & 0x08 ? NAT_PORTS : 0);
}

// ---- per-tag keys ----------------------------------------------------------------------------

/** Tags cached per key; beyond this the oldest entry goes (a tag is a u16: the cache cannot grow without bound anyway). */
const TAG_CACHE_LIMIT = 1024;
const tagKeys = new WeakMap<LabelKey, Map<number, LabelKey>>();
const DERIVE_LABEL = Buffer.from('labelwall-v1', 'ascii');

/** The info string of K_tag: "labelwall-v1" || key id (1 byte) || tag (2 bytes, big-endian), in `into` (15 bytes) or a new buffer. */
export function tagKeyInfo(keyId: number, tag: number, into: Buffer = Buffer.alloc(DERIVE_LABEL.length + 3)): Buffer {
  DERIVE_LABEL.copy(into, 0);
  into[12] = keyId;
  into[13] = tag >>> 8;
  into[14] = tag & 0xff;
  return into;
}

// The last answer: a flow's segments (all of a super-packet) ask for the same key and tag.
let lastKey: LabelKey | undefined;
let lastTag = -1;
let lastTagKey: LabelKey | undefined;

/** K_tag for `key` (its own key id) and `tag`, derived once and cached (WeakMap per key, bounded Map per tag). */
export function tagKey(key: LabelKey, tag: number): LabelKey {
  if (key === lastKey && tag === lastTag) return lastTagKey!;
  const k = cachedTagKey(key, tag);
  lastKey = key;
  lastTag = tag;
  lastTagKey = k;
  return k;
}

/** K_tag for `key` and `tag` if it is already derived and cached, else undefined (nothing derived). */
function knownTagKey(key: LabelKey, tag: number): LabelKey | undefined {
  if (key === lastKey && tag === lastTag) return lastTagKey;
  return tagKeys.get(key)?.get(tag);
}

const infoScratch = Buffer.alloc(DERIVE_LABEL.length + 3);

function cachedTagKey(key: LabelKey, tag: number): LabelKey {
  let m = tagKeys.get(key);
  if (!m) {
    m = new Map();
    tagKeys.set(key, m);
  }
  let k = m.get(tag);
  if (!k) {
    k = key.derive(tagKeyInfo(key.keyId, tag));
    if (m.size >= TAG_CACHE_LIMIT) m.delete(m.keys().next().value!);
    m.set(tag, k);
  }
  return k;
}

// ---- epoch --------------------------------------------------------------------------------

/** E = floor(unix seconds / 16). */
export function epochOf(timeMs: number): number {
  return Math.floor(timeMs / EPOCH_MS);
}

/** The E in [nowE - before, nowE + after] whose low byte is epoch8 (the lowest if the window spans more than 256), or -1. */
export function resolveEpoch(epoch8: number, nowE: number, before: number, after: number): number {
  const lo = nowE - before;
  const e = lo + ((((epoch8 - lo) % 256) + 256) % 256);
  return e <= nowE + after ? e : -1;
}

// ---- scratch memory (one thread runs one packet at a time) ----------------------------------

/** M's prefix: at most 8 + 4 + 1 + 16 + 16 + 4 + 16 + 40 + 2 = 107 bytes. */
const mBuf = Buffer.alloc(128);
/** mPrefix[n] is mBuf[0, n): made once, not a new view for every segment's MAC. */
const mPrefix: readonly Uint8Array[] = Array.from({ length: mBuf.length + 1 }, (_, n) => mBuf.subarray(0, n));
/** A copy of the options as the stack wrote them (`out` may be the packet's own memory). */
const optCopy = Buffer.alloc(MAX_OPTIONS);
/** Per option of the packet: offset in optCopy, length, NOPs before it, removal class, kept length (0 = removed). */
const MAX_OPTS = MAX_OPTIONS;
const oOff = new Uint8Array(MAX_OPTS);
const oLen = new Uint8Array(MAX_OPTS);
const oNops = new Uint8Array(MAX_OPTS);
const oClass = new Uint8Array(MAX_OPTS);
const oKeep = new Uint8Array(MAX_OPTS);

/** Writes M's fields 2-7 (after the 8 option bytes) at mBuf[8..]; returns the offset where the canonical options go. */
function writeFlowFields(pkt: Uint8Array, p: ParsedPacket, tcp: TcpView, epoch: number, nat: number, b12: number, b13: number): number {
  const m = mBuf;
  m[8] = epoch >>> 24;
  m[9] = (epoch >>> 16) & 0xff;
  m[10] = (epoch >>> 8) & 0xff;
  m[11] = epoch & 0xff;
  const alen = p.family === 4 ? 4 : 16;
  m[12] = p.family;
  let o = 13;
  const zs = (nat & NAT_SRC) !== 0;
  for (let i = 0; i < alen; i++) m[o++] = zs ? 0 : pkt[p.srcOffset + i]!;
  // IPv6: the pseudo-header's destination (the final one behind a routing header).
  const zd = (nat & NAT_DST) !== 0;
  for (let i = 0; i < alen; i++) m[o++] = zd ? 0 : pkt[p.pseudoDstOffset + i]!;
  const t = tcp.offset;
  const zeroSport = (nat & NAT_SRC) !== 0 && (nat & NAT_PORTS) !== 0;
  const zeroDport = (nat & NAT_DST) !== 0 && (nat & NAT_PORTS) !== 0;
  m[o] = zeroSport ? 0 : pkt[t]!;
  m[o + 1] = zeroSport ? 0 : pkt[t + 1]!;
  m[o + 2] = zeroDport ? 0 : pkt[t + 2]!;
  m[o + 3] = zeroDport ? 0 : pkt[t + 3]!;
  o += 4;
  for (let i = 4; i < 12; i++) m[o++] = pkt[t + i]!; // seq, ack
  m[o++] = b12;
  m[o++] = b13;
  for (let i = 14; i < 16; i++) m[o++] = pkt[t + i]!; // window
  for (let i = 18; i < 20; i++) m[o++] = pkt[t + i]!; // urgent pointer (16-17, the checksum, is not covered)
  return o;
}

function optionClass(buf: Uint8Array, at: number, kind: number, len: number): number {
  switch (kind) {
    case TCPOPT_MSS:
    case TCPOPT_WSCALE:
    case TCPOPT_SACK_PERMITTED:
    case TCPOPT_TIMESTAMP:
    case TCPOPT_MD5:
    case TCPOPT_AO:
      return CLASS_KEEP;
    case TCPOPT_SACK:
      return CLASS_SACK;
    case TCPOPT_FASTOPEN:
      return CLASS_FASTOPEN;
    case TCPOPT_MPTCP:
      return CLASS_MPTCP;
    case TCPOPT_EXP2:
      return len >= 4 && ((buf[at + 2]! << 8) | buf[at + 3]!) === EXID_FASTOPEN ? CLASS_FASTOPEN : CLASS_UNKNOWN;
    default:
      return CLASS_UNKNOWN;
  }
}

/** Whether an option is one of ours (kind 253, ExID 0x4677), of either profile. */
function isOurs(buf: Uint8Array, at: number, kind: number, len: number): boolean {
  return kind === V1_KIND && len >= 4 && ((buf[at + 2]! << 8) | buf[at + 3]!) === V1_EXID;
}

/** Bytes of the kept options after the label: with the NOPs the stack put before each, or packed (`nops` false). */
function keptSize(n: number, nops: boolean): number {
  let s = 0;
  for (let i = 0; i < n; i++) if (oKeep[i]) s += oKeep[i]! + (nops ? oNops[i]! : 0);
  return s;
}

const pad4 = (n: number): number => (n + 3) & ~3;

/** What tryFit() chose: the label length and whether the NOPs stay. */
let fitLabel = 0;
let fitNops = false;

function tryFit(n: number, syn: boolean): boolean {
  const withNops = pad4(keptSize(n, true));
  const packed = pad4(keptSize(n, false));
  // Full form first (with the stack's NOPs, else packed); compact only when full does not fit, and never on a SYN.
  for (const len of syn ? FULL_ONLY : BOTH) {
    if (len + withNops <= MAX_OPTIONS) {
      fitLabel = len;
      fitNops = true;
      return true;
    }
    if (len + packed <= MAX_OPTIONS) {
      fitLabel = len;
      fitNops = false;
      return true;
    }
  }
  return false;
}
const FULL_ONLY = [V1_FULL_LENGTH] as const;
const BOTH = [V1_FULL_LENGTH, V1_COMPACT_LENGTH] as const;

/**
 * Labels a parsed IPv4/IPv6 TCP packet with v1 (docs/label-v1.md). Keeps the stack's options;
 * makes room when needed by trimming SACK to its first block, then removing options in the
 * documented order; never removes timestamps, MSS, window scale, SACK-permitted, MD5 or AO
 * (a segment where even then the label does not fit is skipped, reason 'no-room-for-label').
 * A label of ours already present (either profile) is replaced. IP lengths and checksums are
 * recomputed; link padding past the IP total length is dropped.
 */
export function labelV1(pkt: Uint8Array, p: ParsedPacket, key: LabelKey, out?: Buffer, ctx?: PacketContext): LabelResult {
  if (p.protocol !== IPPROTO_TCP || !p.tcp) return { ok: false, verdict: 'skipped', reason: 'not-tcp' };
  const tcp = p.tcp;
  const optLen = tcp.optionsLen;
  for (let i = 0; i < optLen; i++) optCopy[i] = pkt[tcp.optionsOffset + i]!;
  // Walk the stack's options: validate, and note each one with the NOPs before it.
  let n = 0;
  let nops = 0;
  for (let i = 0; i < optLen; ) {
    const kind = optCopy[i]!;
    if (kind === TCPOPT_EOL) break;
    if (kind === TCPOPT_NOP) {
      nops++;
      i++;
      continue;
    }
    if (i + 1 >= optLen) return { ok: false, verdict: 'malformed', reason: 'bad-option-length' };
    const len = optCopy[i + 1]!;
    if (!tcpOptionLengthOk(kind, len) || i + len > optLen) return { ok: false, verdict: 'malformed', reason: 'bad-option-length' };
    if (!isOurs(optCopy, i, kind, len)) {
      oOff[n] = i;
      oLen[n] = len;
      oNops[n] = nops;
      oClass[n] = optionClass(optCopy, i, kind, len);
      oKeep[n] = len;
      n++;
    }
    nops = 0;
    i += len;
  }
  const syn = (tcp.flags & TCP_SYN) !== 0;
  let sackTrimmed = false;
  let optionsRemoved = false;
  if (!tryFit(n, syn)) {
    // 1. SACK blocks beyond the first (the first holds the newest block, or the D-SACK).
    for (let j = 0; j < n; j++) {
      if (oClass[j] === CLASS_SACK && oKeep[j]! > 10) {
        oKeep[j] = 10;
        sackTrimmed = true;
      }
    }
    // 2-5. Whole options, class by class: Fast Open, MPTCP, unknown, then SACK itself.
    for (let cls = CLASS_FASTOPEN; cls <= CLASS_SACK && !tryFit(n, syn); cls++) {
      for (let j = 0; j < n; j++) {
        if (oClass[j] === cls && oKeep[j]) {
          oKeep[j] = 0;
          optionsRemoved = true;
        }
      }
    }
    if (!tryFit(n, syn)) return { ok: false, verdict: 'skipped', reason: 'no-room-for-label' };
  }
  const labelLen = fitLabel;
  const keepNops = fitNops;
  const areaLen = labelLen + pad4(keptSize(n, keepNops));
  const hdrLen = 20 + areaLen;
  const l4 = p.l4Offset;
  const newSegLen = hdrLen + tcp.payloadLen;
  const newTotal = l4 + newSegLen;
  if (newTotal > maxPacketLength(p.family)) return { ok: false, verdict: 'malformed', reason: 'too-large' };

  // M: the label's first 8 bytes, the flow fields, the canonical options, the payload length.
  const c = ctx;
  const tag = (c?.tag ?? 0) & 0xffff;
  const nat = (c?.nat ?? 0) & 7;
  const epoch = epochOf(c?.timeMs ?? Date.now());
  const m = mBuf;
  m[0] = V1_KIND;
  m[1] = labelLen;
  m[2] = V1_EXID >>> 8;
  m[3] = V1_EXID & 0xff;
  m[4] = v1FlagsByte(nat, key.keyId);
  m[5] = epoch & 0xff;
  m[6] = tag >>> 8;
  m[7] = tag & 0xff;
  const b12 = ((hdrLen / 4) << 4) | (pkt[tcp.offset + 12]! & 0x0f);
  let o = writeFlowFields(pkt, p, tcp, epoch, nat, b12, pkt[tcp.offset + 13]!);
  for (let j = 0; j < n; j++) {
    const keep = oKeep[j]!;
    if (keep === 0 || optCopy[oOff[j]!] === TCPOPT_MSS) continue;
    const from = oOff[j]!;
    for (let k = 0; k < keep; k++) m[o + k] = optCopy[from + k]!;
    m[o + 1] = keep; // a trimmed SACK says its new length
    o += keep;
  }
  m[o++] = tcp.payloadLen >>> 8;
  m[o++] = tcp.payloadLen & 0xff;
  const payload = pkt.subarray(tcp.payloadOffset, tcp.payloadOffset + tcp.payloadLen);
  // MAC before anything moves: `out` may be the packet's memory. mac() returns a reused buffer, used at once.
  const mac = tagKey(key, tag).mac(mPrefix[o]!, payload);

  const dst = segmentWithHeaderRoom(pkt, tcp, payload, l4, hdrLen, newTotal, out);
  const t = l4;
  dst[t + 12] = b12;
  let w = t + 20;
  for (let i = 0; i < 8; i++) dst[w + i] = m[i]!;
  const macLen = labelLen - V1_MAC_OFFSET;
  for (let i = 0; i < macLen; i++) dst[w + V1_MAC_OFFSET + i] = mac[i]!;
  w += labelLen;
  for (let j = 0; j < n; j++) {
    const keep = oKeep[j]!;
    if (keep === 0) continue;
    if (keepNops) for (let k = oNops[j]!; k > 0; k--) dst[w++] = TCPOPT_NOP;
    const from = oOff[j]!;
    for (let k = 0; k < keep; k++) dst[w + k] = optCopy[from + k]!;
    dst[w + 1] = keep;
    w += keep;
  }
  dst.fill(TCPOPT_EOL, w, t + hdrLen);
  setTcpPacketLengthAndChecksums(dst, p.family, l4, newTotal, p.pseudoDstOffset);
  const compact = labelLen === V1_COMPACT_LENGTH;
  keepTemplate(dst, p, l4 + hdrLen, labelLen, o, tagKey(key, tag), compact, sackTrimmed, optionsRemoved);
  if (!sackTrimmed && !optionsRemoved) return { ok: true, packet: dst, compact };
  return { ok: true, packet: dst, compact, sackTrimmed, optionsRemoved };
}

// ---- the GSO fast path: the other segments of a super-packet, from the first one's layout -----

// The kernel gives every segment of a super-packet the same IP header and TCP header, options
// included (tcp_gso_segment); only seq, flags (CWR on the first, PSH/FIN on the last), lengths
// and the IPv4 id differ. So once labelV1 has labelled one segment, the others need no option
// walk, no fitting and no M built anew: copy its header, patch those fields in it and in M,
// and MAC. The result is byte for byte what labelV1 makes of the same segment (unit-tested),
// except that the epoch is the first segment's: at a 16 s boundary a super-packet's later
// segments carry the E before, which every verifier's window (now_E - 2 at least) accepts.

/** Where the template is: the segment labelV1 wrote last (its memory and offset). */
let tBuffer: ArrayBufferLike | undefined;
let tByteOffset = -1;
let tFamily: 4 | 6 = 4;
/** Bytes of IP + TCP header (the label and options included), where the payload starts. */
let tHdrEnd = 0;
let tL4 = 0;
let tPseudoDst = 0;
let tMacLen = 0;
/** M's prefix as labelled (its own copy: verifyV1 reuses mBuf) and where seq, flags and the payload length are in it. */
const tM = Buffer.alloc(mBuf.length);
const tMPrefix: readonly Uint8Array[] = Array.from({ length: tM.length + 1 }, (_, n) => tM.subarray(0, n));
let tMLen = 0;
let tSeqAt = 0;
let tKey: LabelKey | undefined;
let tCompact = false;
let tSackTrimmed = false;
let tOptionsRemoved = false;

function keepTemplate(
  dst: Buffer,
  p: ParsedPacket,
  hdrEnd: number,
  labelLen: number,
  mLen: number,
  key: LabelKey,
  compact: boolean,
  sackTrimmed: boolean,
  optionsRemoved: boolean,
): void {
  tBuffer = dst.buffer;
  tByteOffset = dst.byteOffset;
  tFamily = p.family;
  tHdrEnd = hdrEnd;
  tL4 = p.l4Offset;
  tPseudoDst = p.pseudoDstOffset;
  tMacLen = labelLen - V1_MAC_OFFSET;
  for (let i = 0; i < mLen; i++) tM[i] = mBuf[i]!;
  tMLen = mLen;
  // 8 option bytes, E (4), the version (1), two addresses, two ports.
  tSeqAt = 13 + 2 * (p.family === 4 ? 4 : 16) + 4;
  tKey = key;
  tCompact = compact;
  tSackTrimmed = sackTrimmed;
  tOptionsRemoved = optionsRemoved;
}

const sibling: SiblingResult = { length: -1, compact: false, sackTrimmed: false, optionsRemoved: false };

/**
 * Labels segment `i` (payload cut at `size` bytes) of the super-packet `pkt` (parsed `p`) into
 * `dst` from byte 0, given `first`: another segment of the same super-packet that labelV1 was
 * the last to label (with the key and context wanted for this one). Returns a reused result;
 * length -1 when `first` is not that segment. `dst` must not overlap `pkt` or `first`.
 */
export function labelV1Sibling(first: Uint8Array, pkt: Uint8Array, p: ParsedPacket, size: number, i: number, dst: Buffer): SiblingResult {
  const r = sibling;
  if (first.buffer !== tBuffer || first.byteOffset !== tByteOffset || !p.tcp || p.family !== tFamily) {
    r.length = -1;
    return r;
  }
  const tcp = p.tcp;
  const off = i * size;
  const len = Math.min(size, tcp.payloadLen - off);
  const hdrEnd = tHdrEnd;
  const total = hdrEnd + len;
  for (let k = 0; k < hdrEnd; k++) dst[k] = first[k]!;
  const payload = new Uint8Array(pkt.buffer, pkt.byteOffset + tcp.payloadOffset + off, len);
  dst.set(payload, hdrEnd);
  const t = tL4;
  const m = tM;
  const seq = (tcp.seq + off) >>> 0;
  const sa = tSeqAt;
  m[sa] = dst[t + 4] = seq >>> 24;
  m[sa + 1] = dst[t + 5] = (seq >>> 16) & 0xff;
  m[sa + 2] = dst[t + 6] = (seq >>> 8) & 0xff;
  m[sa + 3] = dst[t + 7] = seq & 0xff;
  let flags = tcp.flags;
  if (i > 0) flags &= ~TCP_CWR;
  if (off + len < tcp.payloadLen) flags &= ~(TCP_PSH | TCP_FIN);
  m[sa + 9] = dst[t + 13] = flags; // after seq (4), ack (4) and byte 12
  m[tMLen - 2] = len >>> 8;
  m[tMLen - 1] = len & 0xff;
  if (tFamily === 4) {
    const id = (((pkt[4]! << 8) | pkt[5]!) + i) & 0xffff;
    dst[4] = id >>> 8;
    dst[5] = id & 0xff;
  }
  const mac = tKey!.mac(tMPrefix[tMLen]!, payload);
  const at = t + 20 + V1_MAC_OFFSET;
  for (let k = 0; k < tMacLen; k++) dst[at + k] = mac[k]!;
  setTcpPacketLengthAndChecksums(dst, tFamily, t, total, tPseudoDst);
  r.length = total;
  r.compact = tCompact;
  r.sackTrimmed = tSackTrimmed;
  r.optionsRemoved = tOptionsRemoved;
  return r;
}

/** Where M's canonical options start: 8 option bytes + E (4) + version (1) + 2 addresses + ports (4) + seq, ack, bytes 12-13, window, urgent (14). */
const CANON_AT_V4 = 31 + 2 * 4;
const CANON_AT_V6 = 31 + 2 * 16;

/** Result codes of the option walk below zero (the label's offset otherwise). */
const W_NONE = -1;
const W_BAD = -2;
const W_DUP = -3;
/** End of the canonical options written into mBuf by walkOptions. */
let canonEnd = 0;

/**
 * One pass over the options: validates them, finds our option (kind 253, ExID 0x4677, any
 * length), and, when `canonAt` >= 0, copies the canonical options (no NOPs, no MSS, not the
 * label, nothing after EOL) into mBuf from there (canonEnd says where they end).
 */
function walkOptions(buf: Uint8Array, off: number, len: number, canonAt: number): number {
  const end = off + len;
  let found = W_NONE;
  let o = canonAt;
  for (let i = off; i < end; ) {
    const kind = buf[i]!;
    if (kind === TCPOPT_EOL) break;
    if (kind === TCPOPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return W_BAD;
    const olen = buf[i + 1]!;
    if (!tcpOptionLengthOk(kind, olen) || i + olen > end) return W_BAD;
    if (isOurs(buf, i, kind, olen)) {
      if (found !== W_NONE) return W_DUP;
      found = i;
    } else if (canonAt >= 0 && kind !== TCPOPT_MSS) {
      for (let k = 0; k < olen; k++) mBuf[o++] = buf[i + k]!;
    }
    i += olen;
  }
  canonEnd = o;
  return found;
}

/** Locates our option and judges its form: v1 (16/20, version 01, not compact on a SYN) or compat (40). */
function findAny(buf: Uint8Array, tcp: TcpView, canonAt: number): FindLabelResult {
  const r = walkOptions(buf, tcp.optionsOffset, tcp.optionsLen, canonAt);
  if (r === W_NONE) return { found: false, reason: 'no-label' };
  if (r === W_BAD) return { found: false, reason: 'bad-option-length', malformed: true };
  if (r === W_DUP) return { found: false, reason: 'duplicate-label', malformed: true };
  const len = buf[r + 1]!;
  if (len === COMPAT_LENGTH) return { found: true, offset: r };
  if (len !== V1_FULL_LENGTH && len !== V1_COMPACT_LENGTH) return { found: false, reason: 'bad-label-length', malformed: true };
  if ((buf[r + 4]! & 0xc0) !== V1_VERSION_BITS) return { found: false, reason: 'bad-label-version', malformed: true };
  if (len === V1_COMPACT_LENGTH && (tcp.flags & TCP_SYN) !== 0) return { found: false, reason: 'compact-on-syn', malformed: true };
  return { found: true, offset: r };
}

/** findOption of the v1 profile: a compat (40-byte) label is found too; verify() calls it 'other-profile'. */
export function findV1Option(buf: Uint8Array, tcp: TcpView): FindLabelResult {
  return findAny(buf, tcp, -1);
}

/** Verifies a parsed packet's v1 label against `keys` (those whose key id the label names). */
export function verifyV1(pkt: Uint8Array, p: ParsedPacket, keys: readonly LabelKey[], ctx?: PacketContext): VerifyResult {
  if (p.protocol !== IPPROTO_TCP || !p.tcp) return { verdict: 'skipped', reason: 'not-tcp' };
  const tcp = p.tcp;
  const canonAt = p.family === 4 ? CANON_AT_V4 : CANON_AT_V6;
  const f = findAny(pkt, tcp, canonAt);
  if (!f.found) return f.reason === 'no-label' ? { verdict: 'unlabelled', reason: 'no-label' } : { verdict: 'malformed', reason: f.reason };
  const at = f.offset;
  const len = pkt[at + 1]!;
  // A compat label is ours but not v1: no proof this profile can check.
  if (len === COMPAT_LENGTH) return { verdict: 'invalid', reason: 'other-profile', profile: 'v1' };
  const b4 = pkt[at + 4]!;
  const keyId = b4 & 7;
  const nat = v1NatFlags(b4);
  const tag = (pkt[at + 6]! << 8) | pkt[at + 7]!;
  const compact = len === V1_COMPACT_LENGTH;
  const c = ctx;
  if ((nat & ~(c?.allowNat ?? 0)) !== 0) return { verdict: 'invalid', reason: 'nat-mode-denied', profile: 'v1', keyId, tag, nat, compact };
  if (keys.length === 0) return { verdict: 'invalid', reason: 'no-keys', profile: 'v1', keyId, tag, nat, compact };
  let ki = 0;
  while (ki < keys.length && keys[ki]!.keyId !== keyId) ki++;
  if (ki === keys.length) return { verdict: 'invalid', reason: 'unknown-key', profile: 'v1', keyId, tag, nat, compact };
  const epoch = resolveEpoch(
    pkt[at + 5]!,
    epochOf(c?.timeMs ?? Date.now()),
    c?.epochBefore ?? DEFAULT_EPOCH_BEFORE,
    c?.epochAfter ?? DEFAULT_EPOCH_AFTER,
  );
  if (epoch < 0) return { verdict: 'invalid', reason: 'stale-epoch', profile: 'v1', keyId, tag, nat, compact };
  const m = mBuf;
  for (let i = 0; i < 8; i++) m[i] = pkt[at + i]!;
  writeFlowFields(pkt, p, tcp, epoch, nat, pkt[tcp.offset + 12]!, pkt[tcp.offset + 13]!);
  let o = canonEnd;
  m[o++] = tcp.payloadLen >>> 8;
  m[o++] = tcp.payloadLen & 0xff;
  const prefix = mPrefix[o]!;
  const payload = pkt.subarray(tcp.payloadOffset, tcp.payloadOffset + tcp.payloadLen);
  const macLen = len - V1_MAC_OFFSET;
  // The key(s) holding the label's id: one HMAC when ids are unique (the config requires it);
  // several only where a tool was given several keys under one id (pcap verify -k a -k b).
  for (; ki < keys.length; ki++) {
    const key = keys[ki]!;
    if (key.keyId !== keyId) continue;
    // Only a tag some valid label has shown gets a cached K_tag: the tag is the sender's to
    // choose, and a forger's tags must cost no more than one extra HMAC and must not evict.
    const known = knownTagKey(key, tag);
    let mac: Buffer;
    if (known) mac = known.mac(prefix, payload);
    else mac = key.macDerived(tagKeyInfo(keyId, tag, infoScratch), prefix, payload);
    // Constant time over the MAC's length (no early exit on the first differing byte).
    let diff = 0;
    for (let i = 0; i < macLen; i++) diff |= mac[i]! ^ pkt[at + V1_MAC_OFFSET + i]!;
    if (diff === 0) {
      if (!known) tagKey(key, tag);
      return { verdict: 'valid', keyIndex: ki, profile: 'v1', keyId, tag, nat, compact };
    }
  }
  return { verdict: 'invalid', reason: 'mac-mismatch', profile: 'v1', keyId, tag, nat, compact };
}

/** Whether the option at `at`, `len` bytes long, is a v1 label (kind 253, ExID 0x4677, length 16 or 20). */
export function isV1Option(buf: Uint8Array, at: number, len: number): boolean {
  return buf[at] === V1_KIND && (len === V1_FULL_LENGTH || len === V1_COMPACT_LENGTH) && ((buf[at + 2]! << 8) | buf[at + 3]!) === V1_EXID;
}

/** The v1 profile as the rest of labelwall sees it. */
export const v1: LabelProfile = {
  name: 'v1',
  formatVersion: '1',
  optionKind: V1_KIND,
  optionLength: V1_FULL_LENGTH,
  overhead: V1_OVERHEAD,
  // The stack's options stay, so the handshake negotiates them; the peer's MSS leaves room for the full label.
  handshake: { eraseOutbound: false, eraseInbound: false, mssClamp: V1_FULL_LENGTH },
  label: labelV1,
  labelSibling: labelV1Sibling,
  verify: verifyV1,
  findOption: findV1Option,
  isOwnOption: isV1Option,
};
