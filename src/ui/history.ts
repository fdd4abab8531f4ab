// The ui's memory of the past: per control socket, one point a second (rates taken from the
// counters of two consecutive /status answers), the last hour at most, so a chart opened now
// already has a past. Pure: the poller feeds it samples with their times.

/** One chart series: its name, unit and how to read it from a /status answer's counters. */
export interface SeriesSpec {
  key: string;
  label: string;
  unit: '/s' | 'Mbit/s';
  /** The counter total this series is the rate of (bytes are turned into Mbit/s). */
  read: (c: Readonly<Record<string, number>>, queueDrops: number) => number;
}

const n = (c: Readonly<Record<string, number>>, k: string): number => c[k] ?? 0;
const mbit = (bytes: number): number => (bytes * 8) / 1e6;

/** What is charted per role. The verifier's verdicts, the agent's labels and egress decisions. */
export const ROLE_SERIES: Readonly<Record<string, readonly SeriesSpec[]>> = {
  verifier: [
    { key: 'valid', label: 'valid', unit: '/s', read: (c) => n(c, 'valid') },
    { key: 'invalid', label: 'invalid', unit: '/s', read: (c) => n(c, 'invalid') },
    { key: 'unlabelled', label: 'unlabelled', unit: '/s', read: (c) => n(c, 'unlabelled') },
    { key: 'malformed', label: 'malformed', unit: '/s', read: (c) => n(c, 'malformed') },
    { key: 'queueDrops', label: 'queue drops', unit: '/s', read: (_c, q) => q },
    { key: 'verifiedMbps', label: 'verified', unit: 'Mbit/s', read: (c) => mbit(n(c, 'valid_bytes')) },
  ],
  agent: [
    { key: 'labelled', label: 'labelled', unit: '/s', read: (c) => n(c, 'labelled') },
    { key: 'allowed', label: 'flows allowed', unit: '/s', read: (c) => n(c, 'egress_allowed') },
    { key: 'denied', label: 'flows denied', unit: '/s', read: (c) => n(c, 'egress_denied') },
    { key: 'queueDrops', label: 'queue drops', unit: '/s', read: (_c, q) => q },
    { key: 'labelledMbps', label: 'labelled', unit: 'Mbit/s', read: (c) => mbit(n(c, 'labelled_bytes')) },
  ],
};

export function seriesOf(role: string): readonly SeriesSpec[] {
  return ROLE_SERIES[role] ?? [];
}

/** Chart columns as uPlot takes them: times in seconds first, then one array per series. */
export interface HistoryColumns {
  series: Array<{ key: string; label: string; unit: string }>;
  columns: number[][];
}

export class History {
  private readonly t: number[] = [];
  private readonly cols: number[][];
  private prev: { t: number; totals: number[] } | undefined;

  constructor(
    readonly role: string,
    /** Points kept: an hour at one a second. */
    readonly capacity = 3600,
  ) {
    this.cols = seriesOf(role).map(() => []);
  }

  get length(): number {
    return this.t.length;
  }

  /**
   * A /status answer taken at `tMs`. Rates are per second over the time since the previous one;
   * a total that went down (the daemon restarted) counts from zero again.
   */
  add(tMs: number, counters: Readonly<Record<string, number>>, queueDrops: number): Record<string, number> | undefined {
    const specs = seriesOf(this.role);
    const totals = specs.map((s) => s.read(counters, queueDrops));
    const prev = this.prev;
    this.prev = { t: tMs, totals };
    if (!prev || tMs <= prev.t) return undefined;
    const dt = (tMs - prev.t) / 1000;
    const point: Record<string, number> = {};
    this.t.push(Math.round(tMs / 100) / 10);
    specs.forEach((s, i) => {
      const d = totals[i]! - prev.totals[i]!;
      const v = (d >= 0 ? d : totals[i]!) / dt;
      const r = Math.round(v * 1000) / 1000;
      this.cols[i]!.push(r);
      point[s.key] = r;
    });
    if (this.t.length > this.capacity) {
      const cut = this.t.length - this.capacity;
      this.t.splice(0, cut);
      for (const c of this.cols) c.splice(0, cut);
    }
    return point;
  }

  /** A gap (the socket did not answer): the next answer starts a new rate, not one over the gap. */
  gap(): void {
    this.prev = undefined;
  }

  columns(): HistoryColumns {
    return {
      series: seriesOf(this.role).map((s) => ({ key: s.key, label: s.label, unit: s.unit })),
      columns: [[...this.t], ...this.cols.map((c) => [...c])],
    };
  }
}
