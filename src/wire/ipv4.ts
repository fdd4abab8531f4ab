// IPv4 header (RFC 791), options kept as opaque bytes.
import type { MalformedReason } from './malformed.js';

export const IPV4_MIN_HEADER = 20;

export interface Ipv4Header {
  ok: true;
  headerLen: number; // IHL * 4, options included
  totalLen: number;
  protocol: number;
  ttl: number;
  id: number;
  dontFragment: boolean;
  moreFragments: boolean;
  fragmentOffset: number; // in 8-byte units
  checksum: number;
}

export type Ipv4ParseResult = Ipv4Header | { ok: false; reason: MalformedReason; detail?: string };

/** Parses the IPv4 header at the start of buf. Trailing bytes past totalLen (link-layer padding) are allowed. */
export function parseIpv4(buf: Uint8Array): Ipv4ParseResult {
  if (buf.length < IPV4_MIN_HEADER) return { ok: false, reason: 'truncated-ip', detail: `${buf.length} bytes, IPv4 header needs 20` };
  const b0 = buf[0]!;
  if (b0 >> 4 !== 4) return { ok: false, reason: 'bad-ip-version', detail: `version ${b0 >> 4}` };
  const headerLen = (b0 & 0x0f) * 4;
  if (headerLen < IPV4_MIN_HEADER) return { ok: false, reason: 'bad-ihl', detail: `IHL ${headerLen / 4}` };
  const totalLen = (buf[2]! << 8) | buf[3]!;
  if (totalLen < headerLen) return { ok: false, reason: 'bad-total-length', detail: `total length ${totalLen} < header ${headerLen}` };
  if (buf.length < headerLen) return { ok: false, reason: 'truncated-ip', detail: `${buf.length} bytes, IPv4 header needs ${headerLen}` };
  if (buf.length < totalLen) return { ok: false, reason: 'truncated-ip', detail: `${buf.length} bytes, total length says ${totalLen}` };
  const ff = (buf[6]! << 8) | buf[7]!;
  return {
    ok: true,
    headerLen,
    totalLen,
    protocol: buf[9]!,
    ttl: buf[8]!,
    id: (buf[4]! << 8) | buf[5]!,
    dontFragment: (ff & 0x4000) !== 0,
    moreFragments: (ff & 0x2000) !== 0,
    fragmentOffset: ff & 0x1fff,
    checksum: (buf[10]! << 8) | buf[11]!,
  };
}
