// NFQUEUE handler module of the agent's egress queue (one worker; see datapath/types.ts).
// Each queued packet opens a flow (TCP SYN, UDP or ICMP echo in conntrack state NEW): the flow
// is attributed to the processes holding its socket (identity/Attributor, created once in this
// worker: it opens its own BPF programs and netlink socket), judged by the policy (EgressGate),
// logged, and sent back with NF_REPEAT and the ALLOW or DENY mark (marks.ts). Attribution is
// synchronous (~0.3 ms with eBPF), which is why it has a queue and a thread of its own.
//
// Messages from the main thread (QueueSet.post → onMessage):
//   { kind: 'egress-policy', generation, policy }  replace the policy for new flows (SIGHUP)
//   { kind: 'hello' }                               answer with egress-ready (eBPF or /proc only)
//   { kind: 'tick' }                                every second: log the summary of suppressed
//                                                   decision lines when its period is over
//                                                   (this thread's loop runs no timers), and post
//                                                   the decision counts by action, rule and tag
//                                                   when they changed (for /metrics)
//   { kind: 'flows-query', id }                     answer with the flow table
//   { kind: 'flow-bytes', entries }                 labelled bytes per flow key from the
//                                                   labelling workers (relayed by the main thread):
//                                                   added to the flows, which count as active
import type { HandlerContext, PacketHandler, QueuedPacket, VerdictDecision } from '../datapath/types.js';
import { Attributor } from '../identity/attribute.js';
import type { Attribution, FlowTuple } from '../identity/types.js';
import { DEFAULT_DECISION_LOG_LIMITS, type DecisionLogLimits, type EgressPolicy, type IdentityConfig } from '../config/model.js';
import { DecisionLogLimiter } from '../policy/decision-log.js';
import { EgressGate, type FlowEntry } from '../policy/egress-gate.js';
import { policyNeedsHash } from '../policy/egress.js';
import { RateLimiter } from '../util/ratelimit.js';
import { EGRESS_COUNTERS, egressMark, flowTupleOf } from './egress.js';
import { flowHashOfPacket } from './flow-hash.js';
import { DEFAULT_AGENT_MARK, egressBits, withMark, withTag, type AgentMarks } from '../config/marks.js';
import { ATTRIBUTION_BUCKETS, observe } from '../datapath/histogram.js';

export { EGRESS_COUNTERS };
export const counterNames = EGRESS_COUNTERS;
/** Time from the egress worker reading a new flow's packet to its decision (attribution and policy). */
export const histograms = { attribution_seconds: ATTRIBUTION_BUCKETS };

/** Decisions by action, rule and app tag since the start: bounded by the config's rules. */
export interface EgressDecisionCount {
  action: string;
  rule: string;
  tag: number;
  n: number;
}

export interface EgressHandlerData {
  policy: EgressPolicy;
  identity: IdentityConfig;
  /** How many decisions are logged (policy/decision-log.ts); default DEFAULT_DECISION_LOG_LIMITS. */
  logLimits?: DecisionLogLimits;
  /** The agent's mark bits (agent.mark). */
  marks?: AgentMarks;
  /** Mark bits for the allowing rule's app tag (agent.mark.tag_mask; 0 or absent = no tags). */
  tagMask?: number;
}

/** Messages the egress worker posts to the main thread (besides log lines). */
export type EgressWorkerMessage =
  | { kind: 'egress-ready'; bpf: boolean; bpfError?: string; hash: boolean }
  | { kind: 'egress-policy-applied'; generation: number; rules: number; default: string; unknown: string }
  | { kind: 'flows'; id: number; flows: FlowEntry[]; attribution: Attributor['stats'] }
  | { kind: 'egress-decision-counts'; counts: EgressDecisionCount[] };

export type EgressMainMessage =
  | { kind: 'egress-policy'; generation: number; policy: EgressPolicy }
  | { kind: 'flows-query'; id: number }
  | { kind: 'flow-bytes'; entries: Array<[number, number]> }
  | { kind: 'tick' }
  | { kind: 'hello' };

let gate: EgressGate | undefined;
let attributor: Attributor | undefined;
let context: HandlerContext | undefined;
let ready: EgressWorkerMessage | undefined;
let limiter: DecisionLogLimiter | undefined;
/** TCP flows by flow key (flow-hash.ts), to credit the labelling workers' byte counts. */
const byKey = new Map<number, FlowEntry>();
const decisionCounts = new Map<string, EgressDecisionCount>();
let countsChanged = false;

export function createHandler(data: unknown, ctx: HandlerContext): PacketHandler {
  const { policy, identity, logLimits, marks = DEFAULT_AGENT_MARK, tagMask = 0 } = data as EgressHandlerData;
  const egressMask = egressBits(marks);
  const lim = new DecisionLogLimiter(logLimits ?? DEFAULT_DECISION_LOG_LIMITS);
  limiter = lim;
  context = ctx;
  const hash = identity.hash || policyNeedsHash(policy);
  const a = new Attributor({ bpf: identity.bpf, hash, exhaustive: identity.exhaustive, indexIntervalMs: identity.indexIntervalMs });
  attributor = a;
  const slot = new Map<string, number>(EGRESS_COUNTERS.map((n, i) => [n, i]));
  const c = ctx.counters;
  const [cPackets, cDecisions, cAllowed, cDenied, cLogged, cUnknown, cUnparsed, cErrors, cSupp, cLogSupp] = EGRESS_COUNTERS.map(
    (n) => slot.get(n)!,
  ) as number[];
  let lastMs = 0;
  const attribute = (t: FlowTuple): Attribution => {
    const t0 = performance.now();
    const r = a.attribute(t);
    lastMs = performance.now() - t0;
    return r;
  };
  gate = new EgressGate({
    policy,
    attribute,
    log: (rec) => {
      c[cDecisions!]!++;
      const tag = rec.action === 'deny' ? 0 : (rec.tag ?? 0);
      const k = `${rec.action}\0${rec.rule}\0${tag}`;
      const dc = decisionCounts.get(k);
      if (dc) dc.n++;
      else decisionCounts.set(k, { action: rec.action, rule: rec.rule, tag, n: 1 });
      countsChanged = true;
      if (rec.action === 'deny') c[cDenied!]!++;
      else if (rec.action === 'log') c[cLogged!]!++;
      else c[cAllowed!]!++;
      if (rec.unknown) c[cUnknown!]!++;
      if (!lim.admit(rec.action, rec.rule)) {
        c[cSupp!]!++;
        return;
      }
      ctx.post({
        kind: 'log',
        level: rec.action === 'log' ? 'warn' : 'info',
        msg: 'egress decision',
        ...rec,
        attributionMs: Math.round(lastMs * 1000) / 1000,
      });
    },
  });
  // Sent when the main thread says hello: messages posted before the queue set exists are lost.
  ready = { kind: 'egress-ready', bpf: a.bpfMode, ...(a.bpfError !== undefined ? { bpfError: a.bpfError } : {}), hash };
  const events = new RateLimiter(10);
  const decision: VerdictDecision = { verdict: 'repeat' };
  // On an internal error the fail mode decides, with a mark (not a plain verdict), so that an
  // allowed packet still goes through labelling.
  const failMark = ctx.failOpen ? marks.allow : marks.deny;
  const hist = ctx.histograms.attribution_seconds!;
  return (p: QueuedPacket): VerdictDecision => {
    c[cPackets!]!++;
    decision.payload = undefined;
    const t0 = performance.now();
    const judged = gate!.decisions;
    try {
      const r = flowTupleOf(p.payload);
      if (!r.ok) {
        // The rules select only TCP SYN, UDP and ICMP echo; what does not parse as one is not a flow.
        c[cUnparsed!]!++;
        decision.mark = withMark(p.mark, marks.allow, egressMask);
        return decision;
      }
      const e = gate!.packet(r.tuple, r.syn);
      if (e.packets === 1 && r.tuple.proto === 'tcp') {
        const k = flowHashOfPacket(p.payload);
        if (k >= 0) byKey.set(k, e);
        if (byKey.size > 2 * 65536) prune();
      }
      if (gate!.decisions !== judged) observe(hist.mem, hist.off, hist.bounds, (performance.now() - t0) / 1000);
      // The allowing rule's app tag rides in the mark; CONNMARK keeps it for the flow (rules.ts).
      decision.mark = withTag(egressMark(p.mark, e.action, marks), e.tag, tagMask);
      return decision;
    } catch (err) {
      c[cErrors!]!++;
      if (events.take())
        ctx.post({
          kind: 'log',
          level: 'error',
          msg: 'egress: decision failed; fail mode applies',
          event: 'egress-failed',
          err: String((err as Error)?.stack ?? err),
          failOpen: ctx.failOpen,
        });
      else c[cLogSupp!]!++;
      decision.mark = withMark(p.mark, failMark, egressMask);
      return decision;
    }
  };
}

function prune(): void {
  const live = new Set(gate!.table());
  for (const [k, e] of byKey) if (!live.has(e)) byKey.delete(k);
}

export function onMessage(msg: unknown): void {
  const m = msg as EgressMainMessage;
  if (!gate || !context) return;
  if (m?.kind === 'hello') {
    if (ready) context.post(ready);
  } else if (m?.kind === 'egress-policy') {
    gate.setPolicy(m.policy);
    context.post({
      kind: 'egress-policy-applied',
      generation: m.generation,
      rules: m.policy.rules.length,
      default: m.policy.default,
      unknown: m.policy.unknown,
    } satisfies EgressWorkerMessage);
  } else if (m?.kind === 'tick') {
    if (countsChanged) {
      countsChanged = false;
      context.post({ kind: 'egress-decision-counts', counts: [...decisionCounts.values()] } satisfies EgressWorkerMessage);
    }
    const sum = limiter?.summary();
    if (sum)
      context.post({
        kind: 'log',
        level: sum.suppressed.deny + sum.suppressed.log > 0 ? 'warn' : 'info',
        msg: `egress decisions not logged (rate limit): ${sum.total} in ${sum.periodSeconds} s`,
        ...sum,
      });
  } else if (m?.kind === 'flow-bytes') {
    const now = Date.now();
    for (const [k, bytes] of m.entries) {
      const e = byKey.get(k);
      if (e) {
        e.bytesLabelled += bytes;
        e.lastSeen = now;
      }
    }
  } else if (m?.kind === 'flows-query') {
    prune();
    context.post({ kind: 'flows', id: m.id, flows: gate.table(), attribution: { ...attributor!.stats } } satisfies EgressWorkerMessage);
  }
}
