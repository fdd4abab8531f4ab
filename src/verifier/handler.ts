// NFQUEUE handler module of the verifier (loaded in each queue worker; see datapath/types.ts).
// Messages from the main thread (QueueSet.post → onMessage):
//   { kind: 'verifier-rules', generation, rules, mark }  replace rules, keys and mark bits (SIGHUP);
//   answered with { kind: 'verifier-rules-applied', generation, ok, error? }. The new keys are
//   all loaded before anything changes: on an error the worker keeps its old state.
import { loadKeyFile, type LabelKey } from '../label/keys.js';
import { getProfile } from '../label/registry.js';
import type { PacketContext } from '../label/profile.js';
import { formatAddress, type ParsedPacket } from '../wire/packet.js';
import { counterSlots, type HandlerContext, type PacketHandler, type QueuedPacket, type VerdictDecision } from '../datapath/types.js';
import type { MarkBits, VerifierRule } from '../config/model.js';
import { IfaceTable } from '../util/ifaces.js';
import { RateLimiter } from '../util/ratelimit.js';
import { decideVerifierPacket, type RuntimeVerifierRule } from './decide.js';
import { SuspectList } from './suspects.js';

// valid_bytes: IP bytes of the valid segments (the verified throughput the ui charts).
// log_suppressed: `verdict` lines not written, over the worker's 20 per second.
const outcomeNames = [
  'valid',
  'invalid',
  'unlabelled',
  'malformed',
  'skipped',
  'unmatched',
  'dropped',
  'passed',
  'valid_bytes',
  'log_suppressed',
] as const;

/**
 * Why segments were judged invalid or malformed: a bounded list (it becomes a metric label);
 * any other reason is counted as `other`. Counted as `VERDICT:REASON` (e.g. `invalid:stale-epoch`).
 */
export const invalidReasons = [
  'mac-mismatch',
  'unknown-key',
  'stale-epoch',
  'nat-mode-denied',
  'tag-denied',
  'no-keys',
  'other-profile',
  'other',
] as const;
export const malformedReasons = [
  'compact-on-syn',
  'bad-label-version',
  'bad-label-length',
  'duplicate-label',
  'bad-option-length',
  'bad-data-offset',
  'truncated-tcp',
  'truncated-ip',
  'bad-ip-version',
  'bad-ihl',
  'bad-total-length',
  'fragment',
  'truncated-ext-header',
  'other',
] as const;
const reasonCounterNames = [
  ...invalidReasons.map((r) => `invalid:${r}` as const),
  ...malformedReasons.map((r) => `malformed:${r}` as const),
];

export const counterNames = [...outcomeNames, ...reasonCounterNames] as const;

// Fixed counter slots: the per-packet path indexes ctx.counters without a lookup by name.
const SLOT = counterSlots(counterNames);
const INVALID_SLOT = new Map<string, number>(invalidReasons.map((r) => [r, SLOT[`invalid:${r}`]]));
const MALFORMED_SLOT = new Map<string, number>(malformedReasons.map((r) => [r, SLOT[`malformed:${r}`]]));

/** The counter slot of a verdict's reason, or -1 (valid, unlabelled, ...). */
function reasonSlot(judged: string, reason: string | undefined): number {
  if (judged === 'invalid') return INVALID_SLOT.get(reason ?? 'other') ?? SLOT['invalid:other'];
  if (judged === 'malformed') return MALFORMED_SLOT.get(reason ?? 'other') ?? SLOT['malformed:other'];
  return -1;
}

/** A key as the worker receives it: a key file (key id 0) or a key file with its v1 key id. */
export type VerifierKeyData = string | { file: string; id: number };

/** A config rule as the worker receives it: its keys are key files, not key names. */
export type VerifierRuleData = VerifierRule<VerifierKeyData[]>;

export interface VerifierHandlerData {
  /** The label profile's name (label/registry.ts). */
  profile: string;
  rules: VerifierRuleData[];
  mark: MarkBits;
  /** Log every judged packet that is not valid (rate-limited), not only dropped ones. */
  logBad: boolean;
  /** This worker serves the suspect queue (sources listed for bad segments). */
  suspect?: boolean;
  /** v1 epochs accepted around the clock (16 s each); absent: the profile's default (2 before, 1 after). */
  epochWindow?: { before: number; after: number };
  /** App tag names by number (the config's `tags:`), for log lines. */
  tagNames?: Record<string, number>;
}

export interface VerifierRulesMessage {
  kind: 'verifier-rules';
  generation: number;
  rules: VerifierRuleData[];
  mark: MarkBits;
  epochWindow?: { before: number; after: number };
  tagNames?: Record<string, number>;
}

/** Rules with their keys, every key file read once (throws KeyFileError). */
function buildRules(list: readonly VerifierRuleData[]): RuntimeVerifierRule[] {
  const keyCache = new Map<string, LabelKey>();
  const key = (d: VerifierKeyData): LabelKey => {
    const [file, id] = typeof d === 'string' ? [d, 0] : [d.file, d.id];
    const name = `${id} ${file}`;
    let k = keyCache.get(name);
    if (!k) {
      k = loadKeyFile(file, id);
      keyCache.set(name, k);
    }
    return k;
  };
  return list.map((r) => ({ ...r, keys: r.keys.map(key) }));
}

// This worker's state; replaced whole by onMessage (one module instance per worker thread).
let rules: RuntimeVerifierRule[] = [];
let context: HandlerContext | undefined;
let current: VerifierHandlerData | undefined;
// What the profile needs besides the packet: the epoch window here, the clock and the rule's
// NAT tolerance set per packet by decideVerifierPacket (one object, no allocation per packet).
const packetContext: PacketContext = {};
let tagName = new Map<number, string>();

function applyConfig(d: VerifierHandlerData): void {
  packetContext.epochBefore = d.epochWindow?.before;
  packetContext.epochAfter = d.epochWindow?.after;
  tagName = new Map(Object.entries(d.tagNames ?? {}).map(([n, v]) => [v, n]));
}

export function onMessage(msg: unknown): void {
  const m = msg as VerifierRulesMessage;
  if (m?.kind !== 'verifier-rules' || !context || !current) return;
  try {
    const next = buildRules(m.rules);
    rules = next;
    current = { ...current, rules: m.rules, mark: m.mark, epochWindow: m.epochWindow, tagNames: m.tagNames };
    applyConfig(current);
    context.post({ kind: 'verifier-rules-applied', generation: m.generation, ok: true });
  } catch (err) {
    context.post({ kind: 'verifier-rules-applied', generation: m.generation, ok: false, error: (err as Error).message });
  }
}

export function createHandler(data: unknown, ctx: HandlerContext): PacketHandler {
  current = data as VerifierHandlerData;
  context = ctx;
  rules = buildRules(current.rules);
  applyConfig(current);
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
    const v = decideVerifierPacket(profile, p.payload, p.mark, rules, d.mark, inName, outName, packetContext, Date.now());
    const c = ctx.counters;
    c[SLOT[v.judged]]!++;
    if (v.judged === 'valid') c[SLOT.valid_bytes]! += p.payload.length;
    const rs = reasonSlot(v.judged, v.reason);
    if (rs >= 0) c[rs]!++;
    // `unmatched` counts the packets iptables queued but no rule matched here (judged anyway).
    if (v.fallback) c[SLOT.unmatched]!++;
    c[v.verdict === 'drop' ? SLOT.dropped : SLOT.passed]!++;
    // Flood defence: a source that sent a bad segment is limited in the kernel (rules.ts).
    const bad = v.judged !== 'valid' && v.judged !== 'unmatched';
    if (bad && v.src) suspects.note(v.src);
    else if (d.suspect && v.judged === 'valid') reportValidFlow(v.packet);
    const logIt = bad && d.logBad;
    if (logIt && !events.take()) c[SLOT.log_suppressed]!++;
    else if (logIt) {
      const parsed = v.packet;
      ctx.post({
        kind: 'log',
        level: 'warn',
        msg: `verifier: ${v.judged}`,
        event: 'verdict',
        verdict: v.judged,
        reason: v.reason,
        action: v.verdict === 'drop' ? 'dropped' : 'passed',
        rule: rules[v.rule]?.name,
        profile: v.profile ?? profile.name,
        ...(v.keyId !== undefined ? { keyId: v.keyId } : {}),
        ...(v.tag !== undefined ? { tag: v.tag, ...(tagName.has(v.tag) ? { tagName: tagName.get(v.tag) } : {}) } : {}),
        ...(v.fallback ? { fallback: 'no rule matched the interfaces here: judged by addresses and ports' } : {}),
        in: inName,
        out: outName,
        ...(parsed
          ? {
              src: formatAddress(parsed.src),
              dst: formatAddress(parsed.dst),
              sport: parsed.tcp?.srcPort,
              dport: parsed.tcp?.dstPort,
              seq: parsed.tcp?.seq,
            }
          : {}),
      });
    }
    decision.verdict = v.verdict;
    decision.mark = v.verdict === 'drop' ? undefined : v.mark;
    return decision;
  };
}
