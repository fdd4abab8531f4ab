// IPv6 fixed header (RFC 8200) and the walk over extension headers to the upper layer.
import type { MalformedReason } from './malformed.js';

export const IPV6_HEADER = 40;

export const IPPROTO_HOPOPTS = 0;
export const IPPROTO_ROUTING = 43;
export const IPPROTO_FRAGMENT = 44;
export const IPPROTO_AH = 51;
export const IPPROTO_DSTOPTS = 60;
export const IPPROTO_NONE = 59;

export interface Ipv6Header {
  ok: true;
  payloadLen: number;
  totalLen: number; // 40 + payloadLen
  protocol: number; // upper-layer protocol after all extension headers
  l4Offset: number; // offset of the upper-layer header
  hopLimit: number;
  /**
   * Offset of the final destination address, which upper-layer checksums use (RFC 8200 §8.1):
   * the header's destination (24) unless a routing header still has segments left.
   */
  finalDstOffset: number;
}

export type Ipv6ParseResult = Ipv6Header | { ok: false; reason: MalformedReason; detail?: string };

/**
 * Parses the IPv6 header at the start of buf and skips hop-by-hop, routing, destination
 * options and AH headers. A fragment header makes the packet 'fragment' (TCP cannot be judged
 * from a fragment).
 */
export function parseIpv6(buf: Uint8Array): Ipv6ParseResult {
  if (buf.length < IPV6_HEADER) return { ok: false, reason: 'truncated-ip', detail: `${buf.length} bytes, IPv6 header needs 40` };
  if (buf[0]! >> 4 !== 6) return { ok: false, reason: 'bad-ip-version', detail: `version ${buf[0]! >> 4}` };
  const payloadLen = (buf[4]! << 8) | buf[5]!;
  // Payload length 0 with a hop-by-hop header means a jumbogram (RFC 2675); not supported.
  if (payloadLen === 0 && buf[6] === IPPROTO_HOPOPTS) return { ok: false, reason: 'bad-total-length', detail: 'jumbogram' };
  const totalLen = IPV6_HEADER + payloadLen;
  if (buf.length < totalLen) return { ok: false, reason: 'truncated-ip', detail: `${buf.length} bytes, payload length says ${totalLen}` };
  let next = buf[6]!;
  let off = IPV6_HEADER;
  let finalDstOffset = 24;
  // Bounded: every extension header is at least 8 bytes, so the loop ends within totalLen / 8 steps.
  for (;;) {
    if (
      next === IPPROTO_HOPOPTS ||
      next === IPPROTO_ROUTING ||
      next === IPPROTO_DSTOPTS ||
      next === IPPROTO_AH ||
      next === IPPROTO_FRAGMENT
    ) {
      if (off + 8 > totalLen) return { ok: false, reason: 'truncated-ext-header', detail: `extension header ${next} at ${off}` };
      if (next === IPPROTO_FRAGMENT) return { ok: false, reason: 'fragment', detail: 'IPv6 fragment header' };
      const len = next === IPPROTO_AH ? (buf[off + 1]! + 2) * 4 : (buf[off + 1]! + 1) * 8;
      if (off + len > totalLen)
        return { ok: false, reason: 'truncated-ext-header', detail: `extension header ${next} at ${off} length ${len}` };
      if (next === IPPROTO_ROUTING && buf[off + 3]! > 0) {
        const f = routingFinalDestination(buf, off, len);
        if (f < 0)
          return { ok: false, reason: 'truncated-ext-header', detail: `routing header type ${buf[off + 2]} at ${off} holds no address` };
        finalDstOffset = f;
      }
      next = buf[off]!;
      off += len;
      continue;
    }
    break;
  }
  return { ok: true, payloadLen, totalLen, protocol: next, l4Offset: off, hopLimit: buf[7]!, finalDstOffset };
}

/**
 * Where a routing header with segments left keeps the final destination, or the header's own
 * destination (24) for routing types that do not say; -1 when the header is too short to hold it.
 * Type 0 (deprecated) and 2 (Mobile IPv6): the last address of the list; type 4 (SRv6 SRH):
 * Segment List[0], the first address (segments are stored in reverse order).
 */
function routingFinalDestination(buf: Uint8Array, off: number, len: number): number {
  const type = buf[off + 2]!;
  if (type === 0 || type === 2) {
    const n = Math.floor((len - 8) / 16);
    return n >= 1 ? off + 8 + 16 * (n - 1) : -1;
  }
  if (type === 4) return len >= 24 ? off + 8 : -1;
  return 24;
}
