// NFQUEUE handler module of the agent (loaded in each queue worker; see datapath/types.ts).
import { loadKeyFile } from '../label/keys.js';
import type { HandlerContext, PacketHandler, QueuedPacket, VerdictDecision } from '../datapath/types.js';
import { IfaceTable } from '../util/ifaces.js';
import { RateLimiter } from '../util/ratelimit.js';
import { AGENT_COUNTERS, decideAgentPacket } from './decide.js';

export const counterNames = AGENT_COUNTERS;

export interface AgentHandlerData {
  keyFile: string;
}

export function createHandler(data: unknown, ctx: HandlerContext): PacketHandler {
  const { keyFile } = data as AgentHandlerData;
  const key = loadKeyFile(keyFile);
  const ifaces = new IfaceTable();
  const slot = new Map<string, number>(AGENT_COUNTERS.map((n, i) => [n, i]));
  const labelledBytes = slot.get('labelled_bytes')!;
  const events = new RateLimiter(20);
  const decision: VerdictDecision = { verdict: 'repeat' };
  return (p: QueuedPacket): VerdictDecision => {
    const mtu = ifaces.get(p.indev)?.mtu ?? 1500;
    const d = decideAgentPacket(p.hook, p.payload, p.mark, mtu, key, ctx.scratch);
    ctx.counters[slot.get(d.counter)!]!++;
    if (d.counter === 'labelled') ctx.counters[labelledBytes]! += p.payload.length;
    if (d.reason && events.take()) {
      ctx.post({ type: 'log', level: 'warn', msg: 'agent: packet not labelled', counter: d.counter, reason: d.reason, hook: p.hook });
    }
    decision.verdict = d.verdict;
    decision.mark = d.mark;
    decision.payload = d.payload;
    decision.payloadLength = undefined;
    return decision;
  };
}
