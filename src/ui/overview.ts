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

/** The warnings of one socket: unreachable, queue drops, fail-open, lost log lines, handler errors. */
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
  if (s.missingByteReports) w.push(`${s.missingByteReports} labelling worker(s) did not report their bytes in time`);
  return w;
}

export function overview(list: readonly SourceState[], maxEvents = 200): Overview {
  const flows: UiFlow[] = list.flatMap((s) => s.flows ?? []);
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
      if (!s.rules) return [];
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
