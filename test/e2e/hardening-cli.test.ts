// Issue 7, items 6, 7 and the agent's marks (11), through the real `labelwall` processes:
//   pc (agent, marks from the config) ── mb (router) ── srv (verifier, hook input)
//   uc (no agent) ─────────────────────┘
// - A verifier selecting `--in-interface 'PREFIX+'` (an iptables wildcard) really drops what
//   comes unlabelled from a matching interface: a counting rule after labelwall's in srv's INPUT
//   stays at 0 for uc's segments, while a control run with `--action log` (same selection)
//   counts them, so the rule would see them if they got through.
// - `--family IPv4` and `--hook input --out-interface X` are refused with exit 2 and the
//   config's message naming the flag, and change no iptables state.
// - The agent with `agent.mark` set to other bits installs rules with those bits only, puts them
//   on real packets, and labelled traffic and egress denials keep working.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { createTopology, standardTopology, type NsProcess, type Topology } from '../../src/lab/netns.js';
import { makeTempDir } from '../../src/lab/tmp.js';
import { LABELWALL_BIN, labelwallRules, startDaemon, writeKey, type Daemon } from '../../src/lab/labelwall.js';
import { PYTHON, REPO_ROOT } from '../../src/lab/paths.js';

const PEER = join(REPO_ROOT, 'test', 'e2e', 'agent-egress-peer.py');

interface ClientResult {
  ok: boolean;
  errno: string | null;
  ms: number;
  sport: number;
}

describe('hardening: interface wildcards, flags checked like the config, agent marks', { timeout: 240_000 }, () => {
  let topo: Topology;
  let dir: string;
  let key: { path: string; hex: string };
  let agent: Daemon;
  let server: NsProcess;
  let wildcard: string;

  // Custom agent bits, far from the defaults (0x2/0x4/0x8) and from the verifier's mask 0xf00.
  const MARKS = { done: 0x100000, deny: 0x200000, allow: 0x400000 };
  const hex = (n: number): string => `0x${n.toString(16)}`;

  async function client(host: string, port: number): Promise<ClientResult> {
    const r = await topo.exec(host, [PYTHON, PEER, 'tcp', topo.addr('srv'), String(port)], { timeoutMs: 20_000 });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(line) as ClientResult;
    } catch {
      throw new Error(`tcp client on ${host}: no result (exit ${r.code})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    }
  }

  /** Packets counted by the rule with this comment (iptables -L -v -x) in a host's table/chain. */
  async function counted(host: string, table: string, chain: string, comment: string, cmd = 'iptables'): Promise<number> {
    const r = await topo.check(host, [cmd, '-w', '-t', table, '-L', chain, '-n', '-v', '-x']);
    const line = r.stdout.split('\n').find((l) => l.includes(`/* ${comment} */`));
    assert.ok(line, `counting rule ${comment} in ${host} ${table} ${chain}:\n${r.stdout}`);
    return Number(line.trim().split(/\s+/)[0]);
  }

  /** Counting rules after labelwall's jump in srv's INPUT: what got past the verifier, per client. */
  async function addCounters(): Promise<void> {
    for (const h of ['uc', 'pc']) {
      await topo.check('srv', [
        'iptables',
        '-w',
        '-A',
        'INPUT',
        '-p',
        'tcp',
        '-s',
        topo.addr(h),
        '--dport',
        '9000',
        '-m',
        'comment',
        '--comment',
        `lwtest-${h}`,
      ]);
    }
  }
  async function dropCounters(): Promise<void> {
    for (const h of ['uc', 'pc']) {
      await topo.check('srv', [
        'iptables',
        '-w',
        '-D',
        'INPUT',
        '-p',
        'tcp',
        '-s',
        topo.addr(h),
        '--dport',
        '9000',
        '-m',
        'comment',
        '--comment',
        `lwtest-${h}`,
      ]);
    }
  }

  const startVerifier = (action: 'drop' | 'log'): Promise<Daemon> =>
    startDaemon(
      topo,
      'srv',
      'verifier',
      [
        '--profile',
        'compat',
        '--key-file',
        key.path,
        '--hook',
        'input',
        '--action',
        action,
        '--in-interface',
        wildcard,
        '--queue-base',
        '60',
      ],
      dir,
    );

  before(async () => {
    dir = makeTempDir('lw-hard-cli-');
    key = writeKey(dir, 'site');
    const cfg = join(dir, 'agent.yaml');
    writeFileSync(
      cfg,
      `agent:\n  mark: { done: ${hex(MARKS.done)}, deny: "${hex(MARKS.deny)}", allow: ${MARKS.allow} }\n` +
        '  egress:\n    rules:\n      - { name: no-9101, dst: { ports: [9101] }, action: deny }\n',
    );
    topo = await createTopology(standardTopology({ subnetBase: 236 }));
    const srvIf = topo.iface('srv', 'mb').name;
    // Every name that starts like srv's interface, not the name itself: only iptables' "+" matches it.
    wildcard = `${srvIf.slice(0, -2)}+`;
    assert.notEqual(wildcard.slice(0, -1), srvIf);
    server = topo.spawn('srv', [PYTHON, PEER, 'serve', '9000,9101']);
    await server.waitForOutput(/"ready": true/, 10_000, 'stdout');
    agent = await startDaemon(
      topo,
      'pc',
      'agent',
      ['--profile', 'compat', '--key-file', key.path, '--config', cfg, '--queue-base', '50'],
      dir,
    );
  });

  after(async () => {
    await topo?.destroy();
  });

  test(`--in-interface 'PREFIX+' drops unlabelled segments from a matching interface (control: --action log lets them be counted)`, async () => {
    const v = await startVerifier('drop');
    await addCounters();
    try {
      const rules = (await labelwallRules(topo, 'srv')).join('\n');
      assert.match(rules, new RegExp(`-A LABELWALL-VERIFY-INPUT -i ${wildcard.replace(/[.+]/g, '\\$&')} -p tcp -j NFQUEUE`), rules);
      const before = await v.counters();
      const attack = await client('uc', 9000);
      assert.equal(attack.ok, false, `uc's unlabelled connection must fail: ${JSON.stringify(attack)}`);
      assert.equal(await counted('srv', 'filter', 'INPUT', 'lwtest-uc'), 0, 'no unlabelled segment from uc got past the verifier');
      const good = await client('pc', 9000);
      assert.equal(good.ok, true, `pc's labelled connection: ${JSON.stringify(good)}`);
      assert.ok((await counted('srv', 'filter', 'INPUT', 'lwtest-pc')) > 0, 'labelled segments from pc passed');
      const after = await v.counters();
      assert.ok(
        after.unlabelled! - before.unlabelled! >= 2,
        `uc's SYNs (and retries) judged unlabelled: ${after.unlabelled! - before.unlabelled!}`,
      );
      assert.ok(after.dropped! > before.dropped!, 'and dropped');
      assert.ok(after.valid! > before.valid!, "pc's segments judged valid under the same selection");
      assert.equal(after.unmatched, 0, 'every queued packet matched the wildcard rule in the handler too');
    } finally {
      await dropCounters();
      await v.stop();
    }

    // Control: same selection, action log. The same unlabelled connection now gets through and
    // the counting rule sees it, so a verifier that let it by would have been noticed above.
    const c = await startVerifier('log');
    await addCounters();
    try {
      const seen = await client('uc', 9000);
      assert.equal(seen.ok, true, `control: uc connects when nothing is dropped: ${JSON.stringify(seen)}`);
      assert.ok((await counted('srv', 'filter', 'INPUT', 'lwtest-uc')) > 0, 'control: the counting rule sees what passes');
      const cc = await c.counters();
      assert.ok(cc.unlabelled! > 0, 'control: judged unlabelled (selected by the wildcard) and passed');
      assert.equal(cc.unmatched, 0);
    } finally {
      await dropCounters();
      await c.stop();
    }
  });

  test("--family IPv4 and --hook input --out-interface X: exit 2, the config's message naming the flag, no iptables change", async () => {
    const before = await labelwallRules(topo, 'srv');
    const lw = (args: string[]) =>
      topo.exec(
        'srv',
        [
          process.execPath,
          LABELWALL_BIN,
          'verifier',
          '--profile',
          'compat',
          '--key-file',
          key.path,
          '--control-socket',
          join(dir, 'refused.sock'),
          ...args,
        ],
        { timeoutMs: 20_000 },
      );
    const fam = await lw(['--family', 'IPv4']);
    assert.equal(fam.code, 2, fam.stderr);
    assert.equal(fam.stderr, 'labelwall: --family: must be one of ipv4, ipv6, got "IPv4" (did you mean "ipv4"?)\n');
    const out = await lw(['--hook', 'input', '--out-interface', topo.iface('srv', 'mb').name]);
    assert.equal(out.code, 2, out.stderr);
    assert.equal(
      out.stderr,
      'labelwall: --out-interface: out_interfaces does not apply with --hook input (packets there have no output interface)\n',
    );
    // The file and the flag go through the same check: hook from the flag, rule from the file.
    const file = join(dir, 'out-if.yaml');
    writeFileSync(file, `verifier:\n  rules:\n    - out_interfaces: [${topo.iface('srv', 'mb').name}]\n`);
    const mixed = await lw(['--hook', 'input', '--config', file]);
    assert.equal(mixed.code, 2, mixed.stderr);
    assert.equal(
      mixed.stderr,
      `labelwall: invalid config:\n${file}:3:23: verifier.rules[0].out_interfaces: out_interfaces does not apply with --hook input (packets there have no output interface)\n`,
    );
    assert.deepEqual(await labelwallRules(topo, 'srv'), before, 'a refused start touches no rule');
  });

  test('agent.mark: the installed rules use the configured bits only; real packets carry them; labelling and egress deny still work', async () => {
    const rules = (await labelwallRules(topo, 'pc')).join('\n');
    assert.match(rules, new RegExp(`-A LABELWALL-AGENT-OUT -m mark --mark ${hex(MARKS.done)}/${hex(MARKS.done)} -j RETURN`));
    assert.match(rules, new RegExp(`-A LABELWALL-AGENT-IN -m mark --mark ${hex(MARKS.done)}/${hex(MARKS.done)} -j RETURN`));
    assert.match(rules, new RegExp(`-A LABELWALL-AGENT-OUT -m mark --mark ${hex(MARKS.deny)}/${hex(MARKS.deny)} -j RETURN`));
    assert.match(rules, new RegExp(`-A LABELWALL-AGENT-OUT -p tcp -m mark --mark 0x0/${hex(MARKS.deny | MARKS.allow)} .*--queue-num 51`));
    assert.match(rules, new RegExp(`-A LABELWALL-AGENT-EGRESS -m mark ! --mark ${hex(MARKS.deny)}/${hex(MARKS.deny)} -j RETURN`));
    assert.doesNotMatch(rules, /--mark 0x(2\/0x2|4\/0x4|0\/0xc)\b/, 'no default bit is used');

    // Counting rules at the end of pc's output path: labelled segments carry `done`, the SYN `allow`.
    const dport = ['-p', 'tcp', '-d', topo.addr('srv'), '--dport', '9000'];
    await topo.check('pc', [
      'iptables',
      '-w',
      '-t',
      'mangle',
      '-A',
      'POSTROUTING',
      ...dport,
      '-m',
      'mark',
      '--mark',
      `${hex(MARKS.done)}/${hex(MARKS.done)}`,
      '-m',
      'comment',
      '--comment',
      'lwtest-done',
    ]);
    await topo.check('pc', [
      'iptables',
      '-w',
      '-t',
      'mangle',
      '-A',
      'POSTROUTING',
      ...dport,
      '--syn',
      '-m',
      'mark',
      '--mark',
      `${hex(MARKS.allow)}/${hex(MARKS.allow)}`,
      '-m',
      'comment',
      '--comment',
      'lwtest-allow',
    ]);
    const v = await startVerifier('drop'); // labels are checked at srv: the connection works only if labelled
    try {
      const ok = await client('pc', 9000);
      assert.equal(ok.ok, true, `labelled connection through the verifier: ${JSON.stringify(ok)}`);
      assert.ok((await counted('pc', 'mangle', 'POSTROUTING', 'lwtest-done')) >= 3, 'labelled segments carry the configured done bit');
      assert.ok((await counted('pc', 'mangle', 'POSTROUTING', 'lwtest-allow')) >= 1, 'the allowed SYN carries the configured allow bit');
      assert.ok((await v.counters()).valid! > 0);
      const denied = await client('pc', 9101);
      assert.equal(denied.ok, false, `egress deny: ${JSON.stringify(denied)}`);
      assert.equal(denied.errno, 'ECONNREFUSED', 'refused at once by the REJECT rule keyed on the configured deny bit');
      assert.ok(denied.ms < 1000, `refused in ${denied.ms} ms`);
      const st = await agent.status();
      assert.deepEqual(st.config.mark, { done: hex(MARKS.done), deny: hex(MARKS.deny), allow: hex(MARKS.allow) });
    } finally {
      await v.stop();
    }
  });
});
