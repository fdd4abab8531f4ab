// Issue 7, item 10: availability under flood. The real `labelwall verifier` on mb (forward,
// checking what comes from pc and uc), the real agent on pc, and floods of raw segments from uc
// sent by bench/flood.c (AF_PACKET, sendmmsg):
//   - segments without option 253 are decided in the kernel: never queued, never at the server
//     in drop mode, marked by the kernel in mark and log mode, counted in `status` either way;
//   - a bad-MAC flood from one source is limited in the kernel once the verifier has listed the
//     source, and a genuine flow still completes byte for byte, also when the flood forges the
//     genuine client's address.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { controlGet } from '../../src/control/client.js';
import { createTopology, run, standardTopology, type Topology } from '../../src/lab/netns.js';
import { startFlowClient, startSink } from '../../src/lab/inject.js';
import { blob, sha256hex } from '../../src/lab/blob.js';
import { makeTempDir } from '../../src/lab/tmp.js';
import { REPO_ROOT } from '../../src/lab/paths.js';
import { middleboxVerifierArgs, startDaemon, writeKey, type Daemon } from '../../src/lab/labelwall.js';

const PORT = 7777; // flood target on srv (nothing listens: srv answers with resets)

describe('verifier under flood (issue 7, item 10)', { timeout: 240_000 }, () => {
  let topo: Topology;
  let dir: string;
  let key: { path: string; hex: string };
  let floodBin: string;
  let verifier: Daemon | undefined;

  /** Packets counted by the first rule of `chain` on `host` whose text contains `needle`. */
  const ruleCount = async (host: string, chain: string, needle: string, tool = 'iptables'): Promise<number> => {
    const r = await topo.check(host, [tool, '-w', '-t', 'filter', '-S', chain, '-v']);
    const line = r.stdout.split('\n').find((l) => l.startsWith(`-A ${chain} `) && l.includes(needle));
    assert.ok(line, `no rule with ${needle} in ${chain} on ${host}:\n${r.stdout}`);
    return Number(/ -c (\d+) /.exec(line)![1]);
  };
  const srvCount = () => ruleCount('srv', 'INPUT', `--dport ${PORT}`);

  /** Sends a paced flood from uc to srv:PORT; returns the number of segments sent. */
  const flood = async (o: {
    pps: number;
    seconds: number;
    labelled: number;
    src?: string;
    exid?: number;
    dport?: number;
  }): Promise<number> => {
    const mac = (await topo.check('mb', ['cat', `/sys/class/net/${topo.iface('mb', 'uc').name}/address`])).stdout.trim();
    const r = await topo.check('uc', [
      floodBin,
      topo.iface('uc', 'mb').name,
      mac,
      o.src ?? topo.addr('uc'),
      topo.addr('srv'),
      String(o.dport ?? PORT),
      String(o.pps),
      String(o.seconds),
      String(o.labelled),
      '64',
      `0x${(o.exid ?? 0x4677).toString(16)}`,
    ]);
    const res = JSON.parse(r.stdout.trim()) as { sent: number };
    assert.ok(res.sent > 0, r.stdout);
    return res.sent;
  };

  const startVerifier = async (action: 'drop' | 'mark' | 'log'): Promise<Daemon> => {
    await verifier?.stop();
    verifier = await startDaemon(
      topo,
      'mb',
      'verifier',
      middleboxVerifierArgs(topo, { profile: 'compat', keyFile: key.path, action }, ['--queue-base', '40', '--family', 'ipv4']),
      dir,
    );
    return verifier;
  };
  const listed = async (): Promise<string> => (await topo.check('mb', ['cat', '/proc/net/xt_recent/LABELWALL-VERIFY-BAD'])).stdout;

  before(async () => {
    dir = makeTempDir('lw-flood-');
    key = writeKey(dir, 'site');
    floodBin = join(dir, 'flood');
    const cc = await run(['gcc', '-O2', '-o', floodBin, join(REPO_ROOT, 'bench', 'flood.c')]);
    assert.equal(cc.code, 0, cc.stderr);
    topo = await createTopology(standardTopology({ subnetBase: 231 }));
    // Counts what reaches srv's stack from uc on the flood port (no target: counting only).
    await topo.check('srv', ['iptables', '-A', 'INPUT', '-s', topo.addr('uc'), '-p', 'tcp', '--dport', String(PORT)]);
    await startDaemon(topo, 'pc', 'agent', ['--profile', 'compat', '--key-file', key.path, '--queue-base', '30'], dir);
  });
  after(async () => {
    await verifier?.stop().catch(() => undefined);
    await topo?.destroy();
  });

  test('drop: unlabelled segments are dropped in the kernel, never queued, never at the server, counted in status and /metrics', async () => {
    // Control: without a verifier the same burst reaches srv, so the counting rule would see a leak.
    const c0 = await srvCount();
    const ctl = await flood({ pps: 5000, seconds: 0.5, labelled: 0 });
    const c1 = await srvCount();
    assert.ok(c1 - c0 >= ctl * 0.9, `control: srv counted ${c1 - c0} of ${ctl}`);

    const v = await startVerifier('drop');
    const s0 = await v.status();
    const k0 = await ruleCount('mb', 'LABELWALL-VERIFY-UDROP', '-j DROP');
    const sent = await flood({ pps: 20_000, seconds: 1, labelled: 0 });
    const s1 = await v.status();
    const k1 = await ruleCount('mb', 'LABELWALL-VERIFY-UDROP', '-j DROP');
    assert.ok(sent >= 10_000, `sent ${sent}`);
    assert.equal(s1.datapath.received, s0.datapath.received, 'no unlabelled segment reached a queue');
    assert.ok(k1 - k0 >= sent, `the kernel rule dropped ${k1 - k0} of ${sent}`);
    assert.equal(await srvCount(), c1, 'none reached the server');
    assert.ok(
      s1.counters.unlabelled! - s0.counters.unlabelled! >= sent,
      `status unlabelled +${s1.counters.unlabelled! - s0.counters.unlabelled!}`,
    );
    assert.ok(s1.counters.dropped! - s0.counters.dropped! >= sent, 'status dropped');
    assert.ok(s1.counters.kernel_unlabelled! >= sent, 'status kernel_unlabelled');
    const metrics = await controlGet(v.socket, '/metrics');
    const m = /labelwall_verdicts_total\{role="verifier",profile="[a-z0-9]+",verdict="unlabelled"\} (\d+)/.exec(metrics);
    assert.ok(m && Number(m[1]) >= sent, `metrics: ${m?.[0]}`);

    // Option 253 with another experiment ID: the kernel cannot tell, so userspace judges it
    // (unlabelled) and drops it; it reaches the queue, not the server.
    const other = await flood({ pps: 2000, seconds: 0.5, labelled: 100, exid: 0x1234 });
    const s2 = await v.status();
    assert.ok(
      s2.datapath.received - s1.datapath.received >= other * 0.9,
      `queued ${s2.datapath.received - s1.datapath.received} of ${other}`,
    );
    assert.ok(s2.counters.unlabelled! - s1.counters.unlabelled! >= other * 0.9, 'judged unlabelled in userspace');
    assert.equal(await srvCount(), c1, 'none reached the server');
  });

  for (const action of ['mark', 'log'] as const) {
    test(`${action}: the kernel sets the unlabelled mark on segments without option 253 and counts them; labelled traffic is still judged`, async () => {
      const v = await startVerifier(action);
      // The administrator's rule after labelwall's jumps: counts what carries the unlabelled mark.
      const rule = ['FORWARD', '-m', 'mark', '--mark', '0x300/0xf00', '-p', 'tcp', '--dport', String(PORT)];
      await topo.check('mb', ['iptables', '-A', ...rule]);
      try {
        const s0 = await v.status();
        const m0 = await ruleCount('mb', 'FORWARD', '--mark 0x300/0xf00');
        const c0 = await srvCount();
        const sent = await flood({ pps: 10_000, seconds: 0.5, labelled: 0 });
        const s1 = await v.status();
        assert.equal(s1.datapath.received, s0.datapath.received, 'not queued');
        assert.ok((await ruleCount('mb', 'FORWARD', '--mark 0x300/0xf00')) - m0 >= sent, 'every one carried the unlabelled mark');
        assert.ok((await srvCount()) - c0 >= sent * 0.9, `${action} mode lets them pass`);
        assert.ok(s1.counters.unlabelled! - s0.counters.unlabelled! >= sent, 'counted as unlabelled');
        assert.ok(s1.counters.passed! - s0.counters.passed! >= sent, 'counted as passed');
        assert.equal(s1.counters.dropped, s0.counters.dropped, `${action} mode drops nothing itself`);

        // A genuine labelled flow still goes to the queue and is judged valid.
        const sink = await startSink(topo, 'srv', { port: 9310 });
        const flow = await startFlowClient(topo, 'pc', topo.addr('srv'), 9310);
        await flow.send(200_000, 'm');
        await flow.close();
        const d = await sink.done();
        assert.equal(d.sha256, sha256hex(blob(200_000, 'm')));
        const s2 = await v.status();
        assert.ok(s2.counters.valid! - s1.counters.valid! > 50, `valid +${s2.counters.valid! - s1.counters.valid!}`);
      } finally {
        await topo.check('mb', ['iptables', '-D', ...rule]);
      }
    });
  }

  test('a bad-MAC flood from one source is limited in the kernel; a genuine flow from pc completes byte for byte', async () => {
    const v = await startVerifier('drop');
    const s0 = await v.status();
    const size = 4 * 1024 * 1024;
    const sink = await startSink(topo, 'srv', { port: 9320 });
    const flow = await startFlowClient(topo, 'pc', topo.addr('srv'), 9320);
    const flooding = flood({ pps: 40_000, seconds: 6, labelled: 100 });
    await new Promise((r) => setTimeout(r, 1000));
    await flow.send(size, 'g');
    const sent = await flooding;
    await flow.close();
    const d = await sink.done(60_000);
    assert.equal(d.total, size);
    assert.equal(d.sha256, sha256hex(blob(size, 'g')), 'the genuine flow arrived byte for byte');
    const s1 = await v.status();
    const list = await listed();
    assert.ok(list.includes(`src=${topo.addr('uc')} `), `uc is listed:\n${list}`);
    assert.ok(!list.includes(`src=${topo.addr('pc')} `), `pc is not listed:\n${list}`);
    const limited = s1.counters.rate_limited! - (s0.counters.rate_limited ?? 0);
    const suspectQueued = s1.queues.find((q) => q.queue === 41)!.received - (s0.queues.find((q) => q.queue === 41)?.received ?? 0);
    // Without the limit every segment would be queued and rate_limited would stay 0.
    assert.ok(limited > sent / 2, `rate_limited +${limited} of ${sent} sent`);
    assert.ok(suspectQueued < sent / 2, `suspect queue received ${suspectQueued} of ${sent}`);
    assert.equal(
      await ruleCount('mb', 'LABELWALL-VERIFY-SUSPECT', 'hashlimit'),
      s1.counters.rate_limited,
      'status shows the kernel rule counter',
    );
    assert.ok(s1.counters.invalid! > s0.counters.invalid!, 'the queued part was judged invalid');
  });

  test("a bad-MAC flood that forges pc's address does not cut pc's flow: the flow is exempted from the limit", async () => {
    const v = await startVerifier('drop');
    const size = 4 * 1024 * 1024;
    const sink = await startSink(topo, 'srv', { port: 9330 });
    const flow = await startFlowClient(topo, 'pc', topo.addr('srv'), 9330);
    const flooding = flood({ pps: 40_000, seconds: 6, labelled: 100, src: topo.addr('pc'), dport: 9330 });
    await new Promise((r) => setTimeout(r, 1000));
    await flow.send(size, 's');
    const sent = await flooding;
    await flow.close();
    const d = await sink.done(60_000);
    assert.equal(d.sha256, sha256hex(blob(size, 's')), 'the genuine flow arrived byte for byte');
    assert.ok((await listed()).includes(`src=${topo.addr('pc')} `), 'the forged flood listed pc');
    const s = await v.status();
    assert.ok(s.counters.rate_limited! > sent / 2, `the forged segments were limited: ${s.counters.rate_limited} of ${sent}`);
    const ex = v
      .logs()
      .find((l) => typeof l.msg === 'string' && /flow exempted/.test(l.msg) && String(l.flow).includes(` ${flow.local.port} `));
    assert.ok(ex, `the genuine flow was exempted:\n${v.proc.stderr}`);
    const exempted = await ruleCount('mb', 'LABELWALL-VERIFY-SUSPECT', `--sport ${flow.local.port} `);
    assert.ok(exempted > 100, `the exemption rule carried ${exempted} of the flow's segments`);
  });
});
