// The Prometheus metrics of a running agent or verifier (prom-client), served by the control
// socket's /metrics and by the TCP listener (metrics-server.ts). Every value is read when
// scraped from what the datapath already keeps: the workers' shared counters and histograms,
// /proc/net/netfilter/nfnetlink_queue, the iptables counters of the kernel rules. Nothing here
// runs per packet. Names follow Prometheus conventions (docs/metrics.md lists them all): one
// `labelwall_` prefix, `_total` counters, base units in the name (`_seconds`, `_bytes`), and
// labels with bounded values only (role, profile, verdict, reason, outcome, action, rule and
// tag from the config, queue set and queue number).
import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric } from 'prom-client';
import type { EgressDecisionCount } from '../agent/egress-handler.js';
import { EGRESS_COUNTERS } from '../agent/egress.js';
import { emptyHistogram, mergeHistogram, type HistogramSnapshot } from '../datapath/histogram.js';
import type { QueueStats } from '../datapath/types.js';
import type { LogStats } from '../util/log.js';

/** A worker whose loop has not passed for this long is stalled (its loop wakes every 200 ms). */
export const STALL_SECONDS = 2;

/**
 * The verifier's verdict counters, one per judged packet so that they sum to the packets judged
 * (the rest of the handler counters are outcomes: `unmatched` is one, since a packet no rule
 * matched is still judged, and counted under its verdict too).
 */
const VERDICTS = new Set(['valid', 'invalid', 'unlabelled', 'malformed', 'skipped']);
/** Log lines not written over a rate limit: log lines, not packets, so a metric of their own. */
const LOG_SUPPRESSED = 'log_suppressed';
/** Egress counters with metrics of their own. */
const EGRESS_OWN = new Set<string>(EGRESS_COUNTERS);
/**
 * Counters of bytes, not packets: each is a metric of its own for its role (labels role and
 * profile), not an `outcome` of labelwall_packets_total.
 */
const BYTE_COUNTERS: Record<string, { role: 'agent' | 'verifier'; name: string; help: string }> = {
  labelled_bytes: {
    role: 'agent',
    name: 'labelwall_labelled_bytes_total',
    help: 'IP bytes (headers and payload) of the segments the agent labelled, as sent, label included (docs/metrics.md)',
  },
  valid_bytes: {
    role: 'verifier',
    name: 'labelwall_valid_bytes_total',
    help: 'IP bytes (headers and payload) of the segments the verifier judged valid, as received, label included (docs/metrics.md)',
  },
};

export interface MetricsSources {
  role: 'agent' | 'verifier';
  /** The label profile the daemon runs (v1, compat; any for a verifier that judges both). */
  profile: string;
  version: string;
  failOpen: boolean;
  /** The kernel's queue length limit (a queue this full passes or drops what comes next). */
  maxQueueLength: number;
  /** The queue sets by name (main, egress, suspect); empty before they are bound. */
  sets: () => Array<{ name: string; stats: QueueStats }>;
  /** Handler and kernel-rule counters summed over every worker (status' counters). */
  counters: () => Record<string, number>;
  log: () => LogStats | undefined;
  /** The agent's egress decisions by action, rule and tag (the egress worker's, at most 1 s old). */
  egressDecisions?: () => EgressDecisionCount[];
  /** Tag names by number (the config's `tags:`), for the `tag` label. */
  tagNames?: () => Record<number, string>;
}

interface Snapshot {
  sets: Array<{ name: string; stats: QueueStats }>;
  counters: Record<string, number>;
}

/** A histogram whose buckets the workers already counted: exported as they are. */
class CountedHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => Array<{ labels: Record<string, string>; h: HistogramSnapshot }>,
  ) {}

  get(): { name: string; help: string; type: string; aggregator: string; values: unknown[] } {
    const values: unknown[] = [];
    for (const { labels, h } of this.read()) {
      let cum = 0;
      h.bounds.forEach((b, i) => {
        cum += h.counts[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: String(b) }, value: cum });
      });
      cum += h.counts[h.bounds.length]!;
      values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le: '+Inf' }, value: cum });
      values.push({ metricName: `${this.name}_sum`, labels, value: h.sum });
      // The +Inf bucket, not the workers' own count slot: written without a lock, the two can
      // differ in a scrape, and Prometheus expects _count to equal the +Inf bucket.
      values.push({ metricName: `${this.name}_count`, labels, value: cum });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    // nothing kept here: the workers own the counts
  }
}

export function createMetrics(src: MetricsSources): Registry {
  const registry = new Registry();
  const role = src.role;
  const profile = src.profile;
  // One reading per scrape: every collector below runs within the same registry.metrics() call.
  let snap: Snapshot | undefined;
  let snapAt = 0;
  const now = (): Snapshot => {
    const t = Date.now();
    if (!snap || t - snapAt > 200) {
      snap = { sets: src.sets(), counters: src.counters() };
      snapAt = t;
    }
    return snap;
  };
  const workers = () => now().sets.flatMap(({ name, stats }) => stats.workers.map((w) => ({ set: name, w })));
  const kernelQueues = () =>
    now().sets.flatMap(({ name, stats }) => Object.entries(stats.kernel).map(([q, k]) => ({ set: name, queue: q, k })));
  const stalled = (heartbeatMs: number): boolean => heartbeatMs > 0 && Date.now() - heartbeatMs > STALL_SECONDS * 1000;

  collectDefaultMetrics({ register: registry });
  // prom-client names three gauges `nodejs_active_*_total`, against the conventions (promtool
  // check metrics says so): left out.
  for (const m of registry.getMetricsAsArray()) {
    const x = m as unknown as { name: string; type?: string };
    if (x.name.endsWith('_total') && x.type !== 'counter') registry.removeSingleMetric(x.name);
  }

  new Gauge({
    name: 'labelwall_info',
    help: 'Always 1: the running labelwall, its version and label profile',
    labelNames: ['role', 'version', 'profile'],
    registers: [registry],
    collect() {
      this.set({ role, version: src.version, profile }, 1);
    },
  });

  const counter = (name: string, help: string, labelNames: string[], fill: (c: Counter<string>) => void): void => {
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        fill(this);
      },
    });
  };

  counter(
    'labelwall_packets_total',
    'Packets by outcome (agent: labelled, handshakes_rewritten, passed_not_tcp, ...; verifier: dropped, passed, rate_limited, kernel_unlabelled, unmatched); see docs/metrics.md',
    ['role', 'profile', 'outcome'],
    (c) => {
      for (const [k, v] of Object.entries(now().counters)) {
        if (k.includes(':') || Object.hasOwn(BYTE_COUNTERS, k) || EGRESS_OWN.has(k) || k === LOG_SUPPRESSED) continue;
        if (role === 'verifier' && VERDICTS.has(k)) continue;
        c.inc({ role, profile, outcome: k }, v);
      }
    },
  );
  counter(
    'labelwall_log_suppressed_total',
    'Warning and error lines about packets not written because of their rate limit (per worker: 20 per second for verdict, not-labelled and not-cut, 10 for egress-failed); egress decisions not logged are labelwall_egress_log_suppressed_total',
    ['role'],
    (c) => {
      c.inc({ role }, now().counters[LOG_SUPPRESSED] ?? 0);
    },
  );
  for (const [key, m] of Object.entries(BYTE_COUNTERS)) {
    if (m.role !== role) continue;
    counter(m.name, m.help, ['role', 'profile'], (c) => {
      c.inc({ role, profile }, now().counters[key] ?? 0);
    });
  }
  if (role === 'verifier') {
    counter(
      'labelwall_verdicts_total',
      'Segments judged, by verdict (unlabelled includes those the kernel rules decided without queueing them)',
      ['role', 'profile', 'verdict'],
      (c) => {
        for (const [k, v] of Object.entries(now().counters)) if (VERDICTS.has(k)) c.inc({ role, profile, verdict: k }, v);
      },
    );
    counter(
      'labelwall_verdict_reasons_total',
      'Segments judged invalid or malformed, by reason (a bounded list: verifier/handler.ts invalidReasons, malformedReasons)',
      ['role', 'profile', 'verdict', 'reason'],
      (c) => {
        for (const [k, v] of Object.entries(now().counters)) {
          const i = k.indexOf(':');
          if (i > 0) c.inc({ role, profile, verdict: k.slice(0, i), reason: k.slice(i + 1) }, v);
        }
      },
    );
  }
  if (src.egressDecisions) {
    const egress = src.egressDecisions;
    const tagName = (t: number): string => (t === 0 ? 'none' : (src.tagNames?.()[t] ?? String(t)));
    counter(
      'labelwall_egress_decisions_total',
      'New outbound flows judged by the egress policy, by action, deciding rule and the app tag it gives (none = untagged)',
      ['role', 'action', 'rule', 'tag'],
      (c) => {
        for (const d of egress()) c.inc({ role, action: d.action, rule: d.rule, tag: tagName(d.tag) }, d.n);
      },
    );
    const one = (name: string, help: string, key: string): void =>
      counter(name, help, ['role'], (c) => {
        c.inc({ role }, now().counters[key] ?? 0);
      });
    one(
      'labelwall_egress_packets_total',
      'Packets the egress queue received (new-flow packets: TCP SYN, UDP, ICMP echo)',
      'egress_packets',
    );
    one(
      'labelwall_egress_unknown_total',
      'Egress decisions for flows no holding process was found for (judged by agent.egress.unknown)',
      'egress_unknown',
    );
    one(
      'labelwall_egress_log_suppressed_total',
      'Egress decisions made but not logged (log.egress_decisions rate limit)',
      'egress_log_suppressed',
    );
    counter('labelwall_egress_errors_total', 'Egress packets not judged normally, by kind', ['role', 'kind'], (c) => {
      c.inc({ role, kind: 'unparsed' }, now().counters.egress_unparsed ?? 0);
      c.inc({ role, kind: 'failed' }, now().counters.egress_errors ?? 0);
    });
  }

  // The datapath: per queue set and queue number (at most 65 queues per role).
  counter('labelwall_queue_packets_total', 'Packets a queue worker received from its NFQUEUE queue', ['role', 'set', 'queue'], (c) => {
    for (const { set, w } of workers()) c.inc({ role, set, queue: String(w.queueNum) }, w.received);
  });
  counter('labelwall_queue_batches_total', 'Receive batches (recvmmsg calls that returned packets)', ['role', 'set', 'queue'], (c) => {
    for (const { set, w } of workers()) c.inc({ role, set, queue: String(w.queueNum) }, w.batches);
  });
  counter(
    'labelwall_queue_drops_total',
    'Packets the kernel dropped at an NFQUEUE queue (/proc/net/netfilter/nfnetlink_queue): queue_full = the queue was full (fail-closed; fail-open passes them unseen and counts nothing), socket = the netlink socket could not take them',
    ['role', 'set', 'queue', 'kind'],
    (c) => {
      for (const { set, queue, k } of kernelQueues()) {
        c.inc({ role, set, queue, kind: 'queue_full' }, k.queueDropped);
        c.inc({ role, set, queue, kind: 'socket' }, k.userDropped);
      }
    },
  );
  counter(
    'labelwall_queue_socket_overruns_total',
    'Receive overruns a queue worker saw (ENOBUFS: the kernel dropped packets at the socket)',
    ['role', 'set', 'queue'],
    (c) => {
      for (const { set, w } of workers()) c.inc({ role, set, queue: String(w.queueNum) }, w.enobufs);
    },
  );
  new Gauge({
    name: 'labelwall_queue_length',
    help: 'Packets waiting in an NFQUEUE queue now',
    labelNames: ['role', 'set', 'queue'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { set, queue, k } of kernelQueues()) this.set({ role, set, queue }, k.queueTotal);
    },
  });
  counter(
    'labelwall_datapath_errors_total',
    'Packets given the fail-mode verdict or messages lost, by kind: handler (threw or bad decision), malformed (unparsable message), truncated, kernel (error replies), syscall (failed recv/send)',
    ['role', 'set', 'kind'],
    (c) => {
      for (const { set, w } of workers()) {
        c.inc({ role, set, kind: 'handler' }, w.handlerErrors);
        c.inc({ role, set, kind: 'malformed' }, w.malformed);
        c.inc({ role, set, kind: 'truncated' }, w.truncated);
        c.inc({ role, set, kind: 'kernel' }, w.kernelErrors);
        c.inc({ role, set, kind: 'syscall' }, w.sysErrors);
      }
    },
  );
  new Gauge({
    name: 'labelwall_worker_up',
    help: '1 while a queue worker thread runs, 0 once it failed (its queue is unbound: fail-closed drops, fail-open passes unseen)',
    labelNames: ['role', 'set', 'queue'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { set, w } of workers()) this.set({ role, set, queue: String(w.queueNum) }, w.up ? 1 : 0);
    },
  });
  new Gauge({
    name: 'labelwall_worker_heartbeat_age_seconds',
    help: `Seconds since a queue worker's loop last passed (it passes at least every 0.2 s; over ${STALL_SECONDS} s it is stalled)`,
    labelNames: ['role', 'set', 'queue'],
    registers: [registry],
    collect() {
      this.reset();
      const t = Date.now();
      for (const { set, w } of workers())
        if (w.heartbeatMs > 0) this.set({ role, set, queue: String(w.queueNum) }, Math.max(0, (t - w.heartbeatMs) / 1000));
    },
  });
  new Gauge({
    name: 'labelwall_fail_open',
    help: '1 when the role runs with --fail open (what it cannot judge passes unseen), 0 with --fail closed',
    labelNames: ['role'],
    registers: [registry],
    collect() {
      this.set({ role }, src.failOpen ? 1 : 0);
    },
  });
  new Gauge({
    name: 'labelwall_fail_open_engaged',
    help: `1 while traffic passes unseen because of fail-open: fail-open and a worker down or stalled (over ${STALL_SECONDS} s) or a queue full`,
    labelNames: ['role'],
    registers: [registry],
    collect() {
      let engaged = false;
      if (src.failOpen) {
        for (const { w } of workers()) if (!w.up || stalled(w.heartbeatMs)) engaged = true;
        for (const { k } of kernelQueues()) if (k.queueTotal >= src.maxQueueLength) engaged = true;
      }
      this.set({ role }, engaged ? 1 : 0);
    },
  });
  counter('labelwall_log_dropped_lines_total', 'Log lines dropped because they could not be written', ['role'], (c) => {
    c.inc({ role }, src.log()?.dropped ?? 0);
  });

  // Latency, from the workers' shared histograms (datapath/histogram.ts).
  const perSet = (pick: (w: QueueStats['workers'][number]) => HistogramSnapshot | undefined) => () => {
    const out: Array<{ labels: Record<string, string>; h: HistogramSnapshot }> = [];
    for (const { name, stats } of now().sets) {
      let h: HistogramSnapshot | undefined;
      for (const w of stats.workers) {
        const x = pick(w);
        if (x) h = mergeHistogram(h ?? emptyHistogram(x.bounds), x);
      }
      if (h) out.push({ labels: { role, set: name }, h });
    }
    return out;
  };
  registry.registerMetric(
    new CountedHistogram(
      'labelwall_decision_batch_seconds',
      'Time a queue worker took to decide one receive batch (up to 64 packets: parse, judge or label, verdicts written); packets per batch = labelwall_queue_packets_total / labelwall_queue_batches_total',
      perSet((w) => w.decisionBatch),
    ) as unknown as Metric,
  );
  if (role === 'agent')
    registry.registerMetric(
      new CountedHistogram(
        'labelwall_egress_attribution_seconds',
        "Time from the egress worker reading a new flow's packet to its decision: attribution to the processes holding the socket and the policy",
        () => perSet((w) => w.histograms.attribution_seconds)().map((x) => ({ labels: { role }, h: x.h })),
      ) as unknown as Metric,
    );
  return registry;
}
