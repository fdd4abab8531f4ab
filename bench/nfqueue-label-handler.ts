// Benchmark handler: labels every TCP segment with the compat label (src/label/compat.ts:
// options replaced by the 40-byte label, HMAC-SHA256 over seq‖payload, IP and TCP checksums
// recomputed) and answers with the new bytes. Non-TCP packets are accepted unchanged.
// handlerData: { keyHex: string }.
import { labelPacket } from '../src/label/compat.js';
import { LabelKey } from '../src/label/keys.js';
import { ACCEPT, type HandlerContext, type PacketHandler, type VerdictDecision } from '../src/datapath/types.js';

export const counterNames = ['labelled', 'skipped', 'failed'] as const;

export function createHandler(data: unknown, ctx: HandlerContext): PacketHandler {
  const key = LabelKey.fromBytes(Buffer.from((data as { keyHex: string }).keyHex, 'hex'), 'bench', true);
  const c = ctx.counters;
  const out = ctx.scratch;
  const dec: VerdictDecision = { verdict: 'accept', payload: out, payloadLength: 0 };
  return (p) => {
    const r = labelPacket(p.payload, key, out);
    if (!r.ok) {
      c[r.verdict === 'skipped' ? 1 : 2]!++;
      return ACCEPT;
    }
    c[0]!++;
    dec.payload = r.packet;
    dec.payloadLength = r.packet.length;
    return dec;
  };
}
