// Benchmark handler: the same compat labelling as bench/nfqueue-label-handler.ts, but with
// the HMAC computed by libcrypto's reusable HMAC_CTX through koffi instead of node:crypto
// createHmac — to measure what that change would buy end to end. IPv4 only, a stand-in
// written for this measurement (the product labels with src/label/compat.ts). It builds
// the labelled packet as labelParsed() does: all TCP options replaced by the 40-byte label,
// data offset 15, IP total length and both checksums recomputed.
import { buildLabelOption, LABELLED_TCP_HEADER } from '../src/label/compat.js';
import { ipv4HeaderChecksum, tcpChecksumV4 } from '../src/wire/checksum.js';
import { ACCEPT, type HandlerContext, type PacketHandler, type VerdictDecision } from '../src/datapath/types.js';
import { LibcryptoHmac } from './nfqueue-libcrypto-hmac.js';

export const counterNames = ['labelled', 'skipped'] as const;

export function createHandler(data: unknown, ctx: HandlerContext): PacketHandler {
  const hmac = new LibcryptoHmac(Buffer.from((data as { keyHex: string }).keyHex, 'hex'));
  const c = ctx.counters;
  const out = ctx.scratch;
  const dec: VerdictDecision = { verdict: 'accept', payload: out, payloadLength: 0 };
  return (p) => {
    const b = p.payload;
    if (b.length < 40 || b[0] >> 4 !== 4 || b[9] !== 6) {
      c[1]++;
      return ACCEPT;
    }
    const l4 = (b[0] & 15) * 4;
    const total = (b[2] << 8) | b[3];
    const thl = (b[l4 + 12] >> 4) * 4;
    if (total > b.length || l4 + thl > total) {
      c[1]++;
      return ACCEPT;
    }
    const payload = b.subarray(l4 + thl, total);
    const newSeg = LABELLED_TCP_HEADER + payload.length;
    const newTotal = l4 + newSeg;
    const mac = hmac.mac(b.subarray(l4 + 4, l4 + 8), payload);
    out.set(b.subarray(0, l4 + 20), 0);
    buildLabelOption(mac, out, l4 + 20);
    out.set(payload, l4 + LABELLED_TCP_HEADER);
    out[l4 + 12] = 0xf0 | (b[l4 + 12] & 0x0f);
    out[2] = newTotal >>> 8;
    out[3] = newTotal & 0xff;
    out[10] = 0;
    out[11] = 0;
    const ipcs = ipv4HeaderChecksum(out, 0, l4);
    out[10] = ipcs >>> 8;
    out[11] = ipcs & 0xff;
    out[l4 + 16] = 0;
    out[l4 + 17] = 0;
    const cs = tcpChecksumV4(out, 0, l4, newSeg);
    out[l4 + 16] = cs >>> 8;
    out[l4 + 17] = cs & 0xff;
    c[0]++;
    dec.payloadLength = newTotal;
    return dec;
  };
}
