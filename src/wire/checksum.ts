// Internet checksum (RFC 1071) helpers. Sums are accumulated as plain numbers over 32-bit
// words and folded at the end: a 64 KiB packet adds up to < 2^46, far below 2^53, so no
// intermediate folding is needed. This runs per packet in the datapath, so: no allocation
// beyond one typed-array view, no Buffer.concat, no temporary arrays.

/** Adds the bytes buf[off, off+len) as big-endian 16-bit words to `initial`; an odd last byte is padded with zero. Returns an unfolded sum. */
export function onesSum(buf: Uint8Array, off: number, len: number, initial = 0): number {
  if (len >= 64 && ((buf.byteOffset + off) & 1) === 0) return initial + alignedSum(buf, off, len);
  let sum = initial;
  let i = off;
  const end = off + len;
  const end4 = off + (len & ~3);
  for (; i < end4; i += 4) sum += ((buf[i]! << 8) | buf[i + 1]!) + ((buf[i + 2]! << 8) | buf[i + 3]!);
  if (i + 1 < end) {
    sum += (buf[i]! << 8) | buf[i + 1]!;
    i += 2;
  }
  if (i < end) sum += buf[i]! << 8;
  return sum;
}

/**
 * Fast path for long, even-aligned ranges: sums native (little-endian on x86/arm) 32-bit words
 * through a Uint32Array and swaps the folded result. The ones-complement sum does not depend
 * on byte order (RFC 1071 §2(B)), and a 32-bit word folds like its two 16-bit halves.
 */
function alignedSum(buf: Uint8Array, off: number, len: number): number {
  let sum = 0;
  let abs = buf.byteOffset + off;
  if (abs & 2) {
    sum += (buf[off]! << 8) | buf[off + 1]!;
    off += 2;
    len -= 2;
    abs += 2;
  }
  const words = len >>> 2;
  const u32 = new Uint32Array(buf.buffer, abs, words);
  let native = 0;
  for (let k = 0; k < words; k++) native += u32[k]!;
  native = foldSum(native);
  sum += LITTLE_ENDIAN ? ((native & 0xff) << 8) | (native >>> 8) : native;
  for (let i = off + words * 4; i < off + len; i += 2) sum += i + 1 < off + len ? (buf[i]! << 8) | buf[i + 1]! : buf[i]! << 8;
  return sum;
}

const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** Folds an accumulated sum to 16 bits (end-around carry), without complementing. */
export function foldSum(sum: number): number {
  // The sum may exceed 32 bits, so use arithmetic rather than bit operators for the first folds.
  while (sum > 0xffff) sum = (sum % 0x10000) + Math.floor(sum / 0x10000);
  return sum;
}

/** Folds and complements: the value to store in a checksum field. */
export function finishChecksum(sum: number): number {
  return ~foldSum(sum) & 0xffff;
}

/** Checksum of an IPv4 header at buf[off, off+headerLen), treating the checksum field (bytes 10..11) as zero. */
export function ipv4HeaderChecksum(buf: Uint8Array, off: number, headerLen: number): number {
  const sum = onesSum(buf, off, 10) + onesSum(buf, off + 12, headerLen - 12);
  return finishChecksum(sum);
}

/** Sum of the IPv4 pseudo-header (src, dst, zero, protocol, L4 length). */
export function pseudoHeaderSumV4(buf: Uint8Array, srcOff: number, dstOff: number, protocol: number, l4Len: number): number {
  return onesSum(buf, srcOff, 4) + onesSum(buf, dstOff, 4) + protocol + l4Len;
}

/** Sum of the IPv6 pseudo-header (RFC 8200 §8.1: src, dst, 32-bit length, 3 zero bytes, next header). */
export function pseudoHeaderSumV6(buf: Uint8Array, srcOff: number, dstOff: number, protocol: number, l4Len: number): number {
  return onesSum(buf, srcOff, 16) + onesSum(buf, dstOff, 16) + protocol + Math.floor(l4Len / 0x10000) + (l4Len & 0xffff);
}

/**
 * TCP checksum of the segment buf[l4Off, l4Off+l4Len) given a pseudo-header sum, treating the
 * checksum field (segment bytes 16..17) as zero. Returns the value to store.
 */
export function tcpChecksumWithPseudo(buf: Uint8Array, l4Off: number, l4Len: number, pseudo: number): number {
  const sum = pseudo + onesSum(buf, l4Off, 16) + onesSum(buf, l4Off + 18, l4Len - 18);
  return finishChecksum(sum);
}

/** TCP checksum for IPv4: addresses at their usual header offsets (12, 16) from ipOff. */
export function tcpChecksumV4(buf: Uint8Array, ipOff: number, l4Off: number, l4Len: number): number {
  return tcpChecksumWithPseudo(buf, l4Off, l4Len, pseudoHeaderSumV4(buf, ipOff + 12, ipOff + 16, 6, l4Len));
}

/**
 * TCP checksum for IPv6: source at ipOff+8, destination at ipOff+24 unless dstOff says where
 * the final destination is (routing header; see ParsedPacket.pseudoDstOffset).
 */
export function tcpChecksumV6(buf: Uint8Array, ipOff: number, l4Off: number, l4Len: number, dstOff = ipOff + 24): number {
  return tcpChecksumWithPseudo(buf, l4Off, l4Len, pseudoHeaderSumV6(buf, ipOff + 8, dstOff, 6, l4Len));
}

/** True when the stored checksum of an L4 segment is correct (the sum over everything including the field folds to 0xffff). */
export function l4ChecksumOk(buf: Uint8Array, l4Off: number, l4Len: number, pseudo: number): boolean {
  return foldSum(pseudo + onesSum(buf, l4Off, l4Len)) === 0xffff;
}

/** True when an IPv4 header's stored checksum is correct. */
export function ipv4HeaderChecksumOk(buf: Uint8Array, off: number, headerLen: number): boolean {
  return foldSum(onesSum(buf, off, headerLen)) === 0xffff;
}

/**
 * After a TCP segment at `l4Off` of the IP packet at offset 0 was rewritten to `total` bytes:
 * writes the IP length field (IPv4 total length, IPv6 payload length), the IPv4 header checksum
 * and the TCP checksum (IPv6: over the pseudo-header destination at `pseudoDstOff`, the final one
 * when there is a routing header). In place, no allocation: the labellers call it per segment.
 */
export function setTcpPacketLengthAndChecksums(buf: Uint8Array, family: 4 | 6, l4Off: number, total: number, pseudoDstOff = 24): void {
  const segLen = total - l4Off;
  let cs: number;
  if (family === 4) {
    buf[2] = total >>> 8;
    buf[3] = total & 0xff;
    const ipcs = ipv4HeaderChecksum(buf, 0, l4Off);
    buf[10] = ipcs >>> 8;
    buf[11] = ipcs & 0xff;
    cs = tcpChecksumV4(buf, 0, l4Off, segLen);
  } else {
    const pl = total - 40;
    buf[4] = pl >>> 8;
    buf[5] = pl & 0xff;
    cs = tcpChecksumV6(buf, 0, l4Off, segLen, pseudoDstOff);
  }
  buf[l4Off + 16] = cs >>> 8;
  buf[l4Off + 17] = cs & 0xff;
}
