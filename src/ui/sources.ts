// The control sockets the ui reads: /status every second (into the history), /events every
// second, the agent's /rules every 10 s and its /flows while a page is open, no more often than
// every 2 s nor than ten times the time the last answer took (a 65,536-flow table costs the
// agent real work to serialise). One request at a time per socket and kind.
import { EventEmitter } from 'node:events';
import { controlGet } from '../control/client.js';
import type { StatusReport } from '../daemon/run.js';
import type { FlowsReport } from '../agent/flows.js';
import type { RecentEventsReport } from '../control/recent.js';
import type { EgressRulesReport } from '../agent/policy-report.js';
import { History } from './history.js';
import type { UiFlow } from './flows-query.js';

export type ControlGet = (socket: string, path: string, timeoutMs?: number) => Promise<string>;

export interface SourceState {
  id: number;
  socket: string;
  role?: string;
  ok: boolean;
  error?: string;
  status?: StatusReport;
  history?: History;
  /** The last rates point (per second). */
  point?: Record<string, number>;
  events?: RecentEventsReport;
  rules?: EgressRulesReport;
  flows?: UiFlow[];
  flowsAt?: number;
  flowsMs?: number;
  flowsError?: string;
  attribution?: Record<string, number>;
  missingByteReports?: number;
  /** Queue drops (queue_dropped + user_dropped) a minute ago, for the warning. */
  dropsMinuteAgo?: number;
}

export interface SourcesOptions {
  get?: ControlGet;
  intervalMs?: number;
  /** Flows are fetched only while a page asked for them within this long (ms). */
  flowsWantedMs?: number;
  minFlowsIntervalMs?: number;
}

export class Sources extends EventEmitter {
  readonly list: SourceState[];
  private readonly get: ControlGet;
  private readonly o: Required<Omit<SourcesOptions, 'get'>>;
  private timer: NodeJS.Timeout | undefined;
  private wantedAt = 0;
  private readonly busy = new Set<string>();
  private ticks = 0;
  private drops: Array<Array<{ t: number; v: number }>>;

  constructor(sockets: readonly string[], o: SourcesOptions = {}) {
    super();
    this.get = o.get ?? controlGet;
    this.o = { intervalMs: 1000, flowsWantedMs: 15_000, minFlowsIntervalMs: 2000, ...o };
    this.list = sockets.map((socket, id) => ({ id, socket, ok: false, error: 'not read yet' }));
    this.drops = sockets.map(() => []);
  }

  start(): void {
    void this.tick();
    this.timer = setInterval(() => void this.tick(), this.o.intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A page is open (its stream or a flows request): keep the flow tables fresh. */
  wantFlows(): void {
    const first = Date.now() - this.wantedAt > this.o.flowsWantedMs;
    this.wantedAt = Date.now();
    if (first) for (const s of this.list) if (s.role === 'agent') void this.fetchFlows(s);
  }

  /** Runs `fn` unless the same kind of request to this socket is still under way. */
  private async single(s: SourceState, kind: string, fn: () => Promise<void>): Promise<void> {
    const k = `${s.id} ${kind}`;
    if (this.busy.has(k)) return;
    this.busy.add(k);
    try {
      await fn();
    } finally {
      this.busy.delete(k);
    }
  }

  async tick(): Promise<void> {
    const n = this.ticks++;
    await Promise.all(
      this.list.map((s) =>
        this.single(s, 'status', async () => {
          await this.readStatus(s);
          if (!s.ok) return;
          void this.single(s, 'events', async () => {
            s.events = await this.json<RecentEventsReport>(s, '/events').catch(() => s.events);
          });
          if (s.role === 'agent' && (n % 10 === 0 || !s.rules))
            void this.single(s, 'rules', async () => {
              s.rules = await this.json<EgressRulesReport>(s, '/rules').catch(() => undefined);
            });
          if (s.role === 'agent' && Date.now() - this.wantedAt <= this.o.flowsWantedMs) {
            const every = Math.max(this.o.minFlowsIntervalMs, 10 * (s.flowsMs ?? 0));
            if (!s.flowsAt || Date.now() - s.flowsAt >= every) void this.fetchFlows(s);
          }
        }),
      ),
    );
    this.emit('tick');
  }

  private json<T>(s: SourceState, path: string, timeoutMs = 2000): Promise<T> {
    return this.get(s.socket, path, timeoutMs).then((b) => JSON.parse(b) as T);
  }

  private async readStatus(s: SourceState): Promise<void> {
    let st: StatusReport;
    try {
      st = await this.json<StatusReport>(s, '/status', Math.max(500, this.o.intervalMs - 100));
    } catch (err) {
      s.ok = false;
      s.error = (err as Error).message;
      s.point = undefined;
      s.history?.gap();
      return;
    }
    const now = Date.now();
    if (s.history && s.role !== st.role) s.history = undefined;
    s.role = st.role;
    s.ok = true;
    delete s.error;
    s.status = st;
    s.history ??= new History(st.role);
    const drops = st.datapath.queueDropped + st.datapath.userDropped;
    s.point = s.history.add(now, st.counters, drops);
    const d = this.drops[s.id]!;
    d.push({ t: now, v: drops });
    while (d.length > 1 && now - d[0]!.t > 60_000) d.shift();
    s.dropsMinuteAgo = d[0]!.v;
  }

  private fetchFlows(s: SourceState): Promise<void> {
    return this.single(s, 'flows', async () => {
      const t0 = Date.now();
      try {
        const r = await this.json<FlowsReport>(s, '/flows', 10_000);
        s.flows = r.flows.map((f) => Object.assign(f, { source: s.socket }));
        s.attribution = r.attribution;
        s.missingByteReports = r.missingByteReports;
        delete s.flowsError;
      } catch (err) {
        s.flowsError = (err as Error).message;
      }
      s.flowsMs = Date.now() - t0;
      s.flowsAt = Date.now();
    });
  }
}
