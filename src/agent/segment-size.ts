// How many payload bytes each wire segment cut from a super-packet may carry.
//
// NFQUEUE does not pass the super-packet's gso_size (the stack's current MSS), so the agent
// asks the socket: sock_diag's tcp_info gives snd_mss (tp->mss_cache: the MSS from the path MTU
// and the peer's MSS as the agent clamped it in the handshake, minus the options every segment
// carries, i.e. timestamps) and pmtu (the path MTU the socket learned, ICMP "fragmentation
// needed" / "packet too big" included). The stack's own size is snd_mss less the options this
// super-packet carries beyond the usual ones (SACK blocks: tcp_current_mss does the same). A
// labelled segment is longer than the stack's by the label, so where the path MTU, not the
// peer's MSS, is what bounds the stack's size, the cut is smaller by the label: the kernel's
// size would not fit the path once labelled (and the non-GSO path cannot fix that).
//
// When the socket cannot be asked (gone, another namespace), the cut falls back to the
// smallest MSS every path carries (RFC 9293 and RFC 8200: 536 and 1220 bytes) bounded by the
// output interface's MTU: always safe, slower.
import type { ParsedPacket } from '../wire/packet.js';

export interface TcpPathInfo {
  /** tcpi_snd_mss. */
  sndMss: number;
  /** tcpi_pmtu (0: unknown). */
  pmtu: number;
  /** TCPI_OPT_TIMESTAMPS: every segment carries the 12-byte timestamps option (with its NOPs). */
  timestamps: boolean;
}

/** The MSS every IPv4 / IPv6 path must carry (payload bytes with a 20-byte TCP header). */
export const FALLBACK_MSS_V4 = 536;
export const FALLBACK_MSS_V6 = 1220;
/** The bytes the timestamps option takes in a Linux segment (NOP, NOP, kind 8 length 10). */
const TIMESTAMPS_BYTES = 12;
/** Never cut finer than this, whatever a socket reports (a TCP header alone is 20 bytes). */
export const MIN_SEGMENT = 64;

/**
 * Payload bytes per segment for the super-packet `p` (TCP, parsed): `info` from the socket
 * (undefined when not found), `labelledTcpHeader` the TCP header length a labelled segment
 * will have at most, `mtu` the output interface's MTU.
 */
export function segmentPayloadSize(p: ParsedPacket, info: TcpPathInfo | undefined, labelledTcpHeader: number, mtu: number): number {
  const tcp = p.tcp!;
  const ipHeader = p.l4Offset;
  const pathMtu = info && info.pmtu > 0 ? Math.min(info.pmtu, mtu) : mtu;
  const fitsPath = pathMtu - ipHeader - labelledTcpHeader;
  let size: number;
  if (info && info.sndMss > 0) {
    const usual = info.timestamps ? TIMESTAMPS_BYTES : 0;
    const stack = info.sndMss - Math.max(0, tcp.optionsLen - usual);
    size = Math.min(stack, fitsPath);
  } else {
    const base = (p.family === 4 ? FALLBACK_MSS_V4 : FALLBACK_MSS_V6) - (labelledTcpHeader - 20);
    size = Math.min(base, fitsPath);
  }
  return Math.max(MIN_SEGMENT, size);
}

/** The longest TCP header a profile's label can leave a segment with: the stack's options and the label, at most 60 bytes. */
export function labelledTcpHeaderBound(p: ParsedPacket, overhead: number): number {
  return Math.min(60, 20 + ((p.tcp!.optionsLen + overhead + 3) & ~3));
}

/** One flow's entry: the 4-tuple it was asked for (a hash key may collide), the answer, when. */
interface Entry {
  tuple: Uint8Array;
  info: TcpPathInfo | undefined;
  at: number;
}

export type PathInfoLookup = (family: 4 | 6, src: Uint8Array, sport: number, dst: Uint8Array, dport: number) => TcpPathInfo | undefined;

/**
 * Per-flow tcp_info, asked at most every `refreshMs` per flow (a path MTU that drops is seen
 * within that time), bounded to `limit` flows (the oldest go first). When a refresh finds no
 * answer, the flow's last answer stays.
 */
export class PathInfoCache {
  private readonly map = new Map<number, Entry>();
  lookups = 0;
  misses = 0;

  constructor(
    private readonly lookup: PathInfoLookup,
    private readonly refreshMs = 50,
    private readonly limit = 65536,
    private readonly now: () => number = Date.now,
  ) {}

  /** tcp_info of the socket that sent `pkt` (`key`: its flow hash, flow-hash.ts). */
  get(key: number, pkt: Uint8Array, p: ParsedPacket): TcpPathInfo | undefined {
    const t = this.now();
    const e = this.map.get(key);
    if (e && t - e.at < this.refreshMs && sameTuple(e.tuple, pkt, p)) return e.info;
    const tcp = p.tcp!;
    this.lookups++;
    let info = this.lookup(p.family, p.src, tcp.srcPort, p.dst, tcp.dstPort);
    if (!info) {
      this.misses++;
      // A socket that no longer answers (closed with data still to send): what it said last
      // is still its path, better than the fallback.
      if (e && sameTuple(e.tuple, pkt, p)) info = e.info;
    }
    if (e) {
      this.map.delete(key); // re-inserted last: the Map's order is the age order
    } else if (this.map.size >= this.limit) {
      this.map.delete(this.map.keys().next().value!);
    }
    this.map.set(key, { tuple: tupleOf(pkt, p), info, at: t });
    return info;
  }

  get size(): number {
    return this.map.size;
  }
}

/** Addresses and ports, as bytes: what a flow hash stands for. */
function tupleOf(pkt: Uint8Array, p: ParsedPacket): Uint8Array {
  const alen = p.family === 4 ? 4 : 16;
  const t = new Uint8Array(2 * alen + 4);
  t.set(pkt.subarray(p.srcOffset, p.srcOffset + alen), 0);
  t.set(pkt.subarray(p.dstOffset, p.dstOffset + alen), alen);
  t.set(pkt.subarray(p.l4Offset, p.l4Offset + 4), 2 * alen);
  return t;
}

function sameTuple(t: Uint8Array, pkt: Uint8Array, p: ParsedPacket): boolean {
  const alen = p.family === 4 ? 4 : 16;
  if (t.length !== 2 * alen + 4) return false;
  for (let i = 0; i < alen; i++) if (t[i] !== pkt[p.srcOffset + i] || t[alen + i] !== pkt[p.dstOffset + i]) return false;
  for (let i = 0; i < 4; i++) if (t[2 * alen + i] !== pkt[p.l4Offset + i]) return false;
  return true;
}
