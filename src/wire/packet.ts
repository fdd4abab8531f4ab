// One entry point from raw IP bytes to a parsed view: IPv4 or IPv6, then TCP when present.
// Nothing here throws for any input; every failure is a typed reason.
import type { MalformedReason } from './malformed.js';
import { parseIpv4 } from './ipv4.js';
import { IPV6_HEADER, parseIpv6 } from './ipv6.js';
import { parseTcp, type TcpView } from './tcp.js';

/** IP version of a packet, and the one name for an address family in code (config says ipv4/ipv6). */
export type Family = 4 | 6;

/**
 * The longest IP packet of a family: IPv4's total length counts its header, IPv6's payload
 * length does not count the 40-byte fixed header (jumbograms are not supported).
 */
export function maxPacketLength(family: Family): number {
  return family === 4 ? 65535 : 65535 + IPV6_HEADER;
}

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;

export interface ParsedPacket {
  ok: true;
  family: Family;
  /** Offset of the L4 header (IPv4 options and IPv6 extension headers included); equals l4Offset. */
  ipHeaderLen: number;
  /** Upper-layer protocol (after IPv6 extension headers). */
  protocol: number;
  /** Views (not copies) of the source and destination addresses: 4 or 16 bytes (made on first use). */
  readonly src: Uint8Array;
  readonly dst: Uint8Array;
  srcOffset: number;
  dstOffset: number;
  /** Destination address used by the L4 checksum's pseudo-header: dstOffset, or for IPv6 with a routing header the final destination. */
  pseudoDstOffset: number;
  l4Offset: number;
  /** IP total length as the header declares it; bytes of the buffer past it are link padding. */
  totalLen: number;
  /** Present when protocol is TCP. */
  tcp?: TcpView;
}

export interface MalformedPacket {
  ok: false;
  reason: MalformedReason;
  detail?: string;
}

export type ParseResult = ParsedPacket | MalformedPacket;

/** Parses an IP packet (IPv4 or IPv6 by the version nibble) and its TCP header if it is TCP. */
export function parseIpPacket(buf: Uint8Array): ParseResult {
  if (buf.length < 1) return { ok: false, reason: 'truncated-ip', detail: 'empty packet' };
  const version = buf[0]! >> 4;
  let family: Family;
  let l4Offset: number;
  let totalLen: number;
  let protocol: number;
  let srcOffset: number;
  let dstOffset: number;
  let addrLen: number;
  let pseudoDstOffset: number;
  if (version === 4) {
    const h = parseIpv4(buf);
    if (!h.ok) return h;
    if (h.moreFragments || h.fragmentOffset !== 0) {
      return { ok: false, reason: 'fragment', detail: `IPv4 fragment (offset ${h.fragmentOffset * 8}${h.moreFragments ? ', MF' : ''})` };
    }
    family = 4;
    l4Offset = h.headerLen;
    totalLen = h.totalLen;
    protocol = h.protocol;
    srcOffset = 12;
    dstOffset = 16;
    addrLen = 4;
    pseudoDstOffset = 16;
  } else if (version === 6) {
    const h = parseIpv6(buf);
    if (!h.ok) return h;
    family = 6;
    l4Offset = h.l4Offset;
    totalLen = h.totalLen;
    protocol = h.protocol;
    srcOffset = 8;
    dstOffset = 24;
    addrLen = 16;
    pseudoDstOffset = h.finalDstOffset;
  } else {
    return { ok: false, reason: 'bad-ip-version', detail: `version ${version}` };
  }
  let tcp: TcpView | undefined;
  if (protocol === IPPROTO_TCP) {
    const t = parseTcp(buf, l4Offset, totalLen - l4Offset);
    if (!t.ok) return t;
    tcp = t.tcp;
  }
  return new Parsed(buf, family, protocol, srcOffset, dstOffset, pseudoDstOffset, addrLen, l4Offset, totalLen, tcp);
}

/** ParsedPacket with lazily made address views: the verify path never needs them. */
class Parsed implements ParsedPacket {
  readonly ok = true as const;
  #src: Uint8Array | undefined;
  #dst: Uint8Array | undefined;
  constructor(
    private readonly buf: Uint8Array,
    readonly family: Family,
    readonly protocol: number,
    readonly srcOffset: number,
    readonly dstOffset: number,
    readonly pseudoDstOffset: number,
    private readonly addrLen: number,
    readonly l4Offset: number,
    readonly totalLen: number,
    readonly tcp: TcpView | undefined,
  ) {}
  get ipHeaderLen(): number {
    return this.l4Offset;
  }
  get src(): Uint8Array {
    return (this.#src ??= this.buf.subarray(this.srcOffset, this.srcOffset + this.addrLen));
  }
  get dst(): Uint8Array {
    return (this.#dst ??= this.buf.subarray(this.dstOffset, this.dstOffset + this.addrLen));
  }
}

/** Formats an address view as text (IPv6 compressed per RFC 5952). For logs and tools, not the hot path. */
export function formatAddress(addr: Uint8Array): string {
  if (addr.length === 4) return `${addr[0]}.${addr[1]}.${addr[2]}.${addr[3]}`;
  const words: number[] = [];
  for (let i = 0; i + 1 < addr.length; i += 2) words.push((addr[i]! << 8) | addr[i + 1]!);
  // Longest run of zero words (length >= 2) becomes "::".
  let bestStart = -1,
    bestLen = 0;
  for (let i = 0; i < words.length; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < words.length && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}
