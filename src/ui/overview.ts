// GET /api/overview: what the page shows besides the charts and the flows page: each control
// socket's role, counters, configuration and warnings, the recent denials and refusals, the
// rules with their flow counts, the applications. Pure (from the sources' state).
import type { SourceState } from './sources.js';
import { flowsPerRule, groupByApp, type AppGroup, type UiFlow } from './flows-query.js';
import type { RecentEvent } from '../control/recent.js';
import type { EgressRuleRow } from '../agent/policy-report.js';

export interface SourceOverview {
  id: number;
  socket: string;
  role?: string;
  ok: boolean;
  error?: string;
  pid?: number;
  uptimeSeconds?: number;
  config?: Record<string, unknown>;
  counters?: Record<string, number>;
  point?: Record<string, number>;
  warnings: string[];
  flows?: number;
  flowsError?: string;
}

export interface UiEvent extends RecentEvent {
  source: number;
  role: string;
}

export interface Overview {
  generatedAt: string;
  sources: SourceOverview[];
  /** Recent denied flows (agents) and refused segments (verifiers), newest first. */
  events: UiEvent[];
  /** Egress rules of each agent with the flows of its table each decided. */
  egressRules: Array<{
    source: number;
    default: string;
    unknown: string;
    rules: Array<EgressRuleRow & { flows: number }>;
    other: Record<string, number>;
  }>;
  /** Verifier rules as their status describes them. */
  verifierRules: Array<{ source: number; rules: unknown[] }>;
  apps: AppGroup[];
  appCount: number;
  flowCount: number;
}

/**
 * The flows of the agents that answer now: a stopped agent's last table is not what its host
 * does any more (its card says it is down; its flows come back when it answers again).
 */
export function liveFlows(list: readonly SourceState[]): UiFlow[] {
  return list.filter((s) => s.ok).flatMap((s) => s.flows ?? []);
}

/** Agent counters that mean segments or packets did not go out as they should, with what to say. */
const AGENT_TROUBLE: Array<[counter: string, text: (n: number) => string]> = [
  [
    'unlabelled_no_room',
    (n) =>
      `${n} TCP segment(s) sent unlabelled: no room for the label beside their options (TCP-MD5 or TCP-AO); a verifier calls them unlabelled`,
  ],
  ['dropped_malformed', (n) => `${n} outgoing packet(s) dropped as malformed: see the log`],
  ['gso_dropped', (n) => `${n} GSO super-packet(s) dropped (larger than the queue copies, or a segment could not be made): see the log`],
  ['transmit_errors', (n) => `${n} labelled segment(s) the kernel refused to send on the raw socket (a DROP rule, a full queue)`],
];

/** The warnings of one socket: unreachable, queue drops, fail-open, lost log lines, handler errors, segments not sent as they should. */
export function warningsOf(s: SourceState): string[] {
  const w: string[] = [];
  if (!s.ok) {
    w.push(`no answer on ${s.socket}: ${s.error ?? 'unknown error'}`);
    return w;
  }
  const st = s.status!;
  const d = st.datapath;
  const drops = d.queueDropped + d.userDropped;
  if (drops > 0) {
    const recent = s.dropsMinuteAgo !== undefined ? drops - s.dropsMinuteAgo : 0;
    w.push(
      `queue drops: ${drops} packet(s) dropped by the kernel at the queue since start${recent > 0 ? `, ${recent} in the last minute` : ''} (labelwall too slow${st.config.fail === 'open' ? '; fail open: they passed unseen' : ''})`,
    );
  }
  if (st.config.fail === 'open') w.push('fail open: when labelwall cannot answer, traffic passes unchecked');
  if (d.handlerErrors > 0) w.push(`${d.handlerErrors} handler error(s): see the log`);
  if (st.log && st.log.dropped > 0) w.push(`${st.log.dropped} log line(s) could not be written (${st.log.destination})`);
  if (st.role === 'agent')
    for (const [counter, text] of AGENT_TROUBLE) {
      const n = st.counters[counter] ?? 0;
      if (n > 0) w.push(text(n));
    }
  if (s.missingByteReports) w.push(`${s.missingByteReports} labelling worker(s) did not report their bytes in time`);
  return w;
}

export function overview(list: readonly SourceState[], maxEvents = 200): Overview {
  const flows = liveFlows(list);
  const { groups, apps } = groupByApp(flows);
  const events: UiEvent[] = list
    .flatMap((s) => (s.events?.events ?? []).map((e) => ({ ...e, source: s.id, role: s.role ?? '' })))
    .sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0))
    .slice(0, maxEvents);
  return {
    generatedAt: new Date().toISOString(),
    sources: list.map((s) => ({
      id: s.id,
      socket: s.socket,
      ...(s.role ? { role: s.role } : {}),
      ok: s.ok,
      ...(s.error ? { error: s.error } : {}),
      ...(s.status
        ? { pid: s.status.pid, uptimeSeconds: s.status.uptimeSeconds, config: s.status.config, counters: s.status.counters }
        : {}),
      ...(s.point ? { point: s.point } : {}),
      warnings: warningsOf(s),
      ...(s.flows ? { flows: s.flows.length } : {}),
      ...(s.flowsError ? { flowsError: s.flowsError } : {}),
    })),
    events,
    egressRules: list.flatMap((s) => {
      if (!s.ok || !s.rules) return [];
      const counts = flowsPerRule(s.flows ?? []);
      const named = new Set(s.rules.rules.map((r) => r.name));
      return [
        {
          source: s.id,
          default: s.rules.default,
          unknown: s.rules.unknown,
          rules: s.rules.rules.map((r) => ({ ...r, flows: counts[r.name] ?? 0 })),
          other: Object.fromEntries(Object.entries(counts).filter(([k]) => !named.has(k))),
        },
      ];
    }),
    verifierRules: list.flatMap((s) =>
      s.role === 'verifier' && Array.isArray(s.status?.config.rules) ? [{ source: s.id, rules: s.status.config.rules as unknown[] }] : [],
    ),
    apps: groups,
    appCount: apps,
    flowCount: flows.length,
  };
}
