// Prometheus, the real one from Debian, scraping a labelwall agent and verifier over TCP
// (--metrics-listen) in the lab namespaces: real HTTP from pc (labelled, tagged `web` by its
// egress rule), a flow pc's egress policy denies, and unlabelled attempts from uc that the
// verifier drops. Prometheus runs in mb (storage and config in a temp dir, scrape_interval 1s)
// and scrapes the verifier on mb's loopback and the agent on pc's link address; its HTTP API
// must return, for the traffic sent, the same numbers as the daemons' own status, with the
// labels documented (role, profile, verdict, action, rule, tag). `promtool check metrics` lints
// a scrape of each. The daemons log to stderr only (nothing on stdout), each line once.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../../src/lab/tmp.js';
import { middleboxVerifierArgs, startDaemon, writeKey, type Daemon } from '../../src/lab/labelwall.js';
import { createTopology, standardTopology, waitFor, type Topology } from '../../src/lab/netns.js';
import { startPrometheus, type Prometheus, type PromSample } from '../../src/lab/prometheus.js';
import { httpRequests, startHttpServer, type HttpServer } from '../../src/lab/http.js';

const VERIFIER_PORT = 9464;
const AGENT_PORT = 9465;
const PROM_PORT = 9090;

type Sample = PromSample;

describe('Prometheus scrapes the agent and the verifier (--metrics-listen)', { timeout: 120_000 }, () => {
  let topo: Topology;
  let dir: string;
  let http: HttpServer;
  let agent: Daemon;
  let verifier: Daemon;
  let prom: Prometheus | undefined;

  /** An instant query through Prometheus' HTTP API (curl in mb, where Prometheus listens on loopback). */
  const query = (q: string): Promise<Sample[]> => prom!.query(q);
  const num = (s: Sample[]): number => (s.length === 1 ? Number(s[0]!.value[1]) : Number.NaN);
  /** Waits until Prometheus' answer to `q` is the one value `want` (it scrapes every second). */
  async function settle(q: string, want: number): Promise<Sample[]> {
    let last: Sample[] = [];
    try {
      await waitFor(
        async () => {
          last = await query(q);
          return num(last) === want;
        },
        15_000,
        { what: `${q} == ${want}`, intervalMs: 500 },
      );
    } catch {
      assert.fail(`${q}: Prometheus says ${JSON.stringify(last)}, the daemon ${want}`);
    }
    return last;
  }

  before(async () => {
    dir = makeTempDir('lw-metrics-');
    const key = writeKey(dir, 'site').path;
    const cfg = join(dir, 'agent.yaml');
    writeFileSync(
      cfg,
      [
        'keys:',
        `  site: ${key}`,
        'tags:',
        '  web: 300',
        'agent:',
        '  key: site',
        '  egress:',
        '    rules:',
        '      - { name: web, dst: { ports: [8080], proto: tcp }, action: allow, tag: web }',
        '      - { name: no-discard, dst: { ports: [9], proto: tcp }, action: deny }',
        '',
      ].join('\n'),
    );
    topo = await createTopology(standardTopology({ subnetBase: 243 }));
    http = await startHttpServer(topo, 'srv', { bind: '::', port: 8080 });
    verifier = await startDaemon(
      topo,
      'mb',
      'verifier',
      middleboxVerifierArgs(topo, { profile: 'v1', keyFile: key, action: 'drop' }, ['--metrics-listen', String(VERIFIER_PORT)]),
      dir,
    );
    agent = await startDaemon(
      topo,
      'pc',
      'agent',
      ['--config', cfg, '--queue-base', '40', '--metrics-listen', `${topo.addr('pc', 4, 'mb')}:${AGENT_PORT}`, '--log-format', 'text'],
      dir,
    );
    prom = await startPrometheus(
      topo,
      'mb',
      dir,
      { 'labelwall-verifier': `127.0.0.1:${VERIFIER_PORT}`, 'labelwall-agent': `${topo.addr('pc', 4, 'mb')}:${AGENT_PORT}` },
      PROM_PORT,
    );
  });

  after(async () => {
    await prom?.stop();
    for (const d of [agent, verifier]) await d?.stop().catch(() => undefined);
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the counters of real traffic reach Prometheus with their labels, equal to the daemons’ status', async () => {
    const url = http.url(topo.addr('srv'));
    const res = await httpRequests(topo, 'pc', url, [
      { method: 'GET', path: '/blob/100000' },
      { method: 'GET', path: '/blob/100000' },
      { method: 'GET', path: '/blob/100000' },
    ]);
    for (const r of res) assert.equal(r.status, 200, r.error);
    const denied = await topo.exec('pc', ['curl', '-sS', '--max-time', '3', `http://${topo.addr('srv')}:9/`]);
    assert.notEqual(denied.code, 0, 'the egress policy refuses port 9');
    const unl = await httpRequests(topo, 'uc', url, [{ method: 'GET', path: '/blob/10', timeoutSec: 2 }]);
    assert.equal(unl[0]!.status, null, 'uc is unlabelled: the verifier drops it');

    // Both targets are up for Prometheus itself.
    await settle('up{job="labelwall-verifier"}', 1);
    await settle('up{job="labelwall-agent"}', 1);

    // Verifier: the forwarded traffic has stopped, so its counters stand still.
    const v = await verifier.status();
    assert.ok(v.counters.valid! > 0 && v.counters.unlabelled! > 0, JSON.stringify(v.counters));
    const valid = await settle('labelwall_verdicts_total{verdict="valid"}', v.counters.valid!);
    assert.deepEqual(
      { role: valid[0]!.metric.role, profile: valid[0]!.metric.profile, job: valid[0]!.metric.job },
      { role: 'verifier', profile: 'v1', job: 'labelwall-verifier' },
    );
    await settle('labelwall_verdicts_total{verdict="unlabelled"}', v.counters.unlabelled!);
    assert.ok(v.counters.valid_bytes! > 0, 'valid bytes counted');
    await settle('labelwall_valid_bytes_total{role="verifier",profile="v1"}', v.counters.valid_bytes!);
    await settle('labelwall_packets_total{role="verifier",outcome="dropped"}', v.counters.dropped!);
    await settle('labelwall_packets_total{role="verifier",outcome="kernel_unlabelled"}', v.counters.kernel_unlabelled!);
    await settle('sum(labelwall_verdict_reasons_total{role="verifier"})', v.counters.invalid! + v.counters.malformed!);
    const mainQueue = v.queues.find((q) => q.queue === 200);
    assert.ok(mainQueue && mainQueue.batches > 0, JSON.stringify(v.queues));
    await settle('labelwall_decision_batch_seconds_count{role="verifier",set="main"}', mainQueue.batches);
    await settle('labelwall_queue_packets_total{role="verifier",set="main"}', mainQueue.received);
    await settle('sum(labelwall_queue_drops_total{role="verifier"})', v.datapath.queueDropped + v.datapath.userDropped);

    // Agent: egress decisions only for new outbound flows (the scrapes are inbound), so they stand still too.
    const a = await agent.status();
    assert.equal(a.counters.egress_denied, 1, JSON.stringify(a.counters));
    await settle('labelwall_egress_decisions_total{role="agent",action="allow",rule="web",tag="web"}', a.counters.egress_allowed!);
    await settle('labelwall_egress_decisions_total{role="agent",action="deny",rule="no-discard",tag="none"}', 1);
    await settle('sum(labelwall_egress_decisions_total)', a.counters.egress_decisions!);
    await settle('labelwall_egress_attribution_seconds_count', a.counters.egress_decisions!);
    // Attribution takes more than nothing and less than 2.5 s: every decision in a finite bucket.
    await settle('labelwall_egress_attribution_seconds_bucket{le="2.5"}', a.counters.egress_decisions!);
    assert.ok(num(await query('labelwall_egress_attribution_seconds_sum')) > 0);
    // The agent also labels its answers to the scrapes: its labelled count grows; Prometheus'
    // value lies between the status read before and one read after.
    const before = a.counters.labelled!;
    await waitFor(async () => num(await query('labelwall_packets_total{role="agent",outcome="labelled"}')) >= before, 15_000, {
      what: 'labelled reaches the status value',
      intervalMs: 500,
    });
    const seen = num(await query('labelwall_packets_total{role="agent",outcome="labelled"}'));
    const afterward = (await agent.counters()).labelled!;
    assert.ok(seen >= before && seen <= afterward, `labelled: status ${before} .. ${afterward}, Prometheus ${seen}`);
    assert.ok(num(await query('labelwall_labelled_bytes_total{role="agent",profile="v1"}')) > 0, 'labelled bytes exported');

    // Health: workers up, heartbeats fresh, fail-closed never engaged; an expression of the alert rules works.
    const up = await query('labelwall_worker_up');
    assert.ok(up.length >= 4, `agent main + egress, verifier main + suspect: ${JSON.stringify(up.map((s) => s.metric))}`);
    assert.ok(up.every((s) => s.value[1] === '1'));
    const ages = await query('labelwall_worker_heartbeat_age_seconds');
    assert.ok(ages.length >= 4 && ages.every((s) => Number(s.value[1]) < 2), JSON.stringify(ages.map((s) => s.value[1])));
    assert.deepEqual(
      (await query('labelwall_fail_open_engaged')).map((s) => s.value[1]),
      ['0', '0'],
    );
    const ratio = await query(
      'sum by (role) (rate(labelwall_verdicts_total{verdict=~"invalid|unlabelled|malformed"}[1m])) / sum by (role) (rate(labelwall_verdicts_total[1m]))',
    );
    assert.equal(ratio.length, 1, 'the bad-segment ratio of the rules evaluates');
  });

  test('promtool check metrics on a scrape of each; the listener answers /metrics only', async () => {
    for (const target of [`127.0.0.1:${VERIFIER_PORT}`, `${topo.addr('pc', 4, 'mb')}:${AGENT_PORT}`]) {
      const scrape = await topo.check('mb', ['curl', '-sS', '--max-time', '5', `http://${target}/metrics`]);
      assert.match(scrape.stdout, /^labelwall_info\{/m);
      const file = join(dir, 'scrape.txt');
      writeFileSync(file, scrape.stdout);
      const lint = await topo.exec('mb', ['sh', '-c', `promtool check metrics < ${file}`]);
      assert.equal(lint.code, 0, `${target}: ${lint.stdout}${lint.stderr}`);
      const other = await topo.exec('mb', ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://${target}/status`]);
      assert.equal(other.stdout, '404');
    }
    // Loopback by default: a bare port is not reachable on mb's link addresses.
    const far = await topo.exec('pc', ['curl', '-s', '--max-time', '2', `http://${topo.addr('mb', 4, 'pc')}:${VERIFIER_PORT}/metrics`]);
    assert.notEqual(far.code, 0, 'the verifier’s metrics listen on 127.0.0.1 only');
  });

  test('logs: stderr only, nothing on stdout; each start and stop line once, flushed at SIGTERM; text format for the agent', async () => {
    const code = await agent.stop();
    assert.equal(code, 0);
    const err = agent.proc.stderr;
    assert.equal(agent.proc.stdout, '', 'nothing on stdout');
    const count = (re: RegExp): number => err.split('\n').filter((l) => re.test(l)).length;
    assert.equal(count(/INFO {2}labelwall-agent\[\d+\]: agent: running event=started /), 1, err.slice(0, 2000));
    assert.equal(count(/agent: stopping .*event=stopping|agent: stopping/), 1);
    assert.equal(count(/agent: final counters/), 1, 'the last line was written before the exit');
    assert.equal(count(/^\{/), 0, 'text format: no JSON line');
    const v = await verifier.status();
    assert.ok(v.counters.kernel_unlabelled! > 0, `the kernel rules dropped uc's segments: ${JSON.stringify(v.counters)}`);
    const vcode = await verifier.stop();
    assert.equal(vcode, 0);
    const lines = verifier.logs();
    assert.equal(verifier.proc.stdout, '');
    assert.equal(lines.filter((l) => l.event === 'started').length, 1);
    assert.equal(lines.filter((l) => String(l.msg).endsWith('final counters')).length, 1);
    // The last record counts what the kernel rules decided, as status did (no traffic crossed mb
    // since: the scrapes go to mb itself).
    const final = lines.find((l) => l.event === 'final-counters') as { counters: Record<string, number> };
    for (const k of ['kernel_unlabelled', 'unlabelled', 'dropped']) assert.equal(final.counters[k], v.counters[k], k);
  });
});
