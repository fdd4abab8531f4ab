// TCP header (RFC 9293) as a view of offsets into the packet buffer: nothing is copied, so the
// datapath can parse >100k packets/s without garbage.
import type { MalformedReason } from './malformed.js';

export const TCP_MIN_HEADER = 20;
export const TCP_MAX_HEADER = 60;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

/** Offsets are absolute positions in the buffer that was parsed. */
export interface TcpView {
  offset: number; // start of the TCP header
  srcPort: number;
  dstPort: number;
  seq: number; // uint32
  ack: number; // uint32
  dataOffset: number; // header length in bytes (20..60)
  flags: number; // the 8 flag bits of byte 13
  window: number;
  checksum: number;
  urgent: number;
  optionsOffset: number;
  optionsLen: number;
  payloadOffset: number;
  payloadLen: number;
}

export type TcpParseResult = { ok: true; tcp: TcpView } | { ok: false; reason: MalformedReason; detail?: string };

/** Parses the TCP header of the segment buf[off, off+segLen). */
export function parseTcp(buf: Uint8Array, off: number, segLen: number): TcpParseResult {
  if (segLen < TCP_MIN_HEADER || off + TCP_MIN_HEADER > buf.length) {
    return { ok: false, reason: 'truncated-tcp', detail: `${segLen} bytes of TCP, header needs 20` };
  }
  const dataOffset = (buf[off + 12]! >> 4) * 4;
  if (dataOffset < TCP_MIN_HEADER) return { ok: false, reason: 'bad-data-offset', detail: `data offset ${dataOffset / 4}` };
  if (dataOffset > segLen) return { ok: false, reason: 'bad-data-offset', detail: `data offset ${dataOffset} bytes > segment ${segLen}` };
  return {
    ok: true,
    tcp: {
      offset: off,
      srcPort: (buf[off]! << 8) | buf[off + 1]!,
      dstPort: (buf[off + 2]! << 8) | buf[off + 3]!,
      seq: readU32(buf, off + 4),
      ack: readU32(buf, off + 8),
      dataOffset,
      flags: buf[off + 13]!,
      window: (buf[off + 14]! << 8) | buf[off + 15]!,
      checksum: (buf[off + 16]! << 8) | buf[off + 17]!,
      urgent: (buf[off + 18]! << 8) | buf[off + 19]!,
      optionsOffset: off + TCP_MIN_HEADER,
      optionsLen: dataOffset - TCP_MIN_HEADER,
      payloadOffset: off + dataOffset,
      payloadLen: segLen - dataOffset,
    },
  };
}

export function readU32(buf: Uint8Array, off: number): number {
  return ((buf[off]! << 24) >>> 0) + ((buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!);
}

export function writeU16(buf: Uint8Array, off: number, v: number): void {
  buf[off] = (v >>> 8) & 0xff;
  buf[off + 1] = v & 0xff;
}

/**
 * Where a labeller writes a segment whose TCP header grows (or shrinks) to `hdrLen` bytes: `out`
 * when it holds `newTotal` bytes, else a new buffer, with the IP header and the 20-byte TCP base
 * header of `pkt` at its start and `payload` (pkt's, from tcp.payloadOffset) at l4 + hdrLen. The
 * options area between is the caller's to write. `out` may be pkt's own memory at the same
 * offset (the GSO path labels each segment in its send slot): then only the payload moves.
 */
export function segmentWithHeaderRoom(
  pkt: Uint8Array,
  tcp: TcpView,
  payload: Uint8Array,
  l4: number,
  hdrLen: number,
  newTotal: number,
  out?: Buffer,
): Buffer {
  const dst = out && out.length >= newTotal ? out.subarray(0, newTotal) : Buffer.allocUnsafe(newTotal);
  if (dst.buffer === pkt.buffer && dst.byteOffset === pkt.byteOffset) {
    // Over the longer of the two packets: a header that shrinks moves the payload back from
    // bytes beyond newTotal (dst alone would clip the copy and leave old bytes in place).
    const end = tcp.payloadOffset + tcp.payloadLen;
    const span = end > newTotal ? new Uint8Array(dst.buffer, dst.byteOffset, end) : dst;
    span.copyWithin(l4 + hdrLen, tcp.payloadOffset, end);
  } else {
    dst.set(payload, l4 + hdrLen); // TypedArray.set copies overlapping ranges of one buffer correctly
    dst.set(pkt.subarray(0, l4 + TCP_MIN_HEADER), 0);
  }
  return dst;
}
