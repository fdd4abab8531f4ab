// The flows table as the page asks for it: filtered, sorted and cut to one page on the server,
// so the browser holds at most a page of rows whatever the agent's table holds (65,536 flows).
// Also the table grouped by application and the flow count of each rule. Pure.
import type { FlowRow } from '../agent/flows.js';

/** A flow row and the control socket (agent) it came from. */
export type UiFlow = FlowRow & { source: string };

export const SORT_KEYS = [
  'app',
  'user',
  'dst',
  'dport',
  'proto',
  'verdict',
  'rule',
  'tag',
  'bytesLabelled',
  'firstSeen',
  'lastSeen',
] as const;
export type SortKey = (typeof SORT_KEYS)[number];

export interface FlowQuery {
  /** Words that must all occur (case-insensitive) in the row's application, holders, user, unit, destination, port, protocol, verdict, rule or tag. */
  q?: string;
  /** Only flows of this application (its executable, as in `app`). */
  app?: string;
  sort?: SortKey;
  dir?: 'asc' | 'desc';
  offset?: number;
  limit?: number;
}

export const MAX_PAGE = 500;

export interface FlowPage {
  /** Flows in the table. */
  total: number;
  /** Flows that pass the filter. */
  matched: number;
  offset: number;
  rows: UiFlow[];
}

export interface AppGroup {
  app: string;
  users: string[];
  /** systemd units and container ids of the holders. */
  units: string[];
  tags: string[];
  flows: number;
  allowed: number;
  denied: number;
  logged: number;
  destinations: number;
  bytesLabelled: number;
  lastSeen: string;
}

const userOf = (f: FlowRow): string => f.holders.map((h) => h.user ?? String(h.uid)).join(',');
const tagOf = (f: FlowRow): string => f.tagName ?? (f.tag ? String(f.tag) : '');

const texts = new WeakMap<FlowRow, string>();

/** The text a filter word is looked for in (lower case); made once per row of a snapshot. */
export function searchText(f: FlowRow): string {
  let t = texts.get(f);
  if (t === undefined) {
    t = makeSearchText(f);
    texts.set(f, t);
  }
  return t;
}

function makeSearchText(f: FlowRow): string {
  const holders = f.holders.map((h) => `${h.pid} ${h.exe} ${h.user ?? ''} ${h.uid} ${h.unit ?? ''} ${h.containerId ?? ''}`).join(' ');
  return `${f.app} ${holders} ${f.dst} ${f.dport} ${f.proto}${f.family === 6 ? '6' : ''} ${f.verdict} ${f.rule} ${tagOf(f)}`.toLowerCase();
}

function compare(key: SortKey): (a: FlowRow, b: FlowRow) => number {
  switch (key) {
    case 'dport':
      return (a, b) => a.dport - b.dport;
    case 'bytesLabelled':
      return (a, b) => a.bytesLabelled - b.bytesLabelled;
    case 'tag':
      return (a, b) => tagOf(a).localeCompare(tagOf(b));
    case 'user':
      return (a, b) => userOf(a).localeCompare(userOf(b));
    default:
      // ISO times and the text columns sort as strings.
      return (a, b) => (a[key] < b[key] ? -1 : a[key] > b[key] ? 1 : 0);
  }
}

/** Reads a page request from URL query parameters; anything unknown falls back to a default. */
export function parseFlowQuery(p: URLSearchParams): FlowQuery {
  const int = (k: string, d: number): number => {
    const v = p.get(k);
    return v !== null && /^[0-9]{1,9}$/.test(v) ? Number(v) : d;
  };
  const sort = p.get('sort');
  return {
    q: (p.get('q') ?? '').slice(0, 200),
    ...(p.get('app') ? { app: p.get('app')! } : {}),
    sort: (SORT_KEYS as readonly string[]).includes(sort ?? '') ? (sort as SortKey) : 'lastSeen',
    dir: p.get('dir') === 'asc' ? 'asc' : 'desc',
    offset: int('offset', 0),
    limit: Math.min(MAX_PAGE, Math.max(1, int('limit', 100))),
  };
}

export function queryFlows(flows: readonly UiFlow[], q: FlowQuery): FlowPage {
  const words = (q.q ?? '').toLowerCase().split(/\s+/).filter(Boolean);
  let rows = flows.filter(
    (f) => (q.app === undefined || f.app === q.app) && (words.length === 0 || words.every((w) => searchText(f).includes(w))),
  );
  const matched = rows.length;
  const cmp = compare(q.sort ?? 'lastSeen');
  const sign = q.dir === 'asc' ? 1 : -1;
  // Ties keep the table's order (most recently seen last), so paging is stable.
  rows = rows
    .map((f, i) => ({ f, i }))
    .sort((a, b) => sign * cmp(a.f, b.f) || a.i - b.i)
    .map((x) => x.f);
  const limit = Math.min(MAX_PAGE, Math.max(1, q.limit ?? 100));
  const offset = Math.min(Math.max(0, q.offset ?? 0), Math.max(0, matched - 1));
  return { total: flows.length, matched, offset, rows: rows.slice(offset, offset + limit) };
}

/** Flows grouped by application (its executable), most flows first; `limit` groups at most. */
export function groupByApp(flows: readonly FlowRow[], limit = 50): { groups: AppGroup[]; apps: number } {
  const by = new Map<string, AppGroup & { u: Set<string>; un: Set<string>; tg: Set<string>; d: Set<string> }>();
  for (const f of flows) {
    let g = by.get(f.app);
    if (!g) {
      g = {
        app: f.app,
        users: [],
        units: [],
        tags: [],
        flows: 0,
        allowed: 0,
        denied: 0,
        logged: 0,
        destinations: 0,
        bytesLabelled: 0,
        lastSeen: f.lastSeen,
        u: new Set(),
        un: new Set(),
        tg: new Set(),
        d: new Set(),
      };
      by.set(f.app, g);
    }
    g.flows++;
    if (f.verdict === 'allow') g.allowed++;
    else if (f.verdict === 'deny') g.denied++;
    else g.logged++;
    g.bytesLabelled += f.bytesLabelled;
    if (f.lastSeen > g.lastSeen) g.lastSeen = f.lastSeen;
    for (const h of f.holders) {
      if (g.u.size < 8) g.u.add(h.user ?? String(h.uid));
      const unit = h.unit ?? h.containerId;
      if (unit && g.un.size < 8) g.un.add(unit);
    }
    const t = tagOf(f);
    if (t && g.tg.size < 8) g.tg.add(t);
    if (g.d.size < 100_000) g.d.add(`${f.proto} ${f.dst} ${f.dport}`);
  }
  const groups = [...by.values()]
    .sort((a, b) => b.flows - a.flows || a.app.localeCompare(b.app))
    .slice(0, limit)
    .map(({ u, un, tg, d, ...g }) => ({ ...g, users: [...u], units: [...un], tags: [...tg], destinations: d.size }));
  return { groups, apps: by.size };
}

/** How many flows of the table each rule decided (`default` and `unknown` included). */
export function flowsPerRule(flows: readonly FlowRow[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of flows) out[f.rule] = (out[f.rule] ?? 0) + 1;
  return out;
}
