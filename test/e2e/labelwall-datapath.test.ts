// The live datapath end to end: the real `labelwall agent` on the protected client, the real
// `labelwall verifier` on the middlebox, real peers (flask, OpenSSH/paramiko, iperf3, scapy),
// in namespaces built for this run.
//   pc (agent) ── mb (verifier, FORWARD, checks what comes from pc and uc) ── srv
//   uc (no agent) ─┘
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createTopology, run, standardTopology, waitFor, type Topology } from '../../src/lab/netns.js';
import { startHttpServer, httpRequests, type HttpServer } from '../../src/lab/http.js';
import { startSshServer, sshEchoOpenssh, sshEchoParamiko, type SshServer } from '../../src/lab/ssh.js';
import { startIperfServer, runIperf } from '../../src/lab/iperf.js';
import { injectIntoFlow, startFlowClient, startSink, type ForgeKind } from '../../src/lab/inject.js';
import { blob, firstDifference, sha256hex } from '../../src/lab/blob.js';
import { makeTempDir } from '../../src/lab/tmp.js';
import { LABELWALL_BIN, labelwallRules, middleboxVerifierArgs, startDaemon, writeKey, type Daemon } from '../../src/lab/labelwall.js';

interface PcapSummary {
  summary: Record<string, number>;
}

async function pcapVerify(file: string, keyFile: string): Promise<{ code: number; summary: Record<string, number> }> {
  const r = await run([process.execPath, LABELWALL_BIN, 'pcap', 'verify', file, '--key-file', keyFile, '--json']);
  const last = r.stdout.trim().split('\n').pop() ?? '{}';
  return { code: r.code ?? -1, summary: (JSON.parse(last) as PcapSummary).summary };
}

describe('agent on pc, verifier on mb', { timeout: 600_000 }, () => {
  let topo: Topology;
  let dir: string;
  let key: { path: string; hex: string };
  let wrong: { path: string; hex: string };
  let agent: Daemon;
  let verifier: Daemon;
  let http: HttpServer;
  let ssh: SshServer;

  const startVerifier = (action: 'drop' | 'mark' | 'log') =>
    startDaemon(
      topo,
      'mb',
      'verifier',
      middleboxVerifierArgs(topo, { profile: 'compat', keyFile: key.path, action }, ['--queue-base', '20']),
      dir,
    );

  before(async () => {
    dir = makeTempDir('lw-dp-');
    key = writeKey(dir, 'site');
    wrong = writeKey(dir, 'wrong');
    topo = await createTopology(standardTopology({ subnetBase: 210 }));
    http = await startHttpServer(topo, 'srv', { port: 8080 });
    ssh = await startSshServer(topo, 'srv', { port: 2222 });
    agent = await startDaemon(topo, 'pc', 'agent', ['--profile', 'compat', '--key-file', key.path, '--queue-base', '10'], dir);
    verifier = await startVerifier('drop');
  });
  after(async () => {
    await topo?.destroy();
  });

  const sizes = [5, 1400, 100_000, 3_000_000];
  for (const family of [4, 6] as const) {
    test(`HTTP (IPv${family}): GET/POST/PUT/DELETE byte for byte from pc; nothing from uc`, async () => {
      const before = await verifier.counters();
      const reqs = [
        ...sizes.map((n) => ({ method: 'GET' as const, path: `/blob/${n}` })),
        { method: 'POST' as const, path: '/echo', body: blob(2_500_000, 'post') },
        { method: 'PUT' as const, path: '/echo', body: blob(17, 'put') },
        { method: 'DELETE' as const, path: '/item/42' },
      ];
      const res = await httpRequests(topo, 'pc', http.url(topo.addr('srv', family)), reqs);
      sizes.forEach((n, i) => {
        assert.equal(res[i]!.status, 200, res[i]!.error);
        assert.equal(firstDifference(res[i]!.body, blob(n)), -1, `GET /blob/${n}`);
      });
      assert.equal(firstDifference(res[4]!.body, blob(2_500_000, 'post')), -1, 'POST echo');
      assert.equal(firstDifference(res[5]!.body, blob(17, 'put')), -1, 'PUT echo');
      assert.equal(res[6]!.status, 200);
      assert.match(res[6]!.body.toString(), /42/);
      const mid = await verifier.counters();
      assert.ok(mid.valid! - before.valid! > 1000, `valid grew by ${mid.valid! - before.valid!}`);
      assert.equal(mid.dropped, before.dropped, 'nothing from the protected client was dropped');

      const denied = await httpRequests(topo, 'uc', http.url(topo.addr('srv', family)), [
        { method: 'GET', path: '/blob/5', timeoutSec: 3 },
      ]);
      assert.equal(denied[0]!.status, null, 'unprotected client gets no answer');
      const end = await verifier.counters();
      assert.ok(end.unlabelled! > mid.unlabelled!, 'its SYNs were judged unlabelled');
      assert.ok(end.dropped! > mid.dropped!);
    });
  }

  test('SSH echo through the verifier: paramiko over IPv4, OpenSSH over IPv6', async () => {
    const p = await sshEchoParamiko(topo, 'pc', ssh, topo.addr('srv', 4), { kb: 512 });
    assert.ok(p.ok, JSON.stringify(p));
    assert.equal(p.received, 512 * 1024);
    const o = await sshEchoOpenssh(topo, 'pc', ssh, topo.addr('srv', 6), { kb: 512 });
    assert.ok(o.ok, JSON.stringify(o));
    assert.equal(o.sha256_received, o.sha256_sent);
    const u = await sshEchoParamiko(topo, 'uc', ssh, topo.addr('srv', 4), { kb: 1, timeoutSec: 3 });
    assert.equal(u.ok, false, 'unprotected client cannot reach sshd');
  });

  test('iperf3 for 2 s, and a 100 MB stream whose SHA-256 matches at the server', async () => {
    const srv = await startIperfServer(topo, 'srv', 5201);
    const r = await runIperf(topo, 'pc', topo.addr('srv'), { seconds: 2 });
    assert.ok(r.bytesReceived > 5 * 1024 * 1024, `iperf3 moved ${r.bytesReceived} bytes`);
    await srv.stop();

    const size = 100 * 1024 * 1024;
    const sink = await startSink(topo, 'srv', { port: 9001 });
    const flow = await startFlowClient(topo, 'pc', topo.addr('srv'), 9001);
    await flow.send(size, 'big');
    await flow.close();
    const d = await sink.done(120_000);
    assert.equal(d.total, size);
    assert.equal(d.sha256, sha256hex(blob(size, 'big')));
  });

  test('a capture taken on mb verifies as all valid with `labelwall pcap verify`', async () => {
    const pcap = join(dir, 'mb.pcap');
    const ifname = topo.iface('mb', 'pc').name;
    const cap = topo.spawn('mb', ['tcpdump', '-i', ifname, '-nn', '-U', '-s', '0', '-w', pcap, 'tcp and src host', topo.addr('pc')]);
    await cap.waitForOutput(/listening on/, 10_000, 'stderr');
    const res = await httpRequests(topo, 'pc', http.url(topo.addr('srv')), [
      { method: 'GET', path: '/blob/200000' },
      { method: 'POST', path: '/echo', body: blob(300_000, 'cap') },
    ]);
    assert.equal(res[1]!.status, 200);
    await new Promise((r) => setTimeout(r, 300));
    await cap.stop(3000, 'SIGINT');
    const ok = await pcapVerify(pcap, key.path);
    assert.equal(ok.code, 0, JSON.stringify(ok.summary));
    assert.ok(ok.summary.valid! > 100, JSON.stringify(ok.summary));
    for (const k of ['invalid', 'unlabelled', 'malformed']) assert.equal(ok.summary[k], 0, k);
    // The same capture under another key is all invalid: the check is not vacuous.
    const bad = await pcapVerify(pcap, wrong.path);
    assert.equal(bad.code, 1);
    assert.equal(bad.summary.valid, 0);
    assert.equal(bad.summary.invalid, ok.summary.valid);
  });

  const forged: Array<{ kind: ForgeKind; from: 'pc' | 'uc'; family: 4 | 6 }> = [
    { kind: 'nolabel', from: 'pc', family: 4 },
    { kind: 'wrongkey', from: 'uc', family: 4 },
    { kind: 'tampered', from: 'uc', family: 6 },
    { kind: 'replay', from: 'pc', family: 4 },
  ];
  for (const f of forged) {
    test(`forged segment (${f.kind}, IPv${f.family}, sent from ${f.from}) never reaches the server's socket`, async () => {
      const port = 9200 + forged.indexOf(f);
      const sink = await startSink(topo, 'srv', { port });
      const flow = await startFlowClient(topo, 'pc', topo.addr('srv', f.family), port);
      await flow.send(1000, 'a');
      const before = await verifier.counters();
      // AF_PACKET from pc bypasses pc's own netfilter, so the agent never sees (or labels) it.
      const sent = await injectIntoFlow(topo, f.from, flow, f.kind, { keyHex: key.hex, wrongKeyHex: wrong.hex, via: 'packet' });
      const judged = f.kind === 'nolabel' ? 'unlabelled' : 'invalid';
      await waitFor(async () => (await verifier.counters())[judged]! > before[judged]!, 5000, { what: `verifier counts ${judged}` });
      await flow.send(2000, 'b');
      await flow.close();
      await sink.done();
      const got = sink.received();
      const expected = Buffer.concat([blob(1000, 'a'), blob(2000, 'b')]);
      assert.equal(got.length, expected.length, 'server read only the real bytes');
      assert.equal(firstDifference(got, expected), -1);
      assert.equal(got.indexOf(sent.payload.subarray(0, 16)), -1, 'forged bytes absent at the server');
    });
  }

  test('mark mode: an ordinary iptables rule acts on the verdict marks', async () => {
    await verifier.stop();
    verifier = await startVerifier('mark');
    // The administrator's own rule, after labelwall's jump: drop what was judged unlabelled.
    await topo.check('mb', ['iptables', '-A', 'FORWARD', '-m', 'mark', '--mark', '0x300/0xf00', '-j', 'DROP']);
    try {
      const ok = await httpRequests(topo, 'pc', http.url(topo.addr('srv')), [{ method: 'GET', path: '/blob/5000' }]);
      assert.equal(ok[0]!.status, 200);
      assert.equal(firstDifference(ok[0]!.body, blob(5000)), -1);
      const no = await httpRequests(topo, 'uc', http.url(topo.addr('srv')), [{ method: 'GET', path: '/blob/5', timeoutSec: 3 }]);
      assert.equal(no[0]!.status, null);
      const rule = await topo.check('mb', ['iptables', '-v', '-x', '-n', '-L', 'FORWARD']);
      const line = rule.stdout.split('\n').find((l) => /mark match 0x300\/0xf00/.test(l) && /DROP/.test(l));
      assert.ok(line, rule.stdout);
      assert.ok(Number(line.trim().split(/\s+/)[0]) > 0, `the mark rule dropped packets: ${line}`);
      const c = await verifier.counters();
      assert.ok(c.valid! > 0 && c.unlabelled! > 0, JSON.stringify(c));
      assert.equal(c.dropped, 0, 'mark mode drops nothing itself');
    } finally {
      await topo.check('mb', ['iptables', '-D', 'FORWARD', '-m', 'mark', '--mark', '0x300/0xf00', '-j', 'DROP']);
      await verifier.stop();
      verifier = await startVerifier('drop');
    }
  });

  test('SIGKILL of the agent under load lets no unlabelled segment out; restart restores service; clean stop leaves no rule', async () => {
    const pcap = join(dir, 'kill.pcap');
    const cap = topo.spawn('mb', [
      'tcpdump',
      '-i',
      topo.iface('mb', 'pc').name,
      '-nn',
      '-U',
      '-s',
      '0',
      '-w',
      pcap,
      'tcp and src host',
      topo.addr('pc'),
    ]);
    await cap.waitForOutput(/listening on/, 10_000, 'stderr');
    const srv = await startIperfServer(topo, 'srv', 5202);
    const load = runIperf(topo, 'pc', topo.addr('srv'), { seconds: 4, port: 5202 }).catch((e: Error) => e);
    await new Promise((r) => setTimeout(r, 1500));
    agent.proc.child.kill('SIGKILL');
    await agent.proc.exited;
    // The rules stay (fail-closed) and nobody answers the queue: nothing leaves pc.
    assert.ok((await labelwallRules(topo, 'pc')).length > 0, 'rules remain after SIGKILL');
    const during = await httpRequests(topo, 'pc', http.url(topo.addr('srv')), [{ method: 'GET', path: '/blob/5', timeoutSec: 2 }]);
    assert.equal(during[0]!.status, null, 'no traffic while the agent is down');
    await load;
    await srv.stop();
    await cap.stop(3000, 'SIGINT');
    const v = await pcapVerify(pcap, key.path);
    assert.ok(v.summary.valid! > 1000, JSON.stringify(v.summary));
    assert.equal(v.summary.unlabelled, 0, 'no unlabelled segment left pc');
    assert.equal(v.summary.invalid, 0);

    agent = await startDaemon(topo, 'pc', 'agent', ['--profile', 'compat', '--key-file', key.path, '--queue-base', '10'], dir);
    const warn = agent.logs().find((l) => typeof l.msg === 'string' && /earlier run/.test(l.msg as string));
    assert.ok(warn, 'the restart reports the stale rules it removed');
    const again = await httpRequests(topo, 'pc', http.url(topo.addr('srv')), [{ method: 'GET', path: '/blob/70000' }]);
    assert.equal(again[0]!.status, 200);
    assert.equal(firstDifference(again[0]!.body, blob(70_000)), -1);

    assert.equal(await agent.stop(), 0);
    assert.deepEqual(await labelwallRules(topo, 'pc'), []);
    assert.equal(await verifier.stop(), 0);
    assert.deepEqual(await labelwallRules(topo, 'mb'), []);
  });
});
