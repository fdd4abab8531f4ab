// Cutting a GSO/TSO super-packet into the wire segments the kernel would have made of it
// (net/ipv4/tcp_offload.c, tcp_gso_segment; inet_gso_segment and ipv6_gso_segment for the IP
// headers): every segment has the super-packet's IP header and TCP header, its options
// included; segment i carries payload bytes [i*size, (i+1)*size), seq + i*size, CWR only on
// the first, PSH and FIN only on the last, the IPv4 id + i (the stack reserved one id per
// segment), and its own lengths. Pure: the labelling path writes each one into a send slot
// and labels it there (the profile computes the checksums).
import { setTcpPacketLengthAndChecksums } from '../wire/checksum.js';
import type { ParsedPacket } from '../wire/packet.js';
import { TCP_CWR, TCP_FIN, TCP_PSH } from '../wire/tcp.js';

/** How many segments of `size` payload bytes a super-packet with `payloadLen` bytes makes (at least 1). */
export function segmentCount(payloadLen: number, size: number): number {
  return payloadLen <= size ? 1 : Math.ceil(payloadLen / size);
}

/**
 * Writes segment `i` of the super-packet `pkt` (parsed as `p`, a TCP packet) cut at `size`
 * payload bytes into `dst` from byte 0, and returns its length. IP length fields are set; the
 * IPv4 header checksum and the TCP checksum are not (see finishSegment). `dst` must not
 * overlap `pkt` and must hold the headers and `size` bytes.
 */
export function writeSegment(pkt: Uint8Array, p: ParsedPacket, size: number, i: number, dst: Uint8Array): number {
  const tcp = p.tcp!;
  const hdr = tcp.payloadOffset; // IP header + TCP header with options
  const off = i * size;
  const len = Math.min(size, tcp.payloadLen - off);
  const last = off + len >= tcp.payloadLen;
  for (let k = 0; k < hdr; k++) dst[k] = pkt[k]!; // at most 120 bytes: cheaper than a view and set()
  dst.set(pkt.subarray(hdr + off, hdr + off + len), hdr);
  const total = hdr + len;
  const t = tcp.offset;
  const seq = (tcp.seq + off) >>> 0;
  dst[t + 4] = seq >>> 24;
  dst[t + 5] = (seq >>> 16) & 0xff;
  dst[t + 6] = (seq >>> 8) & 0xff;
  dst[t + 7] = seq & 0xff;
  let flags = tcp.flags;
  if (i > 0) flags &= ~TCP_CWR;
  if (!last) flags &= ~(TCP_PSH | TCP_FIN);
  dst[t + 13] = flags;
  if (p.family === 4) {
    dst[2] = total >>> 8;
    dst[3] = total & 0xff;
    const id = (((pkt[4]! << 8) | pkt[5]!) + i) & 0xffff;
    dst[4] = id >>> 8;
    dst[5] = id & 0xff;
  } else {
    const pl = total - 40;
    dst[4] = pl >>> 8;
    dst[5] = pl & 0xff;
  }
  return total;
}

/** Sets the IP header checksum (IPv4) and the full TCP checksum of a segment writeSegment made (for one sent unlabelled). */
export function finishSegment(dst: Uint8Array, p: ParsedPacket, total: number): void {
  setTcpPacketLengthAndChecksums(dst, p.family, p.l4Offset, total, p.pseudoDstOffset);
}
