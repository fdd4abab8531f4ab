// Independent reference implementations and generators for the wire/label tests. The naive
// checksum here is deliberately written differently from src/wire/checksum.ts (16-bit words,
// folding as it goes) so that the two cross-check each other.
import fc from 'fast-check';

/** RFC 1071 checksum over the concatenation of the given byte arrays, the straightforward way. */
export function naiveChecksum(...parts: Uint8Array[]): number {
  const all: number[] = [];
  for (const p of parts) for (const b of p) all.push(b);
  if (all.length % 2) all.push(0);
  let sum = 0;
  for (let i = 0; i < all.length; i += 2) {
    sum += (all[i]! << 8) | all[i + 1]!;
    sum = (sum & 0xffff) + (sum >>> 16);
  }
  return ~sum & 0xffff;
}

/** Pseudo-header bytes for TCP (protocol 6) as the RFCs draw them. */
export function pseudoHeader(family: 4 | 6, src: Uint8Array, dst: Uint8Array, l4Len: number): Uint8Array {
  if (family === 4) return Uint8Array.of(...src, ...dst, 0, 6, l4Len >> 8, l4Len & 0xff);
  return Uint8Array.of(...src, ...dst, (l4Len >>> 24) & 0xff, (l4Len >>> 16) & 0xff, (l4Len >>> 8) & 0xff, l4Len & 0xff, 0, 0, 0, 6);
}

/**
 * Checks IP header checksum (v4) and TCP checksum of a TCP packet whose L4 starts at l4 and
 * whose addresses are at the standard offsets. Returns true when both are correct.
 */
export function packetChecksumsOk(pkt: Uint8Array, l4: number): boolean {
  const family = (pkt[0]! >> 4) as 4 | 6;
  let total: number;
  if (family === 4) {
    if (naiveChecksum(pkt.subarray(0, l4)) !== 0) return false;
    total = (pkt[2]! << 8) | pkt[3]!;
  } else {
    total = 40 + ((pkt[4]! << 8) | pkt[5]!);
  }
  const src = family === 4 ? pkt.subarray(12, 16) : pkt.subarray(8, 24);
  const dst = family === 4 ? pkt.subarray(16, 20) : pkt.subarray(24, 40);
  return naiveChecksum(pseudoHeader(family, src, dst, total - l4), pkt.subarray(l4, total)) === 0;
}

/** A well-formed TCP option (bytes), of the kinds a real stack sends plus unknown/experimental ones. */
export const tcpOptionArb: fc.Arbitrary<number[]> = fc.oneof(
  fc.constant<number[]>([1]),
  fc.integer({ min: 0, max: 0xffff }).map((m) => [2, 4, m >> 8, m & 0xff]),
  fc.integer({ min: 0, max: 14 }).map((s) => [3, 3, s]),
  fc.constant<number[]>([4, 2]),
  fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 8, maxLength: 8 }).map((b) => [8, 10, ...b]),
  fc
    .integer({ min: 1, max: 3 })
    .chain((n) => fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 8 * n, maxLength: 8 * n }).map((b) => [5, 2 + 8 * n, ...b])),
  // unknown kind, arbitrary length
  fc
    .tuple(fc.integer({ min: 30, max: 252 }), fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 10 }))
    .map(([k, b]) => [k, 2 + b.length, ...b]),
  // someone else's RFC 6994 experiment on kind 253
  fc
    .tuple(
      fc.integer({ min: 0, max: 0xffff }).filter((x) => x !== 0x4677),
      fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 8 }),
    )
    .map(([e, b]) => [253, 4 + b.length, e >> 8, e & 0xff, ...b]),
);

/** A well-formed option list of at most 40 bytes (whole options only, unpadded). */
export const tcpOptionsArb: fc.Arbitrary<Uint8Array> = fc.array(tcpOptionArb, { maxLength: 8 }).map((opts) => {
  const out: number[] = [];
  for (const o of opts) if (out.length + o.length <= 40) out.push(...o);
  return Uint8Array.from(out);
});

export function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}
