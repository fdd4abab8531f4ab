// The shipped monitoring files: contrib/prometheus/labelwall-rules.yml passes `promtool check
// rules` and its unit tests (`promtool test rules`), and the Grafana dashboard
// (contrib/grafana/labelwall.json) parses and, like the rules, uses only metric names that the
// daemons export (read from the metrics code itself, both roles).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createMetrics, type MetricsSources } from '../../src/control/metrics.js';
import { REPO_ROOT } from '../../src/lab/paths.js';

const RULES = join(REPO_ROOT, 'contrib', 'prometheus', 'labelwall-rules.yml');
const RULE_TESTS = join(REPO_ROOT, 'contrib', 'prometheus', 'labelwall-rules.test.yml');
const DASHBOARD = join(REPO_ROOT, 'contrib', 'grafana', 'labelwall.json');

/** Every series name the agent and the verifier can export (histograms with _bucket, _sum, _count). */
async function exportedNames(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const role of ['agent', 'verifier'] as const) {
    const src: MetricsSources = {
      role,
      profile: 'v1',
      version: 'test',
      failOpen: false,
      maxQueueLength: 8192,
      sets: () => [],
      counters: () => ({}),
      log: () => undefined,
      ...(role === 'agent' ? { egressDecisions: () => [] } : {}),
    };
    const text = await createMetrics(src).metrics();
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      names.add(m[1]!);
      if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m[1]! + s);
    }
  }
  return names;
}

/** labelwall_* names in a text that the daemons do not export. */
function unknownNames(text: string, exported: Set<string>): string[] {
  return [...new Set([...text.matchAll(/\blabelwall_[a-z0-9_]+/g)].map((m) => m[0]))].filter((n) => !exported.has(n));
}

test('alert rules: promtool check rules and promtool test rules pass', () => {
  const check = execFileSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
  assert.match(check, /SUCCESS: 6 rules found/);
  const unit = execFileSync('promtool', ['test', 'rules', RULE_TESTS], { encoding: 'utf8', cwd: join(REPO_ROOT, 'contrib', 'prometheus') });
  assert.match(unit, /SUCCESS/);
});

test('alert rules and dashboard reference only exported metrics (control: a made-up name is caught)', async () => {
  const exported = await exportedNames();
  assert.ok(exported.has('labelwall_queue_drops_total') && exported.has('labelwall_egress_attribution_seconds_bucket'));
  const rules = readFileSync(RULES, 'utf8');
  for (const alert of ['LabelwallQueueDrops', 'LabelwallBadSegmentRate', 'LabelwallWorkerStalled', 'LabelwallFailOpenEngaged'])
    assert.match(rules, new RegExp(`alert: ${alert}\\b`));
  assert.deepEqual(unknownNames(rules, exported), [], 'rules');
  const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
    uid: string;
    panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
  };
  assert.equal(dash.uid, 'labelwall');
  assert.ok(dash.panels.length >= 10);
  const exprs = dash.panels.flatMap((p) => p.targets.map((t) => t.expr));
  assert.ok(exprs.length >= dash.panels.length, 'every panel has a query');
  assert.deepEqual(unknownNames(exprs.join('\n'), exported), [], 'dashboard');
  // The panels cover what the alerts watch.
  for (const n of [
    'labelwall_queue_drops_total',
    'labelwall_verdicts_total',
    'labelwall_worker_heartbeat_age_seconds',
    'labelwall_fail_open_engaged',
  ])
    assert.ok(
      exprs.some((e) => e.includes(n)),
      `a panel shows ${n}`,
    );
  assert.deepEqual(unknownNames('rate(labelwall_queue_dropped_total[5m])', exported), ['labelwall_queue_dropped_total']);
});
