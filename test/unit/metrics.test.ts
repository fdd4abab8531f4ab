// The Prometheus side without a kernel: the workers' shared histograms, `metrics.listen` and
// `--metrics-listen` (file:line:col or the flag), the exported names against the conventions and
// promtool's linter, the TCP listener's routes, and the text log format.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { request } from 'node:http';
import { DECISION_BUCKETS, emptyHistogram, histogramSlots, mergeHistogram, observe, readHistogram } from '../../src/datapath/histogram.js';
import { parseListen } from '../../src/config/listen.js';
import { parseConfig } from '../../src/config/load.js';
import { ConfigError, formatProblem } from '../../src/config/messages.js';
import { createMetrics, type MetricsSources } from '../../src/control/metrics.js';
import { closeMetricsServer, startMetricsServer } from '../../src/control/metrics-server.js';
import type { QueueStats, WorkerStats } from '../../src/datapath/types.js';
import { ATTRIBUTION_BUCKETS } from '../../src/datapath/histogram.js';
import { formatTextLine } from '../../src/util/log-text.js';
import { verifierOverrides } from '../../src/daemon/resolve.js';
import { withOverrides } from '../../src/config/load.js';

test('histogram: buckets by upper bound (le), sum and count; merge adds', () => {
  const b = [0.001, 0.01];
  const mem = new Float64Array(histogramSlots(b) + 2);
  for (const v of [0.0005, 0.001, 0.005, 0.5]) observe(mem, 2, b, v);
  const h = readHistogram(mem, 2, b);
  assert.deepEqual(h.counts, [2, 1, 1], '0.001 is in le=0.001 (Prometheus buckets are inclusive)');
  assert.equal(h.count, 4);
  assert.ok(Math.abs(h.sum - 0.5065) < 1e-12);
  assert.equal(mem[0], 0, 'nothing written before the offset');
  const m = mergeHistogram(emptyHistogram(b), h);
  mergeHistogram(m, h);
  assert.deepEqual(m.counts, [4, 2, 2]);
  assert.equal(m.count, 8);
});

test('parseListen: a port is loopback; ADDR:PORT and [v6]:PORT; host names, bad ports and bare v6 refused with the reason', () => {
  assert.deepEqual(parseListen(9464), { ok: true, listen: { host: '127.0.0.1', port: 9464 } });
  assert.deepEqual(parseListen('9464'), { ok: true, listen: { host: '127.0.0.1', port: 9464 } });
  assert.deepEqual(parseListen('10.1.2.3:80'), { ok: true, listen: { host: '10.1.2.3', port: 80 } });
  assert.deepEqual(parseListen('[::1]:9464'), { ok: true, listen: { host: '::1', port: 9464 } });
  const bad = (v: string | number): string => {
    const r = parseListen(v);
    assert.equal(r.ok, false, `${v} accepted`);
    return (r as { reason: string }).reason;
  };
  assert.match(bad('localhost:9464'), /not an IP address \(host names are not resolved/);
  assert.match(bad('0'), /port must be 1-65535, got 0/);
  assert.match(bad(70000), /port must be 1-65535/);
  assert.match(bad('1e3'), /must be PORT, ADDR:PORT/);
  assert.match(bad(':9464'), /no address before ":"/);
  assert.match(bad('::1:9464'), /in brackets|\[ADDR\]:PORT/);
  assert.match(bad('[10.0.0.1]:80'), /not an IPv6 address/);
  assert.match(bad('127.0.0.1:0x50'), /decimal digits/);
});

test('metrics.listen in the config: parsed, off by default, and a bad value is FILE:LINE:COL: metrics.listen: reason', () => {
  assert.equal(parseConfig('', 'c.yaml').metrics.listen, undefined, 'off by default');
  assert.deepEqual(parseConfig('metrics:\n  listen: 9464\n', 'c.yaml').metrics.listen, { host: '127.0.0.1', port: 9464 });
  assert.throws(
    () => parseConfig('metrics:\n  listen: "example.org:9464"\n', 'c.yaml'),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message === 'c.yaml:2:11: metrics.listen: "example.org" is not an IP address (host names are not resolved: give the address)',
  );
  assert.throws(
    () => parseConfig('metrics:\n  listen: [9464]\n  lisen: 1\n', 'c.yaml'),
    (e: unknown) =>
      e instanceof ConfigError &&
      /c\.yaml:2:11: metrics\.listen: must be PORT, ADDR:PORT/.test(e.message) &&
      /c\.yaml:3:3: metrics\.lisen: unknown key "lisen" \(did you mean "listen"\?\)/.test(e.message),
  );
  // The flag goes through the same check and is named.
  try {
    withOverrides(parseConfig('', 'c.yaml'), verifierOverrides({ metricsListen: 'host:1' }));
    assert.fail('accepted');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.equal(
      formatProblem(e.problems[0]!),
      '--metrics-listen: "host" is not an IP address (host names are not resolved: give the address)',
    );
  }
  assert.deepEqual(withOverrides(parseConfig('', 'c.yaml'), verifierOverrides({ metricsListen: '[::1]:9' })).metrics.listen, {
    host: '::1',
    port: 9,
  });
});

function worker(queueNum: number, extra: Partial<WorkerStats> = {}): WorkerStats {
  const h = emptyHistogram(DECISION_BUCKETS);
  h.counts[3] = 5;
  h.count = 5;
  h.sum = 0.0004;
  return {
    queueNum,
    received: 320,
    verdicts: 320,
    batches: 5,
    sends: 5,
    batchVerdictMsgs: 0,
    payloadVerdicts: 0,
    enobufs: 0,
    kernelErrors: 0,
    lastKernelErrno: 0,
    handlerErrors: 0,
    malformed: 0,
    truncated: 0,
    sysErrors: 0,
    handler: {},
    up: true,
    heartbeatMs: Date.now(),
    decisionBatch: h,
    histograms: {},
    ...extra,
  };
}

function sources(o: Partial<MetricsSources> & { stats?: QueueStats[] } = {}): MetricsSources {
  const stats = o.stats ?? [{ workers: [worker(200)], kernel: { 200: { queueTotal: 0, queueDropped: 7, userDropped: 1, idSequence: 9 } } }];
  return {
    role: 'verifier',
    profile: 'v1',
    version: '0.1.0',
    failOpen: false,
    maxQueueLength: 8192,
    sets: () => stats.map((s, i) => ({ name: i === 0 ? 'main' : 'suspect', stats: s })),
    counters: () => ({
      valid: 10,
      valid_bytes: 15000,
      invalid: 2,
      dropped: 2,
      passed: 10,
      'invalid:mac-mismatch': 2,
      kernel_unlabelled: 0,
      // 3 of the 12 judged matched no rule here: judged anyway, so also under their verdicts.
      unmatched: 3,
      log_suppressed: 4,
    }),
    log: () => undefined,
    ...o,
  };
}

/** Metric family names of the exposition (from # TYPE lines) with their types. */
function families(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

test('metrics: labelwall_ names follow the conventions (counters _total, units, no _total on gauges); promtool check metrics passes', async () => {
  const text = await createMetrics(sources()).metrics();
  const fam = families(text);
  const ours = [...fam].filter(([n]) => n.startsWith('labelwall_'));
  assert.ok(ours.length >= 15, `${ours.length} labelwall families`);
  for (const [name, type] of ours) {
    assert.match(name, /^labelwall_[a-z][a-z0-9_]*$/, name);
    if (type === 'counter') assert.match(name, /_total$/, `counter ${name} ends in _total`);
    else assert.doesNotMatch(name, /_total$/, `${type} ${name} does not end in _total`);
    if (type === 'histogram') assert.match(name, /_seconds$/, `histogram ${name} is in seconds`);
  }
  assert.match(text, /^labelwall_verdicts_total\{role="verifier",profile="v1",verdict="valid"\} 10$/m);
  assert.match(text, /^labelwall_verdict_reasons_total\{role="verifier",profile="v1",verdict="invalid",reason="mac-mismatch"\} 2$/m);
  assert.match(text, /^labelwall_queue_drops_total\{role="verifier",set="main",queue="200",kind="queue_full"\} 7$/m);
  assert.match(text, /^labelwall_queue_drops_total\{role="verifier",set="main",queue="200",kind="socket"\} 1$/m);
  assert.match(text, /^labelwall_decision_batch_seconds_bucket\{role="verifier",set="main",le="0.0001"\} 5$/m);
  assert.match(text, /^labelwall_decision_batch_seconds_bucket\{role="verifier",set="main",le="\+Inf"\} 5$/m);
  assert.match(text, /^labelwall_decision_batch_seconds_count\{role="verifier",set="main"\} 5$/m);
  assert.match(text, /^labelwall_worker_up\{role="verifier",set="main",queue="200"\} 1$/m);
  assert.doesNotMatch(text, /outcome="valid"/, 'verdicts are not repeated as outcomes');
  assert.match(text, /^labelwall_valid_bytes_total\{role="verifier",profile="v1"\} 15000$/m);
  // The verdicts sum to the packets judged (12): `unmatched` is an outcome, not a 13th-15th verdict.
  const verdictSum = [...text.matchAll(/^labelwall_verdicts_total\{[^}]*\} (\d+)$/gm)].reduce((a, m) => a + Number(m[1]), 0);
  assert.equal(verdictSum, 12);
  assert.match(text, /^labelwall_packets_total\{role="verifier",profile="v1",outcome="unmatched"\} 3$/m);
  // Log lines held back by the rate limit: a metric of their own, not a packet outcome.
  assert.match(text, /^labelwall_log_suppressed_total\{role="verifier"\} 4$/m);
  assert.doesNotMatch(text, /outcome="log_suppressed"/);
  assert.doesNotMatch(text, /outcome="valid_bytes"/, 'bytes are not counted as packets');
  // promtool (Debian's prometheus package, scripts/setup.sh) lints the exposition as Prometheus reads it.
  const lint = execFileSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  assert.equal(lint.trim(), '');
  // Control: promtool does complain about a gauge named like a counter.
  assert.throws(
    () => execFileSync('promtool', ['check', 'metrics'], { input: '# HELP x_total a\n# TYPE x_total gauge\nx_total 1\n', stdio: 'pipe' }),
    /non-counter metrics should not have "_total" suffix/,
  );
});

test("metrics: a histogram's _count is its +Inf bucket, also when a scrape reads the count slot mid-update", async () => {
  const w = worker(200);
  w.decisionBatch.count = 6; // a worker counted one more batch, its bucket not yet written
  const text = await createMetrics(sources({ stats: [{ workers: [w], kernel: {} }] })).metrics();
  assert.match(text, /^labelwall_decision_batch_seconds_bucket\{role="verifier",set="main",le="\+Inf"\} 5$/m);
  assert.match(text, /^labelwall_decision_batch_seconds_count\{role="verifier",set="main"\} 5$/m);
});

test('metrics: worker down or stalled engages fail-open only in fail-open mode; attribution histogram and egress decisions for the agent', async () => {
  const h = emptyHistogram(ATTRIBUTION_BUCKETS);
  h.counts[4] = 3;
  h.count = 3;
  h.sum = 0.002;
  const stats: QueueStats[] = [
    { workers: [worker(100)], kernel: {} },
    { workers: [worker(101, { heartbeatMs: Date.now() - 5000, histograms: { attribution_seconds: h } })], kernel: {} },
  ];
  const agent = (failOpen: boolean) =>
    createMetrics(
      sources({
        role: 'agent',
        failOpen,
        stats,
        sets: () => [
          { name: 'main', stats: stats[0]! },
          { name: 'egress', stats: stats[1]! },
        ],
        counters: () => ({ labelled: 40, labelled_bytes: 4000, egress_packets: 3, egress_decisions: 3, egress_unknown: 1 }),
        egressDecisions: () => [
          { action: 'allow', rule: 'web', tag: 300, n: 2 },
          { action: 'deny', rule: 'no-curl', tag: 0, n: 1 },
        ],
        tagNames: () => ({ 300: 'web' }),
      }),
    ).metrics();
  const open = await agent(true);
  assert.match(open, /^labelwall_fail_open_engaged\{role="agent"\} 1$/m, 'a stalled worker in fail-open mode');
  assert.match(open, /^labelwall_worker_heartbeat_age_seconds\{role="agent",set="egress",queue="101"\} [45]\.\d+$/m);
  const closed = await agent(false);
  assert.match(closed, /^labelwall_fail_open_engaged\{role="agent"\} 0$/m, 'fail-closed: nothing passes unseen');
  assert.match(closed, /^labelwall_fail_open\{role="agent"\} 0$/m);
  assert.match(closed, /^labelwall_egress_attribution_seconds_bucket\{role="agent",le="0.001"\} 3$/m);
  assert.match(closed, /^labelwall_egress_decisions_total\{role="agent",action="allow",rule="web",tag="web"\} 2$/m);
  assert.match(closed, /^labelwall_egress_decisions_total\{role="agent",action="deny",rule="no-curl",tag="none"\} 1$/m);
  assert.match(closed, /^labelwall_labelled_bytes_total\{role="agent",profile="v1"\} 4000$/m);
  assert.match(closed, /^labelwall_packets_total\{role="agent",profile="v1",outcome="labelled"\} 40$/m);
  // One name for status' egress_unknown and the config's agent.egress.unknown.
  assert.match(closed, /^labelwall_egress_unknown_total\{role="agent"\} 1$/m);
  assert.doesNotMatch(closed, /outcome="labelled_bytes"|outcome="egress_/);
  assert.equal(execFileSync('promtool', ['check', 'metrics'], { input: closed, encoding: 'utf8' }).trim(), '');
});

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type']) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('metrics listener: GET /metrics is the exposition, other paths 404, other methods 405, a taken port is refused with the reason', async () => {
  const registry = createMetrics(sources());
  let scrapes = 0;
  const server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, registry, async () => {
    scrapes++;
  });
  const port = (server.address() as { port: number }).port;
  try {
    const m = await get(port, '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.type, /^text\/plain; version=0\.0\.4/);
    assert.match(m.body, /^labelwall_info\{role="verifier",version="0\.1\.0",profile="v1"\} 1$/m);
    assert.equal(scrapes, 1, 'the kernel counters are refreshed before a scrape');
    assert.equal((await get(port, '/status')).status, 404, 'no status, no flows over TCP');
    assert.equal((await get(port, '/')).status, 404);
    assert.equal((await get(port, '/metrics', 'POST')).status, 405);
    await assert.rejects(
      startMetricsServer({ host: '127.0.0.1', port }, registry),
      /--metrics-listen 127\.0\.0\.1:\d+: cannot listen: the address is in use .*\(EADDRINUSE\)/,
    );
    await assert.rejects(startMetricsServer({ host: '192.0.2.1', port: 1 }, registry), /no interface of this host has that address/);
  } finally {
    await closeMetricsServer(server);
  }
});

test('text log format: time, level, name[pid], message, then key=value (strings bare when plain, JSON otherwise)', () => {
  const line = formatTextLine(
    `${JSON.stringify({ level: 40, time: 0, pid: 7, name: 'labelwall-verifier', event: 'verdict', reason: 'mac-mismatch', msg: 'verifier: invalid', src: '10.0.0.1', n: 3, o: { a: 'b c' }, s: 'two words' })}\n`,
  );
  assert.equal(
    line,
    '1970-01-01T00:00:00.000Z WARN  labelwall-verifier[7]: verifier: invalid event=verdict reason=mac-mismatch src=10.0.0.1 n=3 o={"a":"b c"} s="two words"\n',
  );
  assert.equal(formatTextLine('not json'), 'not json\n', 'what is not JSON is kept');
});
