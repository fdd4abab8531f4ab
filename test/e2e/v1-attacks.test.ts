// The attacks the v1 profile exists to refuse, mounted with real packets against the real
// daemons: `labelwall agent` on pc, `labelwall verifier` on mb (FORWARD, checking what comes
// from pc and uc). Every attack runs twice, against a v1 pair and against a compat pair: the
// compat run is the control that shows the attack itself works (compat's MAC covers only seq
// and payload), so a v1 refusal is the profile's doing and not a broken replay.
//   pc (agent) ── mb (verifier) ── srv
//   uc (attacker) ─┘
// What passed the verifier is counted by iptables rules appended to mb's FORWARD chain, after
// labelwall's jump (which is the first rule): a segment the verifier drops never reaches them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { controlGet } from '../../src/control/client.js';
import { createTopology, run, standardTopology, waitFor, type Topology } from '../../src/lab/netns.js';
import { startFlowClient, startSink } from '../../src/lab/inject.js';
import { httpRequests, startHttpServer } from '../../src/lab/http.js';
import { sshEchoParamiko, startSshServer } from '../../src/lab/ssh.js';
import { runIperf, startIperfServer } from '../../src/lab/iperf.js';
import { blob, firstDifference } from '../../src/lab/blob.js';
import { makeTempDir } from '../../src/lab/tmp.js';
import { LABELWALL_BIN, middleboxVerifierArgs, startDaemon, writeKey, type Daemon } from '../../src/lab/labelwall.js';
import { capture, replay } from '../../src/lab/replay.js';

/** A counting rule (no target) appended to mb's FORWARD chain, after labelwall's jump. */
async function countingRule(topo: Topology, family: 4 | 6, name: string, match: string[]): Promise<() => Promise<number>> {
  const tool = family === 4 ? 'iptables' : 'ip6tables';
  await topo.check('mb', [tool, '-w', '-A', 'FORWARD', ...match, '-m', 'comment', '--comment', `lwtest-${name}`]);
  return async () => {
    const out = (await topo.check('mb', [tool, '-w', '-S', 'FORWARD', '-v'])).stdout;
    const line = out.split('\n').find((l) => l.includes(`lwtest-${name}`));
    const m = line && /-c (\d+) \d+/.exec(line);
    if (!m) throw new Error(`counting rule ${name} not found:\n${out}`);
    return Number(m[1]);
  };
}

const delta = (a: Record<string, number>, b: Record<string, number>, k: string): number => (b[k] ?? 0) - (a[k] ?? 0);

/** The epoch byte of a v1 label (option byte 5), from the option's hex. */
const epoch8 = (labelHex: string): number => Number.parseInt(labelHex.slice(10, 12), 16);

for (const [i, profile] of (['v1', 'compat'] as const).entries()) {
  const refused = profile === 'v1';
  describe(`replays and forgeries against a ${profile} verifier${refused ? '' : ' (control: compat lets them through)'}`, {
    timeout: 600_000,
  }, () => {
    let topo: Topology;
    let dir: string;
    let key: { path: string; hex: string };
    let agent: Daemon;
    let verifier: Daemon;
    const pc = (f: 4 | 6 = 4) => topo.addr('pc', f);
    const uc = (f: 4 | 6 = 4) => topo.addr('uc', f);
    const srv = (f: 4 | 6 = 4) => topo.addr('srv', f);

    before(async () => {
      dir = makeTempDir('lw-v1atk-');
      key = writeKey(dir, 'site');
      topo = await createTopology(standardTopology({ subnetBase: 230 + i }));
      agent = await startDaemon(topo, 'pc', 'agent', ['--profile', profile, '--key-file', key.path, '--queue-base', '10'], dir);
      verifier = await startDaemon(
        topo,
        'mb',
        'verifier',
        middleboxVerifierArgs(topo, { profile, keyFile: key.path, action: 'drop' }, ['--queue-base', '20']),
        dir,
      );
    });
    after(async () => {
      await topo?.destroy();
    });

    /** One labelled connection pc -> srv:port that sends `bytes` and closes, captured on mb. */
    async function labelledConnection(port: number, family: 4 | 6, bytes: number[]): Promise<string> {
      const cap = await capture(
        topo,
        'mb',
        topo.iface('mb', 'pc').name,
        join(dir, `c${port}.pcap`),
        `tcp and src host ${pc(family)} and dst port ${port}`,
      );
      const sink = await startSink(topo, 'srv', { port });
      const flow = await startFlowClient(topo, 'pc', srv(family), port);
      for (const [j, n] of bytes.entries()) await flow.send(n, `s${j}`);
      await flow.close();
      const d = await sink.done();
      assert.equal(
        d.total,
        bytes.reduce((a, b) => a + b, 0),
        'the genuine connection delivered everything',
      );
      return cap.stop();
    }

    if (refused) {
      // First, before any attack lists pc as a suspect source: genuine traffic is all valid.
      test('(f) HTTP (flask, IPv4 and IPv6), SSH (paramiko) and iperf3 through the v1 verifier: byte for byte, zero invalid', async () => {
        const http = await startHttpServer(topo, 'srv', { port: 8080 });
        const ssh = await startSshServer(topo, 'srv', { port: 2222 });
        const c0 = await verifier.counters();
        for (const family of [4, 6] as const) {
          const sizes = [5, 1400, 100_000, 2_000_000];
          const res = await httpRequests(topo, 'pc', http.url(srv(family)), [
            ...sizes.map((n) => ({ method: 'GET' as const, path: `/blob/${n}` })),
            { method: 'POST' as const, path: '/echo', body: blob(1_500_000, `post${family}`) },
          ]);
          sizes.forEach((n, j) => {
            assert.equal(res[j]!.status, 200, res[j]!.error);
            assert.equal(firstDifference(res[j]!.body, blob(n)), -1, `GET /blob/${n} over IPv${family}`);
          });
          assert.equal(firstDifference(res[4]!.body, blob(1_500_000, `post${family}`)), -1, `POST echo over IPv${family}`);
        }
        const p = await sshEchoParamiko(topo, 'pc', ssh, srv(4), { kb: 512 });
        assert.ok(p.ok, JSON.stringify(p));
        assert.equal(p.received, 512 * 1024);
        const ip = await startIperfServer(topo, 'srv', 5201);
        const r = await runIperf(topo, 'pc', srv(4), { seconds: 2 });
        await ip.stop();
        assert.ok(r.bytesReceived > 5 * 1024 * 1024, `iperf3 moved ${r.bytesReceived} bytes`);
        const c1 = await verifier.counters();
        assert.ok(delta(c0, c1, 'valid') > 2000, `valid grew by ${delta(c0, c1, 'valid')}`);
        for (const k of ['invalid', 'malformed', 'unlabelled', 'dropped']) assert.equal(delta(c0, c1, k), 0, `${k}: ${JSON.stringify(c1)}`);
        await http.stop();
        await ssh.stop();
      });
    }

    test(`(a) a SYN captured from a labelled connection, replayed from another host and later from the same one: ${refused ? 'refused' : 'accepted'}`, async () => {
      const port = 9300;
      const pcap = await labelledConnection(port, 4, [500]);
      const fromUc = await countingRule(topo, 4, 'syn-uc', ['-s', uc(), '-p', 'tcp', '--dport', String(port), '--syn']);
      const fromPc = await countingRule(topo, 4, 'syn-pc', ['-s', pc(), '-p', 'tcp', '--dport', String(port), '--syn']);

      // Another host: the attacker's own address on the captured SYN, label and all.
      let c0 = await verifier.counters();
      const r1 = await replay(topo, 'uc', [
        '--pcap',
        pcap,
        '--from-src',
        pc(),
        '--dport',
        String(port),
        '--select',
        'syn',
        '--new-src',
        uc(),
      ]);
      assert.equal(r1.sent, 1);
      assert.ok(r1.segments[0]!.label_hex.startsWith('fd'), 'the replayed SYN carries the captured label');
      const judged = refused ? 'invalid' : 'valid';
      await waitFor(async () => delta(c0, await verifier.counters(), judged) >= 1, 5000, { what: `the replay counted ${judged}` });
      let c1 = await verifier.counters();
      if (refused) {
        assert.equal(delta(c0, c1, 'invalid:mac-mismatch'), 1, 'the addresses are in the MAC');
        assert.equal(await fromUc(), 0, 'nothing passed the verifier');
      } else {
        assert.equal(delta(c0, c1, 'valid'), 1);
        assert.equal(await fromUc(), 1, 'the replayed SYN went on to the server');
      }

      // The same host, the same ports, later: once the label's epoch has left the verifier's
      // window (default: 2 epochs of 16 s before now, 1 after), the label is stale. (Within the
      // window an identical copy of the SYN carries a label that is still valid: v1 keeps no
      // per-flow state; the test measures that too, and the server's TCP is what meets it.)
      const syn = r1.segments[0]!;
      const passedBefore = await fromPc();
      if (refused) {
        c0 = await verifier.counters();
        await replay(topo, 'pc', ['--pcap', pcap, '--from-src', pc(), '--dport', String(port), '--select', 'syn']);
        await waitFor(async () => delta(c0, await verifier.counters(), 'valid') >= 1, 5000, {
          what: 'the identical copy within the window is valid',
        });
        assert.equal(await fromPc(), passedBefore + 1);
        const e8 = epoch8(syn.label_hex);
        const nowE = () => Math.floor(Date.now() / 16_000);
        // The label's full epoch: the one near now whose low byte it carries.
        const labelE = [0, -1, -2, 1].map((d) => nowE() + d).find((e) => (e & 0xff) === e8)!;
        assert.ok(labelE !== undefined, `epoch byte ${e8} is near now`);
        const waitMs = (labelE + 3) * 16_000 - Date.now() + 500;
        await new Promise((r) => setTimeout(r, Math.max(0, waitMs)));
      }
      c0 = await verifier.counters();
      const beforeLater = await fromPc();
      await replay(topo, 'pc', ['--pcap', pcap, '--from-src', pc(), '--dport', String(port), '--select', 'syn']);
      await waitFor(async () => delta(c0, await verifier.counters(), judged) >= 1, 5000, { what: `the later replay counted ${judged}` });
      c1 = await verifier.counters();
      if (refused) {
        assert.equal(delta(c0, c1, 'invalid:stale-epoch'), 1, JSON.stringify(c1));
        assert.equal(await fromPc(), beforeLater, 'the stale SYN did not pass');
      } else {
        assert.equal(await fromPc(), beforeLater + 1, 'compat has no clock: the SYN passes at any time');
      }
    });

    test(`(b) a whole client stream captured on the path and replayed from another host: ${refused ? 'refused' : 'accepted'}`, async () => {
      const port = 9301;
      const pcap = await labelledConnection(port, 4, [3000, 20_000, 700]);
      const passed = await countingRule(topo, 4, 'stream-uc', ['-s', uc(), '-p', 'tcp', '--dport', String(port)]);
      const c0 = await verifier.counters();
      const r = await replay(topo, 'uc', [
        '--pcap',
        pcap,
        '--from-src',
        pc(),
        '--dport',
        String(port),
        '--select',
        'stream',
        '--new-src',
        uc(),
      ]);
      const labelled = r.segments.filter((s) => s.label_hex !== '').length;
      assert.ok(r.sent >= 10 && labelled === r.sent, `replayed ${r.sent} segments, ${labelled} labelled`);
      const judged = refused ? 'invalid' : 'valid';
      await waitFor(async () => delta(c0, await verifier.counters(), judged) >= r.sent, 10_000, {
        what: `${r.sent} segments counted ${judged}`,
      });
      const c1 = await verifier.counters();
      if (refused) {
        assert.equal(delta(c0, c1, 'invalid'), r.sent);
        assert.equal(delta(c0, c1, 'invalid:mac-mismatch'), r.sent);
        assert.equal(delta(c0, c1, 'valid'), 0);
        assert.equal(await passed(), 0, 'no replayed segment passed the verifier');
      } else {
        assert.equal(delta(c0, c1, 'valid'), r.sent);
        assert.equal(await passed(), r.sent, 'every replayed segment passed');
      }
    });

    test(`(c) an RST forged from an observed pure ACK (same seq and label, flags RST; IPv6): ${refused ? 'refused, the connection lives' : 'accepted, the connection dies'}`, async () => {
      const port = 9302;
      const cap = await capture(
        topo,
        'mb',
        topo.iface('mb', 'pc').name,
        join(dir, 'rst.pcap'),
        `tcp and src host ${pc(6)} and dst port ${port}`,
      );
      const sink = await startSink(topo, 'srv', { port });
      const flow = await startFlowClient(topo, 'pc', srv(6), port);
      // The handshake's last ACK is the observed pure ACK: its seq is the server's next expected
      // byte as long as the client sends nothing, so an RST with that seq is in the window exactly.
      const pcap = await cap.stop();
      const rsts = await countingRule(topo, 6, 'rst', ['-s', pc(6), '-p', 'tcp', '--dport', String(port), '--tcp-flags', 'RST', 'RST']);
      const c0 = await verifier.counters();
      // From uc, spoofing pc's address (rp_filter is off): an attacker beside the path.
      const r = await replay(topo, 'uc', [
        '--pcap',
        pcap,
        '--from-src',
        pc(6),
        '--dport',
        String(port),
        '--select',
        'pure-ack',
        '--as-rst',
      ]);
      assert.equal(r.segments[0]!.flags, 0x04);
      assert.equal(r.segments[0]!.len, 0);
      assert.ok(r.segments[0]!.label_hex !== '', 'the RST carries the pure ACK label');
      const judged = refused ? 'invalid' : 'valid';
      await waitFor(async () => delta(c0, await verifier.counters(), judged) >= 1, 5000, { what: `the RST counted ${judged}` });
      if (refused) {
        assert.equal(delta(c0, await verifier.counters(), 'invalid:mac-mismatch'), 1, 'the flags are in the MAC');
        assert.equal(await rsts(), 0, 'the RST did not pass');
        await flow.send(4000, 'after');
        await flow.close();
        const d = await sink.done();
        assert.equal(d.total, 4000);
        assert.equal(firstDifference(sink.received(), blob(4000, 'after')), -1, 'the connection carried on, byte for byte');
      } else {
        assert.equal(await rsts(), 1, 'the RST passed');
        const d = await sink.done();
        assert.equal(d.total, 0);
        assert.match(d.end, /reset/, `the server socket was reset: ${JSON.stringify(d)}`);
        flow.proc.signal('SIGKILL');
      }
    });

    if (refused) {
      test('status and /metrics name the reasons (bounded reason label)', async () => {
        const out = await run([process.execPath, LABELWALL_BIN, 'status', '--control-socket', verifier.socket]);
        assert.equal(out.code, 0, out.stderr);
        assert.match(out.stdout, /invalid:mac-mismatch\s+\d+/);
        assert.match(out.stdout, /invalid:stale-epoch\s+1\b/);
        assert.match(out.stdout, /profile:\s+v1/);
        assert.doesNotMatch(out.stdout, /invalid:unknown-key/, 'zero reason counters are not listed');
        const m = await controlGet(verifier.socket, '/metrics');
        assert.match(m, /labelwall_verdict_reasons_total\{role="verifier",profile="v1",verdict="invalid",reason="mac-mismatch"\} [1-9]/);
        assert.match(m, /labelwall_verdict_reasons_total\{role="verifier",profile="v1",verdict="invalid",reason="stale-epoch"\} 1/);
        const warn = verifier.logs().find((l) => l.reason === 'mac-mismatch');
        assert.ok(warn, 'a log line names the reason');
        assert.equal(warn.profile, 'v1');
        assert.equal(warn.keyId, 0);
        assert.equal(warn.tag, 0);
      });
    }

    test('clean stop of both daemons', async () => {
      assert.equal(await agent.stop(), 0);
      assert.equal(await verifier.stop(), 0);
    });
  });
}

/** Writes a YAML config file (the test's own; keys by absolute path). */
function writeConfig(dir: string, name: string, text: string): string {
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, text);
  return path;
}

/** Connects and sends `n` bytes, or reports that the connection could not be opened. */
async function tryFlow(topo: Topology, port: number, dst: string, n: number): Promise<{ ok: boolean; received?: Buffer }> {
  const sink = await startSink(topo, 'srv', { port, idleTimeoutSec: 20 });
  let flow: Awaited<ReturnType<typeof startFlowClient>>;
  try {
    flow = await startFlowClient(topo, 'pc', dst, port);
  } catch {
    sink.proc.signal('SIGKILL');
    return { ok: false };
  }
  await flow.send(n, `p${port}`);
  await flow.close();
  await sink.done();
  return { ok: true, received: sink.received() };
}

describe('(d) app tags at the verifier: drop mode refuses other tags (tag-denied), mark mode puts the tag in the mark', {
  timeout: 300_000,
}, () => {
  let topo: Topology;
  let dir: string;
  let agent: Daemon;
  let verifier: Daemon;
  before(async () => {
    dir = makeTempDir('lw-v1tag-');
    const key = writeKey(dir, 'site');
    topo = await createTopology(standardTopology({ subnetBase: 240 }));
    const inIf = topo.iface('mb', 'pc').name;
    // The agent tags a flow by the egress rule that allowed it: here by destination port.
    const cfg = writeConfig(
      dir,
      'tags',
      `keys:
  site: ${key.path}
tags:
  web: 300
  other: 301
agent:
  profile: v1
  key: site
  egress:
    default: allow
    rules:
      - { name: web, dst: { ports: [9400, 9402], proto: tcp }, action: allow, tag: web }
      - { name: other, dst: { ports: [9401, 9403], proto: tcp }, action: allow, tag: other }
verifier:
  profile: v1
  hook: forward
  rules:
    - { name: web-only, in_interfaces: [${inIf}], ports: [9400, 9401], tags: [web], action: drop }
    - { name: by-mark, in_interfaces: [${inIf}], ports: [9402, 9403], action: mark }
`,
    );
    agent = await startDaemon(topo, 'pc', 'agent', ['--config', cfg, '--queue-base', '10'], dir);
    verifier = await startDaemon(topo, 'mb', 'verifier', ['--config', cfg, '--queue-base', '20'], dir);
  });
  after(async () => {
    await topo?.destroy();
  });

  test('drop mode: the flow tagged web passes byte for byte, the flow tagged other is dropped and counted tag-denied', async () => {
    const web = await countingRule(topo, 4, 'web', ['-s', topo.addr('pc'), '-p', 'tcp', '--dport', '9400']);
    const other = await countingRule(topo, 4, 'other', ['-s', topo.addr('pc'), '-p', 'tcp', '--dport', '9401']);
    const c0 = await verifier.counters();
    const a = await tryFlow(topo, 9400, topo.addr('srv'), 30_000);
    assert.ok(a.ok, 'the web flow opened');
    assert.equal(firstDifference(a.received!, blob(30_000, 'p9400')), -1);
    const c1 = await verifier.counters();
    assert.equal(delta(c0, c1, 'invalid:tag-denied'), 0, 'the allowed tag is not denied');
    assert.ok((await web()) > 10);
    const b = await tryFlow(topo, 9401, topo.addr('srv'), 100);
    assert.equal(b.ok, false, 'the other flow never opened');
    const c2 = await verifier.counters();
    assert.ok(delta(c1, c2, 'invalid:tag-denied') >= 1, JSON.stringify(c2));
    assert.equal(delta(c1, c2, 'invalid'), delta(c1, c2, 'invalid:tag-denied'), 'denied for the tag alone: the labels were valid');
    assert.equal(await other(), 0, 'nothing of the other flow passed');
    const warn = verifier.logs().find((l) => l.reason === 'tag-denied');
    assert.ok(warn, 'logged');
    assert.equal(warn.tag, 301);
    assert.equal(warn.tagName, 'other');
  });

  test("status shows a rule's tags by name; a SIGHUP's reload-applied record names each rule's keys as status does", async () => {
    const st = await verifier.status();
    const rules = st.config.rules as Array<{ name: string; tags?: unknown[]; keys: unknown[] }>;
    assert.deepEqual(rules.find((r) => r.name === 'web-only')?.tags, ['web']);
    verifier.proc.signal('SIGHUP');
    const applied = (await waitFor(() => verifier.logs().find((l) => l.event === 'reload-applied'), 5000, { what: 'reload-applied' })) as {
      rules: Array<{ name: string; keys: unknown[] }>;
    };
    assert.deepEqual(
      applied.rules.map((r) => [r.name, r.keys]),
      rules.map((r) => [r.name, r.keys]),
    );
  });

  test('mark mode: iptables -m mark --mark 0x012c0000/0xffff0000 matches app web; a rule on it lets only web through', async () => {
    const pc = topo.addr('pc');
    const webMark = await countingRule(topo, 4, 'mark-web', [
      '-s',
      pc,
      '-p',
      'tcp',
      '--dport',
      '9402',
      '-m',
      'mark',
      '--mark',
      '0x012c0000/0xffff0000',
    ]);
    const webAll = await countingRule(topo, 4, 'all-web', ['-s', pc, '-p', 'tcp', '--dport', '9402']);
    const otherMark = await countingRule(topo, 4, 'mark-other', [
      '-s',
      pc,
      '-p',
      'tcp',
      '--dport',
      '9403',
      '-m',
      'mark',
      '--mark',
      '0x012d0000/0xffff0000',
    ]);
    const c0 = await verifier.counters();
    // The administrator's policy, after labelwall's: port 9403 is for app web only.
    await topo.check('mb', [
      'iptables',
      '-w',
      '-A',
      'FORWARD',
      '-p',
      'tcp',
      '--dport',
      '9403',
      '-m',
      'mark',
      '!',
      '--mark',
      '0x012c0000/0xffff0000',
      '-j',
      'DROP',
    ]);
    const a = await tryFlow(topo, 9402, topo.addr('srv'), 20_000);
    assert.ok(a.ok);
    assert.equal(firstDifference(a.received!, blob(20_000, 'p9402')), -1);
    const all = await webAll();
    assert.ok(all > 10);
    assert.equal(await webMark(), all, 'every segment of the web flow carries tag 300 in the mark');
    const b = await tryFlow(topo, 9403, topo.addr('srv'), 100);
    assert.equal(b.ok, false, 'the rule on the tag bits dropped app other');
    assert.ok((await otherMark()) >= 1, 'app other was marked 301');
    const c1 = await verifier.counters();
    assert.equal(delta(c0, c1, 'dropped'), 0, 'mark mode drops nothing itself: the administrator rule did');
    assert.equal(delta(c0, c1, 'invalid'), 0, 'both apps labels are valid');
  });

  test('clean stop', async () => {
    assert.equal(await agent.stop(), 0);
    assert.equal(await verifier.stop(), 0);
  });
});

describe('(e) NAT modes through a real SNAT (MASQUERADE with port mapping in a router namespace)', { timeout: 300_000 }, () => {
  //   pc (agent) ── nat (MASQUERADE to 10.B.2.2, ports 20000-20999) ── mb (verifier) ── srv
  let topo: Topology;
  let dir: string;
  let key: { path: string; hex: string };
  before(async () => {
    dir = makeTempDir('lw-v1nat-');
    key = writeKey(dir, 'site');
    topo = await createTopology({
      subnetBase: 241,
      hosts: [
        { name: 'pc', via: 'nat' },
        { name: 'nat', router: true, via: 'mb' },
        { name: 'mb', router: true, via: 'nat' },
        { name: 'srv', via: 'mb' },
      ],
      links: [
        { a: 'nat', b: 'pc' },
        { a: 'mb', b: 'nat' },
        { a: 'mb', b: 'srv' },
      ],
    });
    const out = topo.iface('nat', 'mb').name;
    await topo.check('nat', [
      'iptables',
      '-w',
      '-t',
      'nat',
      '-A',
      'POSTROUTING',
      '-o',
      out,
      '-p',
      'tcp',
      '-j',
      'MASQUERADE',
      '--to-ports',
      '20000-20999',
    ]);
  });
  after(async () => {
    await topo?.destroy();
  });

  const agentConfig = (nat: boolean): string =>
    writeConfig(
      dir,
      `agent-${nat}`,
      `keys:
  site: ${key.path}
agent:
  profile: v1
  key: site
${nat ? `  nat:\n    - { destinations: [${topo.addr('srv')}/32], translated: [source, ports] }\n` : ''}`,
    );
  const verifierConfig = (allow: boolean): string =>
    writeConfig(
      dir,
      `verifier-${allow}`,
      `keys:
  site: ${key.path}
verifier:
  profile: v1
  hook: forward
  rules:
    - { name: from-nat, in_interfaces: [${topo.iface('mb', 'nat').name}], action: drop${allow ? ', allow_nat: [source, ports]' : ''} }
`,
    );

  async function attempt(agentNat: boolean, allowNat: boolean, port: number) {
    const agent = await startDaemon(topo, 'pc', 'agent', ['--config', agentConfig(agentNat), '--no-egress', '--queue-base', '10'], dir);
    const verifier = await startDaemon(topo, 'mb', 'verifier', ['--config', verifierConfig(allowNat), '--queue-base', '20'], dir);
    try {
      const c0 = await verifier.counters();
      const r = await tryFlow(topo, port, topo.addr('srv'), 50_000);
      const c1 = await verifier.counters();
      const reasons = Object.fromEntries(
        Object.keys(c1)
          .filter((k) => k.startsWith('invalid:') && delta(c0, c1, k) > 0)
          .map((k) => [k, delta(c0, c1, k)]),
      );
      return { r, valid: delta(c0, c1, 'valid'), invalid: delta(c0, c1, 'invalid'), reasons };
    } finally {
      assert.equal(await agent.stop(), 0);
      assert.equal(await verifier.stop(), 0);
    }
  }

  test('the NAT is real: srv sees the router address and a mapped port', async () => {
    const sink = await startSink(topo, 'srv', { port: 9500 });
    const flow = await startFlowClient(topo, 'pc', topo.addr('srv'), 9500);
    await flow.send(10, 'x');
    const ss = await topo.check('srv', ['ss', '-Htn', 'state', 'established', 'sport', '=', ':9500']);
    assert.match(ss.stdout, new RegExp(`${topo.addr('nat', 4, 'mb').replace(/\./g, '\\.')}\\]?:20\\d{3}\\b`), ss.stdout);
    await flow.close();
    await sink.done();
  });

  test('strict agent (no flag), strict verifier: refused as mac-mismatch (a translated strict label is a forgery to the verifier)', async () => {
    const a = await attempt(false, false, 9501);
    assert.equal(a.r.ok, false);
    assert.equal(a.valid, 0);
    assert.ok(a.invalid >= 1);
    assert.deepEqual(Object.keys(a.reasons), ['invalid:mac-mismatch'], JSON.stringify(a.reasons));
  });

  test('agent.nat translated: [source, ports], verifier without allow_nat: refused as nat-mode-denied', async () => {
    const a = await attempt(true, false, 9502);
    assert.equal(a.r.ok, false);
    assert.equal(a.valid, 0);
    assert.deepEqual(Object.keys(a.reasons), ['invalid:nat-mode-denied'], JSON.stringify(a.reasons));
  });

  test('agent.nat translated: [source, ports], verifier allow_nat: [source, ports]: verified, byte for byte, zero invalid', async () => {
    const a = await attempt(true, true, 9503);
    assert.ok(a.r.ok, 'the connection opened through the NAT');
    assert.equal(firstDifference(a.r.received!, blob(50_000, 'p9503')), -1);
    assert.ok(a.valid > 10);
    assert.equal(a.invalid, 0, JSON.stringify(a.reasons));
  });
});
