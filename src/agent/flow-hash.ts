// A 32-bit key of a flow, computed the same way from a packet's bytes (in the labelling and
// egress workers, per packet, without allocating) and from a FlowTuple (on the main thread), so
// that per-flow byte counts of the labelling workers can be joined to the egress flow table.
// Collisions only merge two flows' byte counters; nothing is decided on this key.
import { parseIp } from '../util/ip.js';
import { IPPROTO_TCP, IPPROTO_UDP } from '../wire/packet.js';
import type { FlowTuple } from '../identity/types.js';

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

function mix(h: number, byte: number): number {
  return Math.imul(h ^ byte, FNV_PRIME);
}

function mixBytes(h: number, b: Uint8Array, off: number, len: number): number {
  for (let i = off; i < off + len; i++) h = mix(h, b[i]!);
  return h;
}

function mix16(h: number, v: number): number {
  return mix(mix(h, (v >>> 8) & 0xff), v & 0xff);
}

const PROTO: Record<FlowTuple['proto'], number> = { tcp: 6, udp: 17, icmp: 1 };

/** Key from a tuple: protocol, addresses, ports (ICMP: echo identifier as sport, dport 0). */
export function flowHashOfTuple(t: FlowTuple): number {
  const src = parseIp(t.src);
  const dst = parseIp(t.dst);
  if (!src || !dst) return 0;
  let h = mix(FNV_OFFSET, PROTO[t.proto]);
  h = mixBytes(h, src, 0, src.length);
  h = mixBytes(h, dst, 0, dst.length);
  h = mix16(h, t.sport);
  h = mix16(h, t.proto === 'icmp' ? 0 : t.dport);
  return h >>> 0;
}

/**
 * Key of a TCP/UDP packet from its raw bytes (IPv4, or IPv6 without extension headers);
 * -1 when it is something else. Cheap enough for the labelling path.
 */
export function flowHashOfPacket(pkt: Uint8Array): number {
  if (pkt.length < 1) return -1;
  const v = pkt[0]! >> 4;
  let proto: number, l4: number, srcOff: number, dstOff: number, alen: number;
  if (v === 4) {
    if (pkt.length < 20) return -1;
    proto = pkt[9]!;
    l4 = (pkt[0]! & 0x0f) * 4;
    srcOff = 12;
    dstOff = 16;
    alen = 4;
  } else if (v === 6) {
    proto = pkt[6]!;
    l4 = 40;
    srcOff = 8;
    dstOff = 24;
    alen = 16;
  } else return -1;
  if ((proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) || pkt.length < l4 + 4) return -1;
  let h = mix(FNV_OFFSET, proto);
  h = mixBytes(h, pkt, srcOff, alen);
  h = mixBytes(h, pkt, dstOff, alen);
  h = mix16(h, (pkt[l4]! << 8) | pkt[l4 + 1]!);
  h = mix16(h, (pkt[l4 + 2]! << 8) | pkt[l4 + 3]!);
  return h >>> 0;
}
