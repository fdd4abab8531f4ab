// NFQUEUE handler module of the agent's labelling queues (loaded in each queue worker; see
// datapath/types.ts).
//
// With `countFlows` (egress policy on), labelled bytes are also counted per flow under a
// 32-bit flow key (flow-hash.ts) in a small map that goes to the main thread when it asks
// ({ kind: 'flows-query', id } → { kind: 'flow-bytes', id, entries }) or when it grows past
// FLOW_BYTES_FLUSH entries; the main thread joins them to the egress flow table.
//
// SIGHUP (key rollover): { kind: 'agent-key', generation, keyFile, keyId, nat } loads the new
// key first and then switches to it between two segments (messages are read between receive
// batches), so every segment is labelled with the old key or the new one, none with neither;
// answered with { kind: 'agent-key-applied', generation, ok, error? } (a key that does not load
// leaves the running one).
//
// The app tag (v1) comes in the queued packet's mark under tagMask: the egress worker set
// it on the flow's first packet and CONNMARK restores it onto every later one (rules.ts).
import { loadKeyFile, type LabelKey } from '../label/keys.js';
import type { PacketContext } from '../label/profile.js';
import type { AgentNatRule } from '../config/model.js';
import { getProfile } from '../label/registry.js';
import { counterSlots, type HandlerContext, type PacketHandler, type QueuedPacket, type VerdictDecision } from '../datapath/types.js';
import { IfaceTable } from '../util/ifaces.js';
import { RateLimiter } from '../util/ratelimit.js';
import { AGENT_COUNTERS, decideAgentPacket } from './decide.js';
import { DEFAULT_AGENT_MARK, tagOfMark, type AgentMarks } from '../config/marks.js';
import { flowHashOfPacket } from './flow-hash.js';

export const counterNames = AGENT_COUNTERS;

// Fixed counter slots: the per-packet path indexes ctx.counters without a lookup by name.
const SLOT = counterSlots(AGENT_COUNTERS);

export interface AgentHandlerData {
  /** The label profile's name (label/registry.ts). */
  profile: string;
  keyFile: string;
  /** v1 key id of the key (0-7); default 0. */
  keyId?: number;
  /** v1 NAT flags per destination (agent.nat); default none (strict). */
  nat?: AgentNatRule[];
  /** Count labelled bytes per flow for `labelwall flows`. */
  countFlows?: boolean;
  /** The agent's mark bits (agent.mark). */
  marks?: AgentMarks;
  /** Mark bits that carry the flow's app tag (0 or absent: every label has tag 0). */
  tagMask?: number;
}

/** Per-flow byte deltas posted to the main thread: [flow key, bytes]. */
export interface FlowBytesMessage {
  kind: 'flow-bytes';
  /** The query answered, or -1 for a flush because the map grew. */
  id: number;
  entries: Array<[number, number]>;
}

export const FLOW_BYTES_FLUSH = 16384;

/** SIGHUP: the labelling key (and NAT flags) for the next segments. */
export interface AgentKeyMessage {
  kind: 'agent-key';
  generation: number;
  keyFile: string;
  keyId: number;
  nat: AgentNatRule[];
}

export interface AgentKeyApplied {
  kind: 'agent-key-applied';
  generation: number;
  ok: boolean;
  error?: string;
  fingerprint?: string;
}

// What labels the next segment: replaced as a whole by onMessage (one assignment, between batches).
let state: { key: LabelKey; nat: AgentNatRule[] } | undefined;

let flowBytes: Map<number, number> | undefined;
let context: HandlerContext | undefined;

function flush(id: number): void {
  if (!flowBytes || !context) return;
  context.post({ kind: 'flow-bytes', id, entries: [...flowBytes] } satisfies FlowBytesMessage);
  flowBytes.clear();
}

export function createHandler(data: unknown, ctx: HandlerContext): PacketHandler {
  const { keyFile, keyId = 0, nat = [], countFlows, marks = DEFAULT_AGENT_MARK, tagMask = 0 } = data as AgentHandlerData;
  const profile = getProfile((data as AgentHandlerData).profile); // once: packets call it directly
  state = { key: loadKeyFile(keyFile, keyId), nat };
  const pctx: PacketContext = {}; // one object for every packet
  const ifaces = new IfaceTable();
  const events = new RateLimiter(20);
  const decision: VerdictDecision = { verdict: 'repeat' };
  context = ctx;
  const perFlow = countFlows ? new Map<number, number>() : undefined;
  flowBytes = perFlow;
  return (p: QueuedPacket): VerdictDecision => {
    const mtu = ifaces.get(p.indev)?.mtu ?? 1500;
    const s = state!;
    pctx.tag = tagOfMark(p.mark, tagMask);
    pctx.nat = 0;
    const d = decideAgentPacket(profile, p.hook, p.payload, p.mark, mtu, s.key, ctx.scratch, marks, pctx, s.nat);
    ctx.counters[SLOT[d.counter]]!++;
    if (d.counter === 'labelled') {
      ctx.counters[SLOT.labelled_bytes]! += p.payload.length;
      if (d.compact) ctx.counters[SLOT.labelled_compact]!++;
      if (d.trimmed === 'sack-trimmed') ctx.counters[SLOT.sack_trimmed]!++;
      else if (d.trimmed === 'options-removed') ctx.counters[SLOT.options_removed]!++;
      if (perFlow) {
        const k = flowHashOfPacket(p.payload);
        if (k >= 0) {
          perFlow.set(k, (perFlow.get(k) ?? 0) + p.payload.length);
          if (perFlow.size >= FLOW_BYTES_FLUSH) flush(-1);
        }
      }
    }
    if (d.reason && events.take()) {
      ctx.post({
        kind: 'log',
        level: 'warn',
        msg: 'agent: packet not labelled',
        event: 'not-labelled',
        counter: d.counter,
        reason: d.reason,
        hook: p.hook,
      });
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
  else if (m?.kind === 'agent-key') {
    const k = msg as AgentKeyMessage;
    let reply: AgentKeyApplied;
    try {
      const key = loadKeyFile(k.keyFile, k.keyId); // before anything changes: a bad key leaves the running one
      state = { key, nat: k.nat };
      reply = { kind: 'agent-key-applied', generation: k.generation, ok: true, fingerprint: key.fingerprint };
    } catch (err) {
      reply = { kind: 'agent-key-applied', generation: k.generation, ok: false, error: (err as Error).message };
    }
    context?.post(reply);
  }
}
