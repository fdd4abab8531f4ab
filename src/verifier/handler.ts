// NFQUEUE handler module of the verifier (loaded in each queue worker; see datapath/types.ts).
// Messages from the main thread (QueueSet.post → onMessage):
//   { kind: 'verifier-rules', generation, rules, mark }  replace rules, keys and mark bits (SIGHUP);
//   answered with { kind: 'verifier-rules-applied', generation, ok, error? }. The new keys are
//   all loaded before anything changes: on an error the worker keeps its old state.
import { loadKeyFile, type LabelKey } from '../label/keys.js';
import { getProfile } from '../label/registry.js';
import { formatAddress, type ParsedPacket } from '../wire/packet.js';
import { counterSlots, type HandlerContext, type PacketHandler, type QueuedPacket, type VerdictDecision } from '../datapath/types.js';
import type { MarkBits, VerifierRule } from '../config/model.js';
import { IfaceTable } from '../util/ifaces.js';
import { RateLimiter } from '../util/ratelimit.js';
import { decideVerifierPacket, type RuntimeVerifierRule } from './decide.js';
import { SuspectList } from './suspects.js';

export const counterNames = ['valid', 'invalid', 'unlabelled', 'malformed', 'skipped', 'unmatched', 'dropped', 'passed'] as const;

// Fixed counter slots: the per-packet path indexes ctx.counters without a lookup by name.
const SLOT = counterSlots(counterNames);

/** A config rule as the worker receives it: its keys are key files, not key names. */
export type VerifierRuleData = VerifierRule<string[]>;

export interface VerifierHandlerData {
  /** The label profile's name (label/registry.ts). */
  profile: string;
  rules: VerifierRuleData[];
  mark: MarkBits;
  /** Log every judged packet that is not valid (rate-limited), not only dropped ones. */
  logBad: boolean;
  /** This worker serves the suspect queue (sources listed for bad segments). */
  suspect?: boolean;
}

export interface VerifierRulesMessage {
  kind: 'verifier-rules';
  generation: number;
  rules: VerifierRuleData[];
  mark: MarkBits;
}

/** Rules with their keys, every key file read once (throws KeyFileError). */
function buildRules(list: readonly VerifierRuleData[]): RuntimeVerifierRule[] {
  const keyCache = new Map<string, LabelKey>();
  const key = (f: string): LabelKey => {
    let k = keyCache.get(f);
    if (!k) keyCache.set(f, (k = loadKeyFile(f)));
    return k;
  };
  return list.map((r) => ({ ...r, keys: r.keys.map(key) }));
}

// This worker's state; replaced whole by onMessage (one module instance per worker thread).
let rules: RuntimeVerifierRule[] = [];
let context: HandlerContext | undefined;
let current: VerifierHandlerData | undefined;

export function onMessage(msg: unknown): void {
  const m = msg as VerifierRulesMessage;
  if (m?.kind !== 'verifier-rules' || !context || !current) return;
  try {
    const next = buildRules(m.rules);
    rules = next;
    current = { ...current, rules: m.rules, mark: m.mark };
    context.post({ kind: 'verifier-rules-applied', generation: m.generation, ok: true });
  } catch (err) {
    context.post({ kind: 'verifier-rules-applied', generation: m.generation, ok: false, error: (err as Error).message });
  }
}

export function createHandler(data: unknown, ctx: HandlerContext): PacketHandler {
  current = data as VerifierHandlerData;
  context = ctx;
  rules = buildRules(current.rules);
  const profile = getProfile(current.profile); // once: packets call it directly
  // Names are re-read every second so that a renamed interface is matched by its new name, as
  // iptables matches it.
  const ifaces = new IfaceTable(undefined, 1000);
  const events = new RateLimiter(20);
  const decision: VerdictDecision = { verdict: 'repeat' };
  const suspects = new SuspectList();
  // Suspect queue: the flows of listed sources that deliver valid segments, reported at most
  // every 2 s each, so the main thread can exempt them from the limit (exempt.ts).
  const validFlows = new Map<string, number>();
  const reportValidFlow = (q: ParsedPacket | undefined): void => {
    if (!q?.tcp) return;
    const src = formatAddress(q.src);
    const dst = formatAddress(q.dst);
    const key = `${src} ${q.tcp.srcPort} ${dst} ${q.tcp.dstPort}`;
    const now = Date.now();
    if (now - (validFlows.get(key) ?? 0) < 2000) return;
    if (validFlows.size >= 4096) validFlows.clear();
    validFlows.set(key, now);
    ctx.post({ kind: 'suspect-valid', src, dst, sport: q.tcp.srcPort, dport: q.tcp.dstPort });
  };
  return (p: QueuedPacket): VerdictDecision => {
    const inName = ifaces.get(p.indev)?.name;
    const outName = ifaces.get(p.outdev)?.name;
    const d = current!;
    const v = decideVerifierPacket(profile, p.payload, p.mark, rules, d.mark, inName, outName);
    const c = ctx.counters;
    c[SLOT[v.judged]]!++;
    // `unmatched` counts the packets iptables queued but no rule matched here (judged anyway).
    if (v.fallback) c[SLOT.unmatched]!++;
    c[v.verdict === 'drop' ? SLOT.dropped : SLOT.passed]!++;
    // Flood defence: a source that sent a bad segment is limited in the kernel (rules.ts).
    if (v.judged !== 'valid' && v.judged !== 'unmatched' && v.src) suspects.note(v.src);
    else if (d.suspect && v.judged === 'valid') reportValidFlow(v.packet);
    if (v.judged !== 'valid' && v.judged !== 'unmatched' && d.logBad && events.take()) {
      const parsed = v.packet;
      ctx.post({
        kind: 'log',
        level: 'warn',
        msg: `verifier: ${v.judged}`,
        verdict: v.judged,
        reason: v.reason,
        action: v.verdict === 'drop' ? 'dropped' : 'passed',
        rule: rules[v.rule]?.name,
        ...(v.fallback ? { fallback: 'no rule matched the interfaces here: judged by addresses and ports' } : {}),
        in: inName,
        out: outName,
        ...(parsed
          ? { src: formatAddress(parsed.src), dst: formatAddress(parsed.dst), sport: parsed.tcp?.srcPort, dport: parsed.tcp?.dstPort, seq: parsed.tcp?.seq }
          : {}),
      });
    }
    decision.verdict = v.verdict;
    decision.mark = v.verdict === 'drop' ? undefined : v.mark;
    return decision;
  };
}
