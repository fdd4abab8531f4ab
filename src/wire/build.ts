// Builders for whole IP packets with correct lengths and checksums. Used by tests, fixtures,
// the benchmark and tools; not on the per-packet path.
import {
  ipv4HeaderChecksum,
  onesSum,
  finishChecksum,
  pseudoHeaderSumV4,
  pseudoHeaderSumV6,
  setTcpPacketLengthAndChecksums,
  tcpChecksumV4,
  tcpChecksumV6,
} from './checksum.js';
import { IPPROTO_TCP, IPPROTO_UDP, parseIpPacket } from './packet.js';

export interface IpSpec {
  family: 4 | 6;
  /** 4 or 16 bytes; defaults 192.0.2.1 / 2001:db8::1 (documentation ranges). */
  src?: Uint8Array;
  dst?: Uint8Array;
  ttl?: number;
  /** IPv4 options (padded to a multiple of 4 with EOL). */
  ipv4Options?: Uint8Array;
  /** IPv4 identification and flags. */
  id?: number;
  dontFragment?: boolean;
  /** IPv6 extension headers to insert before the upper layer: each is [type, body-after-2-bytes]. */
  ipv6ExtHeaders?: ReadonlyArray<{ type: 0 | 43 | 60; body?: Uint8Array }>;
}

export interface TcpSpec extends IpSpec {
  srcPort?: number;
  dstPort?: number;
  seq?: number;
  ack?: number;
  flags?: number;
  window?: number;
  /** Raw option bytes, padded to a multiple of 4 with EOL. */
  options?: Uint8Array;
  payload?: Uint8Array;
}

export interface UdpSpec extends IpSpec {
  srcPort?: number;
  dstPort?: number;
  payload?: Uint8Array;
}

const DEFAULT_V4_SRC = Uint8Array.of(192, 0, 2, 1);
const DEFAULT_V4_DST = Uint8Array.of(192, 0, 2, 2);
const DEFAULT_V6_SRC = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);
const DEFAULT_V6_DST = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2);

function pad4(n: number): number {
  return (n + 3) & ~3;
}

/** Writes the IP header(s) for an L4 segment of l4Len bytes; returns [buffer, l4Offset]. */
function ipFrame(spec: IpSpec, protocol: number, l4Len: number): [Buffer, number] {
  if (spec.family === 4) {
    const optLen = pad4(spec.ipv4Options?.length ?? 0);
    const hl = 20 + optLen;
    const buf = Buffer.alloc(hl + l4Len);
    buf[0] = 0x40 | (hl / 4);
    buf.writeUInt16BE(hl + l4Len, 2);
    buf.writeUInt16BE(spec.id ?? 0x1234, 4);
    buf.writeUInt16BE(spec.dontFragment === false ? 0 : 0x4000, 6);
    buf[8] = spec.ttl ?? 64;
    buf[9] = protocol;
    buf.set(spec.src ?? DEFAULT_V4_SRC, 12);
    buf.set(spec.dst ?? DEFAULT_V4_DST, 16);
    if (spec.ipv4Options) buf.set(spec.ipv4Options, 20);
    buf.writeUInt16BE(ipv4HeaderChecksum(buf, 0, hl), 10);
    return [buf, hl];
  }
  const exts = spec.ipv6ExtHeaders ?? [];
  let extLen = 0;
  const sizes = exts.map((e) => {
    const s = Math.max(8, (2 + (e.body?.length ?? 0) + 7) & ~7);
    extLen += s;
    return s;
  });
  const buf = Buffer.alloc(40 + extLen + l4Len);
  buf[0] = 0x60;
  buf.writeUInt16BE(extLen + l4Len, 4);
  buf[6] = exts.length > 0 ? exts[0]!.type : protocol;
  buf[7] = spec.ttl ?? 64;
  buf.set(spec.src ?? DEFAULT_V6_SRC, 8);
  buf.set(spec.dst ?? DEFAULT_V6_DST, 24);
  let off = 40;
  exts.forEach((e, i) => {
    buf[off] = i + 1 < exts.length ? exts[i + 1]!.type : protocol;
    buf[off + 1] = sizes[i]! / 8 - 1;
    if (e.body) buf.set(e.body, off + 2);
    // The TCP checksum below uses the header's destination: right while a routing header's
    // segments-left (body byte 1) is 0; after setting it, call fixChecksums.
    off += sizes[i]!;
  });
  return [buf, off];
}

/** A complete IPv4/IPv6 TCP packet with correct lengths and checksums. */
export function buildTcpPacket(spec: TcpSpec): Buffer {
  const optLen = pad4(spec.options?.length ?? 0);
  const payload = spec.payload ?? new Uint8Array(0);
  const hl = 20 + optLen;
  if (hl > 60) throw new RangeError(`TCP options too long: ${optLen} bytes`);
  const [buf, l4] = ipFrame(spec, IPPROTO_TCP, hl + payload.length);
  buf.writeUInt16BE(spec.srcPort ?? 40000, l4);
  buf.writeUInt16BE(spec.dstPort ?? 80, l4 + 2);
  buf.writeUInt32BE((spec.seq ?? 1) >>> 0, l4 + 4);
  buf.writeUInt32BE((spec.ack ?? 0) >>> 0, l4 + 8);
  buf[l4 + 12] = (hl / 4) << 4;
  buf[l4 + 13] = spec.flags ?? 0x18;
  buf.writeUInt16BE(spec.window ?? 65535, l4 + 14);
  if (spec.options) buf.set(spec.options, l4 + 20);
  buf.set(payload, l4 + hl);
  const segLen = hl + payload.length;
  const cs = spec.family === 4 ? tcpChecksumV4(buf, 0, l4, segLen) : tcpChecksumV6(buf, 0, l4, segLen);
  buf.writeUInt16BE(cs, l4 + 16);
  return buf;
}

/** A complete IPv4/IPv6 UDP packet with correct lengths and checksum. */
export function buildUdpPacket(spec: UdpSpec): Buffer {
  const payload = spec.payload ?? new Uint8Array(0);
  const len = 8 + payload.length;
  const [buf, l4] = ipFrame(spec, IPPROTO_UDP, len);
  buf.writeUInt16BE(spec.srcPort ?? 40000, l4);
  buf.writeUInt16BE(spec.dstPort ?? 53, l4 + 2);
  buf.writeUInt16BE(len, l4 + 4);
  buf.set(payload, l4 + 8);
  const srcOff = spec.family === 4 ? 12 : 8;
  const dstOff = spec.family === 4 ? 16 : 24;
  const pseudo =
    spec.family === 4 ? pseudoHeaderSumV4(buf, srcOff, dstOff, IPPROTO_UDP, len) : pseudoHeaderSumV6(buf, srcOff, dstOff, IPPROTO_UDP, len);
  let cs = finishChecksum(pseudo + onesSum(buf, l4, len));
  if (cs === 0) cs = 0xffff; // RFC 768: zero means "no checksum"
  buf.writeUInt16BE(cs, l4 + 6);
  return buf;
}

/** Common option bytes, e.g. for SYN segments in tests: MSS 1460, SACK-permitted, timestamps, NOP, wscale 7. */
export function typicalSynOptions(tsval = 1, tsecr = 0): Uint8Array {
  const b = Buffer.alloc(20);
  b.set([2, 4, 0x05, 0xb4, 4, 2, 8, 10], 0);
  b.writeUInt32BE(tsval >>> 0, 8);
  b.writeUInt32BE(tsecr >>> 0, 12);
  b.set([1, 3, 3, 7], 16);
  return b;
}

/**
 * Recomputes the IPv4 header checksum and the TCP checksum of a whole packet in place (after a
 * test or tool has edited it). Returns false when the packet does not parse as TCP/IP.
 */
export function fixChecksums(pkt: Uint8Array): boolean {
  const p = parseIpPacket(pkt);
  if (!p.ok || !p.tcp) return false;
  setTcpPacketLengthAndChecksums(pkt, p.family, p.l4Offset, p.totalLen, p.pseudoDstOffset);
  return true;
}
