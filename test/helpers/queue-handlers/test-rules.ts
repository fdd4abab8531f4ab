// Handler driven by rules in handlerData, for end-to-end tests of the datapath: it matches
// IPv4 UDP by destination port and rewrites, marks or drops. Not used by the product.
import { ACCEPT, DROP, type HandlerContext, type PacketHandler, type VerdictDecision } from '../../../src/datapath/types.js';

export type TestRule =
  | { dport: number; action: 'rewrite-first-byte'; byte: number }
  | { dport: number; action: 'mark-repeat'; mark: number }
  | { dport: number; action: 'drop' }
  | { dport: number; action: 'throw' };

export const counterNames = ['packets', 'rewritten', 'marked', 'dropped', 'other', 'messages'] as const;

let extraDrop = new Set<number>();

/** Config reload from the main thread: `{ dropPorts: number[] }`. */
export function onMessage(msg: unknown): void {
  const m = msg as { dropPorts?: number[] };
  if (Array.isArray(m.dropPorts)) extraDrop = new Set(m.dropPorts);
  messages++;
}
let messages = 0;

function sum16(b: Uint8Array, start: number, end: number, acc: number): number {
  let i = start;
  for (; i + 1 < end; i += 2) acc += (b[i]! << 8) | b[i + 1]!;
  if (i < end) acc += b[i]! << 8;
  return acc;
}
function fold(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

export function createHandler(data: unknown, ctx: HandlerContext): PacketHandler {
  const rules = new Map<number, TestRule>();
  for (const r of (data as { rules: TestRule[] }).rules) rules.set(r.dport, r);
  const c = ctx.counters;
  const out = ctx.scratch;
  const dec: VerdictDecision = { verdict: 'accept', payload: out, payloadLength: 0 };
  return (p) => {
    c[0]!++;
    c[5] = messages;
    const b = p.payload;
    if (b.length < 28 || b[0]! >> 4 !== 4 || b[9] !== 17) {
      c[4]!++;
      return ACCEPT;
    }
    const ihl = (b[0]! & 15) * 4;
    const dport = (b[ihl + 2]! << 8) | b[ihl + 3]!;
    if (extraDrop.has(dport)) {
      c[3]!++;
      return DROP;
    }
    const r = rules.get(dport);
    if (r === undefined) {
      c[4]!++;
      return ACCEPT;
    }
    switch (r.action) {
      case 'drop':
        c[3]!++;
        return DROP;
      case 'throw':
        throw new Error('test rule throws');
      case 'mark-repeat':
        c[2]!++;
        return { verdict: 'repeat', mark: r.mark };
      case 'rewrite-first-byte': {
        if (b.length <= ihl + 8) return ACCEPT;
        b.copy(out, 0, 0, b.length);
        out[ihl + 8] = r.byte;
        // UDP checksum over the pseudo-header (addresses, protocol, UDP length) and datagram.
        const udpLen = b.length - ihl;
        out[ihl + 6] = 0;
        out[ihl + 7] = 0;
        let s = sum16(out, 12, 20, 0) + 17 + udpLen;
        s = sum16(out, ihl, b.length, s);
        let cs = fold(s);
        if (cs === 0) cs = 0xffff;
        out[ihl + 6] = cs >> 8;
        out[ihl + 7] = cs & 0xff;
        c[1]!++;
        dec.payloadLength = b.length;
        return dec;
      }
    }
  };
}
