// Handler that accepts every packet: the datapath's own cost, for tests and benchmarks.
import { ACCEPT, type HandlerContext, type PacketHandler } from '../../../src/datapath/types.js';

export const counterNames = ['packets', 'bytes', 'gso'] as const;

export function createHandler(_data: unknown, ctx: HandlerContext): PacketHandler {
  const c = ctx.counters;
  return (p) => {
    c[0]!++;
    c[1]! += p.payload.length;
    if (p.gso) c[2]!++;
    return ACCEPT;
  };
}
