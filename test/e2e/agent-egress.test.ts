// The agent's egress policy end to end: the real `labelwall agent` (config file, egress queue,
// REJECT rules) on pc, real client processes (copies of the Python interpreter under other
// names) opening TCP, UDP and ICMP flows to srv, the real `labelwall verifier` on srv checking
// the labels of what was allowed, the real `labelwall flows` CLI, and SIGHUP reloads.
//   pc (agent, egress policy) ── srv (echo servers, verifier --hook input)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, copyFileSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTopology, run, waitFor, type NsProcess, type Topology } from '../../src/lab/netns.js';
import { makeTempDir } from '../../src/lab/tmp.js';
import { LABELWALL_BIN, labelwallRules, startDaemon, writeKey, type Daemon } from '../../src/lab/labelwall.js';
import { REPO_ROOT } from '../../src/lab/paths.js';

const PEER = join(REPO_ROOT, 'test', 'e2e', 'agent-egress-peer.py');
const PY = '/usr/bin/python3';
const PY_REAL = realpathSync(PY);
void dirname(fileURLToPath(import.meta.url));

interface ClientResult {
  ok: boolean;
  errno: string | null;
  error?: string;
  ms: number;
  sport: number;
  pid?: number;
  parent?: number;
  child?: number;
  sender?: number;
  receiver?: number;
}

type Rec = Record<string, unknown> & {
  event?: string;
  action?: string;
  rule?: string;
  proto?: string;
  sport?: number;
  dport?: number;
  unknown?: boolean;
  level?: number;
  holders?: Array<{
    pid: number;
    exe: string;
    sha256?: string;
    user?: string;
    cmdline: string[];
    cgroup: string;
    matched: boolean;
    uid: number;
  }>;
};

describe('agent egress policy: real processes, real rules', { timeout: 110_000 }, () => {
  let topo: Topology;
  let dir: string;
  let key: { path: string; hex: string };
  let agent: Daemon;
  let verifier: Daemon;
  let server: NsProcess;
  let cfgPath: string;
  const exe: Record<string, string> = {};
  let evilHash = '';

  const srv = (family: 4 | 6): string => topo.addr('srv', family);

  async function client(program: string, args: string[]): Promise<ClientResult> {
    const r = await topo.exec('pc', [program, PEER, ...args], { timeoutMs: 20_000 });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(line) as ClientResult;
    } catch {
      throw new Error(`${program} ${args.join(' ')}: no result (exit ${r.code})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    }
  }

  const decisions = (): Rec[] => agent.logs().filter((l) => (l as Rec).event === 'egress') as Rec[];

  /** The decision record of the flow with this local port (and protocol). */
  async function decisionFor(proto: string, sport: number): Promise<Rec> {
    return waitFor(() => decisions().find((d) => d.proto === proto && d.sport === sport), 5000, {
      what: `decision for ${proto} sport ${sport}`,
    });
  }

  function policyYaml(extraFirst = ''): string {
    return `# egress test policy
agent:
  identity: { index_interval_ms: 1000 }
  egress:
    default: allow
    unknown: deny
    rules:${extraFirst}
      - name: no-blocked-py
        app: { exe: "**/blocked-py" }
        action: deny
      - name: evil-by-hash
        app: { sha256: "${evilHash}" }
        action: deny
      - name: python-only-all
        app: { exe: "/usr/bin/python3*", holders: all }
        dst: { ports: [9101], proto: tcp }
        action: allow
      - name: close-9101
        dst: { ports: [9101] }
        action: deny
      - name: no-launcher-any
        app: { exe: "**/launcher", holders: any }
        dst: { ports: [9102] }
        action: deny
      - name: watch-9103
        dst: { ports: [9103] }
        action: log
`;
  }

  before(async () => {
    dir = makeTempDir('lw-egress-');
    key = writeKey(dir, 'site');
    // Executables: copies of the interpreter. blocked-py and launcher have python's hash; evil has
    // bytes appended (still runs, another hash) and renamed-tool is a copy of evil.
    for (const name of ['blocked-py', 'launcher', 'evil']) {
      exe[name] = join(dir, name);
      copyFileSync(PY_REAL, exe[name]!);
    }
    appendFileSync(exe.evil!, 'labelwall-test: a different binary');
    exe.renamed = join(dir, 'renamed-tool');
    copyFileSync(exe.evil!, exe.renamed);
    evilHash = createHash('sha256').update(readFileSync(exe.evil!)).digest('hex');
    cfgPath = join(dir, 'agent.yaml');
    writeFileSync(cfgPath, policyYaml());

    topo = await createTopology({ hosts: [{ name: 'pc' }, { name: 'srv' }], links: [{ a: 'pc', b: 'srv' }], subnetBase: 231 });
    await topo.check('pc', ['sysctl', '-qw', 'net.ipv4.ping_group_range=0 2147483647']);
    server = topo.spawn('srv', [PY, PEER, 'serve', '9000,9101,9102,9103', '9001']);
    await server.waitForOutput(/"ready": true/, 10_000, 'stdout');
    verifier = await startDaemon(
      topo,
      'srv',
      'verifier',
      ['--profile', 'compat', '--key-file', key.path, '--hook', 'input', '--action', 'drop', '--queue-base', '40'],
      dir,
    );
    agent = await startDaemon(
      topo,
      'pc',
      'agent',
      ['--profile', 'compat', '--key-file', key.path, '--config', cfgPath, '--queue-base', '30'],
      dir,
    );
  });

  after(async () => {
    await topo?.destroy();
  });

  test('rules: egress queue in mangle OUTPUT before labelling, REJECT rules in filter OUTPUT, IPv4 and IPv6', async () => {
    const rules = (await labelwallRules(topo, 'pc')).join('\n');
    const lines = rules.split('\n');
    const out = lines.filter((l) => l.startsWith('-A LABELWALL-AGENT-OUT'));
    // Per family: loopback, denied-skip, three egress rules, labelled-skip, labelling: egress first.
    const egressAt = out.findIndex((l) => /--queue-num 31/.test(l));
    const labelAt = out.findIndex((l) => /--queue-num 30/.test(l));
    assert.ok(egressAt >= 0 && egressAt < labelAt, out.join('\n'));
    assert.match(
      rules,
      /-A LABELWALL-AGENT-OUT -p tcp -m mark --mark 0x0\/0xc -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate NEW -j NFQUEUE --queue-num 31/,
    );
    assert.match(rules, /-A LABELWALL-AGENT-OUT -p udp -m mark --mark 0x0\/0xc -m conntrack --ctstate NEW -j NFQUEUE --queue-num 31/);
    assert.match(rules, /-A LABELWALL-AGENT-OUT .*--icmp-type 8 .*-j NFQUEUE --queue-num 31/);
    assert.match(rules, /-A LABELWALL-AGENT-OUT .*--icmpv6-type 128 .*-j NFQUEUE --queue-num 31/);
    assert.match(rules, /-A LABELWALL-AGENT-EGRESS -p tcp .*-j REJECT --reject-with tcp-reset/);
    assert.match(rules, /-A LABELWALL-AGENT-EGRESS -p udp .*-j REJECT --reject-with icmp6-port-unreachable/);
    const status = await agent.status();
    assert.deepEqual(status.queues.map((q) => q.queue).sort(), [30, 31]);
    // The egress worker reports how it attributes (eBPF loads on this kernel as root).
    const ready = await waitFor(() => agent.logs().find((l) => /^agent: egress attribution/.test(String(l.msg))), 5000, {
      what: 'egress-ready log line',
    });
    assert.equal(ready.bpf, true, JSON.stringify(ready));
  });

  for (const family of [4, 6] as const) {
    test(`two executables, same destination, IPv${family}: python allowed, blocked-py denied and told at once (TCP, UDP, ICMP)`, async () => {
      const cases = [
        { proto: 'tcp', args: ['tcp', srv(family), '9000'], refused: /^ECONNREFUSED$/ },
        { proto: 'udp', args: ['udp', srv(family), '9001'], refused: /^ECONNREFUSED$/ },
        // ICMP admin-prohibited: EHOSTUNREACH for IPv4, EACCES for IPv6 ping sockets.
        { proto: 'icmp', args: ['ping', srv(family)], refused: /^(EHOSTUNREACH|EACCES)$/ },
      ];
      for (const c of cases) {
        const ok = await client(PY, c.args);
        assert.equal(ok.ok, true, `python ${c.proto}: ${JSON.stringify(ok)}`);
        const okRec = await decisionFor(c.proto, ok.sport);
        assert.equal(okRec.action, 'allow');
        assert.equal(okRec.rule, 'default');
        assert.deepEqual(
          okRec.holders!.map((h) => [h.pid, h.exe]),
          [[ok.pid, PY_REAL]],
        );

        const no = await client(exe['blocked-py']!, c.args);
        assert.equal(no.ok, false, `blocked-py ${c.proto} must fail: ${JSON.stringify(no)}`);
        assert.match(String(no.errno), c.refused, `blocked-py ${c.proto}: ${JSON.stringify(no)}`);
        assert.ok(no.ms < 1000, `blocked-py ${c.proto} failed fast: ${no.ms.toFixed(1)} ms`);
        const noRec = await decisionFor(c.proto, no.sport);
        assert.equal(noRec.action, 'deny');
        assert.equal(noRec.rule, 'no-blocked-py');
        assert.equal(noRec.family, family);
        assert.equal(noRec.dst, srv(family));
        const h = noRec.holders!;
        assert.equal(h.length, 1);
        assert.equal(h[0]!.pid, no.pid);
        assert.equal(h[0]!.exe, exe['blocked-py']);
        assert.match(h[0]!.sha256 ?? '', /^[0-9a-f]{64}$/);
        assert.equal(h[0]!.user, 'root');
        assert.ok(h[0]!.cmdline.includes(PEER), h[0]!.cmdline.join(' '));
        assert.equal(typeof h[0]!.cgroup, 'string');
        assert.equal(h[0]!.matched, true);
      }
    });
  }

  test('only allowed TCP is labelled: the verifier on srv sees the allowed flow as valid, the denied SYN never', async () => {
    await new Promise((r) => setTimeout(r, 300)); // earlier flows' FINs are done
    const a0 = await agent.counters();
    const v0 = await verifier.counters();
    const no = await client(exe['blocked-py']!, ['tcp', srv(4), '9000']);
    assert.equal(no.errno, 'ECONNREFUSED');
    await new Promise((r) => setTimeout(r, 300));
    const a1 = await agent.counters();
    const v1 = await verifier.counters();
    assert.equal(a1.labelled, a0.labelled, 'the denied SYN was not labelled');
    assert.equal(a1.egress_denied! - a0.egress_denied!, 1);
    assert.equal(
      (v1.valid ?? 0) + (v1.unlabelled ?? 0) + (v1.invalid ?? 0),
      (v0.valid ?? 0) + (v0.unlabelled ?? 0) + (v0.invalid ?? 0),
      'nothing of it reached srv',
    );

    const ok = await client(PY, ['tcp', srv(6), '9000', '200000']);
    assert.equal(ok.ok, true, JSON.stringify(ok));
    const v2 = await verifier.counters();
    assert.ok(v2.valid! - v1.valid! > 100, `verifier counted ${v2.valid! - v1.valid!} valid segments`);
    assert.equal(v2.unlabelled ?? 0, 0, 'no unlabelled segment ever reached srv');
    assert.equal(v2.dropped ?? 0, 0);
  });

  test('inherited socket (the paper case): both holders reported; holders all / any decide as documented', async () => {
    // launcher opens the socket, the python child it execs connects on it.
    const allNo = await client(exe.launcher!, ['inherit-exec', srv(4), '9101', PY]);
    assert.equal(allNo.errno, 'ECONNREFUSED', JSON.stringify(allNo));
    let rec = await decisionFor('tcp', allNo.sport);
    assert.deepEqual(rec.holders!.map((h) => h.pid).sort(), [allNo.parent, allNo.child].sort());
    assert.deepEqual(rec.holders!.map((h) => h.exe).sort(), [exe.launcher, PY_REAL].sort());
    assert.equal(rec.rule, 'close-9101', 'holders all: launcher is not python, so the allow rule does not match');

    const allYes = await client(PY, ['inherit-exec', srv(4), '9101', PY]);
    assert.equal(allYes.ok, true, JSON.stringify(allYes));
    rec = await decisionFor('tcp', allYes.sport);
    assert.equal(rec.holders!.length, 2);
    assert.equal(rec.rule, 'python-only-all');

    const anyNo = await client(exe.launcher!, ['inherit-exec', srv(6), '9102', PY]);
    assert.equal(anyNo.errno, 'ECONNREFUSED', JSON.stringify(anyNo));
    rec = await decisionFor('tcp', anyNo.sport);
    assert.equal(rec.rule, 'no-launcher-any');
    assert.deepEqual(
      rec.holders!.filter((h) => h.matched).map((h) => h.pid),
      [anyNo.parent],
      'only the launcher matched',
    );

    const alone = await client(PY, ['tcp', srv(6), '9102']);
    assert.equal(alone.ok, true);
    assert.equal((await decisionFor('tcp', alone.sport)).rule, 'default');

    // The same flow in `labelwall flows`, with both holders.
    const r = await run([process.execPath, LABELWALL_BIN, 'flows', '--control-socket', agent.socket, '--json'], { check: true });
    const flows = (
      JSON.parse(r.stdout) as {
        flows: Array<{ sport: number; holders: Array<{ pid: number; exe: string }>; verdict: string; rule: string }>;
      }
    ).flows;
    const f = flows.find((x) => x.sport === allNo.sport);
    assert.ok(f, 'the inherited-socket flow is listed');
    assert.deepEqual(f.holders.map((h) => h.pid).sort(), [allNo.parent, allNo.child].sort());
    assert.equal(f.verdict, 'deny');
  });

  test('socket passed over a UNIX socket (SCM_RIGHTS) to an unrelated process: sender and receiver are holders', async () => {
    const no = await client(exe.launcher!, ['scm', srv(4), '9101', PY]);
    assert.equal(no.errno, 'ECONNREFUSED', JSON.stringify(no));
    let rec = await decisionFor('tcp', no.sport);
    assert.deepEqual(rec.holders!.map((h) => h.pid).sort(), [no.sender, no.receiver].sort());
    assert.equal(rec.rule, 'close-9101');
    const yes = await client(PY, ['scm', srv(4), '9101', PY]);
    assert.equal(yes.ok, true, JSON.stringify(yes));
    rec = await decisionFor('tcp', yes.sport);
    assert.deepEqual(rec.holders!.map((h) => h.pid).sort(), [yes.sender, yes.receiver].sort());
    assert.equal(rec.rule, 'python-only-all');
  });

  test('a rule by exe hash stops the denied binary and its renamed copy', async () => {
    for (const name of ['evil', 'renamed']) {
      const r = await client(exe[name]!, ['tcp', srv(4), '9000']);
      assert.equal(r.errno, 'ECONNREFUSED', `${name}: ${JSON.stringify(r)}`);
      const rec = await decisionFor('tcp', r.sport);
      assert.equal(rec.rule, 'evil-by-hash');
      assert.equal(rec.holders![0]!.exe, exe[name]);
      assert.equal(rec.holders![0]!.sha256, evilHash);
    }
  });

  test('short-lived processes still get a decision', async (t) => {
    // Blocking connect, 5 bytes, exit: the SYN waits for the verdict while the process sits in
    // connect(), so it is attributed to that process.
    const s = await client(PY, ['short', srv(4), '9000']);
    const rec = await decisionFor('tcp', s.sport);
    assert.equal(rec.action, 'allow');
    assert.deepEqual(
      rec.holders!.map((h) => h.pid),
      [s.pid],
    );
    // Non-blocking connect and exit at once: the process may be gone before the SYN is judged.
    // Then the flow is `unknown` (here: deny); if the lookup wins the race, it is attributed.
    const nb = await client(PY, ['short-nb', srv(4), '9000']);
    const r2 = await decisionFor('tcp', nb.sport);
    if (r2.unknown) {
      assert.equal(r2.rule, 'unknown');
      assert.equal(r2.action, 'deny');
      assert.equal(typeof r2.reason, 'string');
    } else {
      assert.deepEqual(
        r2.holders!.map((h) => h.pid),
        [nb.pid],
      );
      assert.equal(r2.rule, 'default');
    }
    t.diagnostic(`non-blocking connect + exit: ${r2.unknown ? `unknown (${String(r2.reason)})` : 'attributed to the exited process'}`);
  });

  test('log action: the flow is allowed and its decision logged at warn', async () => {
    const r = await client(PY, ['tcp', srv(4), '9103']);
    assert.equal(r.ok, true);
    const rec = await decisionFor('tcp', r.sport);
    assert.equal(rec.action, 'log');
    assert.equal(rec.rule, 'watch-9103');
    assert.equal(rec.level, 40);
  });

  test('labelwall flows: application, holders, destination, rule, verdict, bytes labelled', async () => {
    const held = topo.spawn('pc', [PY, PEER, 'tcp', srv(4), '9000', '300000', '--hold']);
    const line = await held.waitForOutput(/"sport"/, 10_000, 'stdout');
    void line;
    const res = JSON.parse(held.stdout.trim().split('\n').pop()!) as ClientResult;
    assert.equal(res.ok, true);
    const r = await run([process.execPath, LABELWALL_BIN, 'flows', '--control-socket', agent.socket, '--json'], { check: true });
    const report = JSON.parse(r.stdout) as {
      flows: Array<Record<string, unknown> & { sport: number; bytesLabelled: number; holders: Array<{ pid: number }> }>;
    };
    const f = report.flows.find((x) => x.sport === res.sport && x.proto === 'tcp');
    assert.ok(f, 'the open flow is listed');
    assert.equal(f.app, PY_REAL);
    assert.equal(f.verdict, 'allow');
    assert.equal(f.rule, 'default');
    assert.equal(f.dst, srv(4));
    assert.equal(f.dport, 9000);
    assert.deepEqual(
      f.holders.map((h) => h.pid),
      [res.pid],
    );
    // 300,000 payload bytes plus headers went out labelled.
    assert.ok(f.bytesLabelled > 300_000 && f.bytesLabelled < 600_000, `bytesLabelled ${f.bytesLabelled}`);
    const denied = report.flows.filter((x) => x.verdict === 'deny');
    assert.ok(denied.length >= 6 && denied.every((x) => x.bytesLabelled === 0), 'denied flows were never labelled');
    const text = await run([process.execPath, LABELWALL_BIN, 'flows', '--control-socket', agent.socket], { check: true });
    assert.match(text.stdout, /^PROTO\s+DESTINATION\s+VERDICT\s+RULE\s+APPLICATION/);
    assert.ok(
      text.stdout.includes(`${srv(4)}:9000`) && text.stdout.includes('blocked-py') && text.stdout.includes('no-blocked-py'),
      text.stdout,
    );
    held.write('done\n');
    await held.stop(2000);
  });

  test('SIGHUP: a valid file replaces the policy; a bad one is refused with file:line and the old policy stays', async () => {
    const reloads = (re: RegExp): number => agent.logs().filter((l) => re.test(String(l.msg))).length;
    const before = (await client(PY, ['tcp', srv(4), '9000'])).ok;
    assert.equal(before, true);
    // 1. A valid file that denies python to port 9000.
    writeFileSync(
      cfgPath,
      policyYaml(`
      - name: no-python-9000
        app: { exe: "/usr/bin/python3*" }
        dst: { ports: [9000] }
        action: deny`),
    );
    let n = reloads(/egress policy reloaded/);
    agent.proc.signal('SIGHUP');
    await waitFor(() => reloads(/egress policy reloaded/) > n, 5000, { what: 'reload log line' });
    let r = await client(PY, ['tcp', srv(4), '9000']);
    assert.equal(r.errno, 'ECONNREFUSED', JSON.stringify(r));
    assert.equal((await decisionFor('tcp', r.sport)).rule, 'no-python-9000');

    // 2. A broken file: refused with file:line:col for each problem; the policy above stays.
    writeFileSync(cfgPath, `agent:\n  egress:\n    default: alow\n    rules:\n      - dst: { cidr: [10.0.0.1/8] }\n        action: deny\n`);
    n = reloads(/config rejected/);
    agent.proc.signal('SIGHUP');
    const rej = await waitFor(() => agent.logs().filter((l) => /config rejected/.test(String(l.msg)))[n], 5000, {
      what: 'rejection log line',
    });
    const problems = rej.problems as string[];
    assert.ok(
      problems.some((p) => p.startsWith(`${cfgPath}:3:14: agent.egress.default: must be one of allow, deny, log, got "alow"`)),
      problems.join('\n'),
    );
    assert.ok(
      problems.some((p) => p.startsWith(`${cfgPath}:5:`) && /host bits set/.test(p)),
      problems.join('\n'),
    );
    r = await client(PY, ['tcp', srv(4), '9000']);
    assert.equal(r.errno, 'ECONNREFUSED', 'the previous (valid) policy is still in force');

    // 3. Back to the original file.
    writeFileSync(cfgPath, policyYaml());
    n = reloads(/egress policy reloaded/);
    agent.proc.signal('SIGHUP');
    await waitFor(() => reloads(/egress policy reloaded/) > n, 5000, { what: 'second reload' });
    r = await client(PY, ['tcp', srv(4), '9000']);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.ok(agent.proc.running, 'the agent survived the reloads');
  });

  test('clean stop removes every rule, the egress chains included', async () => {
    assert.equal(await agent.stop(), 0);
    assert.deepEqual(await labelwallRules(topo, 'pc'), []);
    assert.equal(await verifier.stop(), 0);
  });
});
