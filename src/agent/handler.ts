// NFQUEUE handler module of the agent's labelling queues (loaded in each queue worker; see
// datapath/types.ts).
//
// With `countFlows` (egress policy on), labelled bytes are also counted per flow under a
// 32-bit flow key (flow-hash.ts) in a small map that goes to the main thread when it asks
// ({ kind: 'flows-query', id } → { kind: 'flow-bytes', id, entries }) or when it grows past
// FLOW_BYTES_FLUSH entries; the main thread joins them to the egress flow table.
import { loadKeyFile } from '../label/keys.js';
import { getProfile } from '../label/registry.js';
import { counterSlots, type HandlerContext, type PacketHandler, type QueuedPacket, type VerdictDecision } from '../datapath/types.js';
import { IfaceTable } from '../util/ifaces.js';
import { RateLimiter } from '../util/ratelimit.js';
import { AGENT_COUNTERS, decideAgentPacket } from './decide.js';
import { DEFAULT_AGENT_MARK, type AgentMarks } from '../config/marks.js';
import { flowHashOfPacket } from './flow-hash.js';

export const counterNames = AGENT_COUNTERS;

// Fixed counter slots: the per-packet path indexes ctx.counters without a lookup by name.
const SLOT = counterSlots(AGENT_COUNTERS);

export interface AgentHandlerData {
  /** The label profile's name (label/registry.ts). */
  profile: string;
  keyFile: string;
  /** Count labelled bytes per flow for `labelwall flows`. */
  countFlows?: boolean;
  /** The agent's mark bits (agent.mark). */
  marks?: AgentMarks;
}

/** Per-flow byte deltas posted to the main thread: [flow key, bytes]. */
export interface FlowBytesMessage {
  kind: 'flow-bytes';
  /** The query answered, or -1 for a flush because the map grew. */
  id: number;
  entries: Array<[number, number]>;
}

export const FLOW_BYTES_FLUSH = 16384;

let flowBytes: Map<number, number> | undefined;
let context: HandlerContext | undefined;

function flush(id: number): void {
  if (!flowBytes || !context) return;
  context.post({ kind: 'flow-bytes', id, entries: [...flowBytes] } satisfies FlowBytesMessage);
  flowBytes.clear();
}

export function createHandler(data: unknown, ctx: HandlerContext): PacketHandler {
  const { keyFile, countFlows, marks = DEFAULT_AGENT_MARK } = data as AgentHandlerData;
  const profile = getProfile((data as AgentHandlerData).profile); // once: packets call it directly
  const key = loadKeyFile(keyFile);
  const ifaces = new IfaceTable();
  const events = new RateLimiter(20);
  const decision: VerdictDecision = { verdict: 'repeat' };
  context = ctx;
  const perFlow = countFlows ? new Map<number, number>() : undefined;
  flowBytes = perFlow;
  return (p: QueuedPacket): VerdictDecision => {
    const mtu = ifaces.get(p.indev)?.mtu ?? 1500;
    const d = decideAgentPacket(profile, p.hook, p.payload, p.mark, mtu, key, ctx.scratch, marks);
    ctx.counters[SLOT[d.counter]]!++;
    if (d.counter === 'labelled') {
      ctx.counters[SLOT.labelled_bytes]! += p.payload.length;
      if (perFlow) {
        const k = flowHashOfPacket(p.payload);
        if (k >= 0) {
          perFlow.set(k, (perFlow.get(k) ?? 0) + p.payload.length);
          if (perFlow.size >= FLOW_BYTES_FLUSH) flush(-1);
        }
      }
    }
    if (d.reason && events.take()) {
      ctx.post({ kind: 'log', level: 'warn', msg: 'agent: packet not labelled', counter: d.counter, reason: d.reason, hook: p.hook });
    }
    decision.verdict = d.verdict;
    decision.mark = d.mark;
    decision.payload = d.payload;
    decision.payloadLength = undefined;
    return decision;
  };
}

export function onMessage(msg: unknown): void {
  const m = msg as { kind?: string; id?: number };
  if (m?.kind === 'flows-query') flush(m.id ?? -1);
}
