// Issue 7, items 5, 8, 9 and two of 11, mounted as they were found, against the real
// `labelwall` processes in namespaces:
//   - SIGUSR1 / NODE_OPTIONS / --inspect: an unprivileged user (setpriv to nobody) tries the
//     inspector port after root signalled the daemon; control: the same probe runs code as root
//     in a plain node process that got SIGUSR1.
//   - --log-file on a full disk (a 64 KiB tmpfs mounted here, filled): status answers, traffic
//     is judged, SIGTERM stops it, the drops are counted; control: the same run with room.
//   - a FIFO as key or config file, /dev/zero as config, a 600 MB key file, a YAML alias bomb,
//     a key file of another user, keygen --force over a device node: one-line errors, exit 2.
//   - an egress flood with rate-limited decision lines and a summary; a cmdline rule (a+)+$
//     while a process with 32 "a"s and a "!" in its argv opens a flow (timed).
//   pc (agent / verifier under test) ── srv (servers)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readFileSync, statSync, truncateSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { createTopology, waitFor, type Topology } from '../../src/lab/netns.js';
import { makeTempDir } from '../../src/lab/tmp.js';
import { LABELWALL_BIN, labelwallRules, startDaemon, writeKey } from '../../src/lab/labelwall.js';
import { PYTHON, REPO_ROOT } from '../../src/lab/paths.js';
import { testPeer } from '../helpers/paths.js';

const PROBE = testPeer('inspector_probe.py');
const EGRESS_PEER = join(REPO_ROOT, 'test', 'e2e', 'agent-egress-peer.py');
const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];

interface Probe {
  connected: boolean;
  uid?: number;
  result?: unknown;
  error?: string;
}

describe('hardening: inspector, log destination, hostile files, decision logs, cmdline regexes', { timeout: 170_000 }, () => {
  let topo: Topology;
  let dir: string;
  let key: { path: string; hex: string };

  /** The attack: as nobody, inside the host's namespace, connect to the inspector port and run code. */
  async function probe(host: string): Promise<Probe> {
    const r = await topo.exec(host, [...NOBODY, PYTHON, PROBE, '127.0.0.1', '9229', 'process.getuid()'], { timeoutMs: 15_000 });
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as Probe;
  }

  const lw = (host: string, args: string[], timeoutMs = 20_000) =>
    topo.exec(host, [process.execPath, LABELWALL_BIN, ...args], { timeoutMs });

  before(async () => {
    dir = makeTempDir('lw-hard-');
    chmodSync(dir, 0o755); // nobody reads the probe from the repository, not from here
    key = writeKey(dir, 'site');
    topo = await createTopology({ hosts: [{ name: 'pc' }, { name: 'srv' }], links: [{ a: 'pc', b: 'srv' }], subnetBase: 233 });
  });

  after(async () => {
    await topo?.destroy();
  });

  test('SIGUSR1: a plain node process opens its inspector to nobody (control); labelwall does not', async () => {
    // Control: the attack works on an ordinary node process.
    const plain = topo.spawn('pc', [process.execPath, '-e', 'setInterval(() => {}, 1000)']);
    await new Promise((r) => setTimeout(r, 500));
    plain.signal('SIGUSR1');
    await plain.waitForOutput(/Debugger listening on ws:\/\/127\.0\.0\.1:9229/, 5000, 'stderr');
    const hit = await probe('pc');
    assert.deepEqual(
      { connected: hit.connected, uid: hit.uid, result: hit.result },
      { connected: true, uid: 65534, result: 0 },
      'nobody ran code as root in the plain process',
    );
    await plain.stop(2000);
    assert.equal((await probe('pc')).connected, false, 'port closed again once the plain process is gone');

    // The daemon: SIGUSR1 (three times) changes nothing, it keeps answering.
    const v = await startDaemon(
      topo,
      'pc',
      'verifier',
      ['--profile', 'compat', '--key-file', key.path, '--hook', 'input', '--queue-base', '50'],
      dir,
    );
    for (let i = 0; i < 3; i++) {
      v.proc.signal('SIGUSR1');
      await new Promise((r) => setTimeout(r, 300));
    }
    const miss = await probe('pc');
    assert.equal(miss.connected, false, JSON.stringify(miss));
    assert.match(miss.error ?? '', /ConnectionRefused/);
    const listeners = (await topo.check('pc', ['ss', '-Hltn'])).stdout.trim();
    assert.equal(listeners, '', 'no TCP listener at all in the namespace');
    assert.doesNotMatch(v.proc.stderr, /Debugger listening/);
    assert.equal((await v.status()).role, 'verifier', 'still running and answering');
    assert.equal(await v.stop(), 0);
  });

  test('NODE_OPTIONS=--inspect is dropped by bin/labelwall; node --inspect bin/labelwall is refused (exit 2)', async () => {
    // Executed directly (the shebang): NODE_OPTIONS never reaches node.
    const sock = join(dir, 'env.sock');
    const d = topo.spawn('pc', [
      'env',
      'NODE_OPTIONS=--inspect=127.0.0.1:9229',
      LABELWALL_BIN,
      'verifier',
      '--profile',
      'compat',
      '--key-file',
      key.path,
      '--hook',
      'input',
      '--queue-base',
      '52',
      '--control-socket',
      sock,
    ]);
    await waitFor(
      async () => {
        if (!d.running) throw new Error(`exited: ${d.describe()}`);
        return (await lw('pc', ['status', '--control-socket', sock], 10_000)).code === 0;
      },
      15_000,
      { what: 'verifier started with NODE_OPTIONS=--inspect answering' },
    );
    assert.equal((await probe('pc')).connected, false);
    assert.doesNotMatch(d.stderr, /Debugger listening/);
    await d.stop(5000);
    // On the node command line: the inspector is closed at once and labelwall refuses to run.
    const r = await topo.exec(
      'pc',
      [
        process.execPath,
        '--inspect=127.0.0.1:9229',
        LABELWALL_BIN,
        'verifier',
        '--profile',
        'compat',
        '--key-file',
        key.path,
        '--control-socket',
        join(dir, 'x.sock'),
      ],
      { timeoutMs: 20_000 },
    );
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^labelwall: refusing to run with the Node\.js inspector enabled/m);
    assert.deepEqual(await labelwallRules(topo, 'pc'), [], 'nothing installed');
  });

  test('--log-file on a full disk: status answers, packets are judged, SIGTERM stops it, drops counted; control with room', async (t) => {
    const mnt = join(dir, 'full');
    mkdirSync(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]);
    try {
      const runOnce = async (fill: boolean) => {
        if (fill) execFileSync('sh', ['-c', `dd if=/dev/zero of=${mnt}/fill bs=4k 2>/dev/null; true`]);
        const logFile = join(mnt, `labelwall-${fill ? 'full' : 'room'}.log`);
        // --action log: every unlabelled segment is judged, passes, and is logged (rate-limited).
        const v = await startDaemon(
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
            'log',
            '--log-file',
            logFile,
            '--log-level',
            'debug',
            '--queue-base',
            '54',
          ],
          dir,
        );
        const server = topo.spawn('srv', [PYTHON, EGRESS_PEER, 'serve', '9000', '9001']);
        await server.waitForOutput(/"ready": true/, 10_000, 'stdout');
        for (let i = 0; i < 5; i++) {
          const c = await topo.exec('pc', [PYTHON, EGRESS_PEER, 'tcp', topo.addr('srv'), '9000'], { timeoutMs: 10_000 });
          assert.match(c.stdout, /"ok": true/, c.stdout + c.stderr);
        }
        const t0 = Date.now();
        const st = await v.status();
        const statusMs = Date.now() - t0;
        assert.ok(statusMs < 3000, `status took ${statusMs} ms`);
        assert.ok((st.counters.unlabelled ?? 0) > 0, 'segments were judged');
        const stopAt = Date.now();
        const code = await v.stop();
        const stopMs = Date.now() - stopAt;
        await server.stop(2000);
        return { st, statusMs, code, stopMs, stderr: v.proc.stderr, logFile, rules: await labelwallRules(topo, 'srv') };
      };
      // Control: room on the disk, lines written, nothing dropped.
      const room = await runOnce(false);
      assert.equal(room.st.log?.dropped, 0);
      assert.match(readFileSync(room.logFile, 'utf8'), /"msg":"verifier: running"/);
      assert.equal(room.code, 0);
      // Full: the same run keeps working and counts what it could not write.
      const full = await runOnce(true);
      assert.ok((full.st.log?.dropped ?? 0) >= 1, JSON.stringify(full.st.log));
      assert.equal(full.st.log?.lastError, 'ENOSPC');
      assert.equal(full.code, 0, 'SIGTERM stopped it cleanly');
      assert.ok(full.stopMs < 5000, `stop took ${full.stopMs} ms`);
      assert.deepEqual(full.rules, [], 'its rules are gone');
      t.diagnostic(
        `full disk: status in ${full.statusMs} ms, ${full.st.log?.dropped} lines dropped, ${full.st.counters.unlabelled} segments judged, SIGTERM to exit ${full.stopMs} ms`,
      );
      const notices = full.stderr.split('\n').filter((l) => /cannot write log lines \(ENOSPC\)/.test(l));
      assert.equal(notices.length, 1, full.stderr);
    } finally {
      execFileSync('umount', ['-l', mnt]);
    }
  });

  test('stderr is a pipe nobody reads: a flood of log lines fills it, status still answers, SIGTERM still stops it', async (t) => {
    const cfg = join(dir, 'pipe.yaml');
    writeFileSync(cfg, 'log:\n  egress_decisions: { allow_per_second: 100000 }\nagent:\n  egress:\n    default: allow\n');
    const sock = join(dir, 'pipe.sock');
    // `sleep` holds the read end of stderr's pipe and never reads: 64 KiB and the pipe is full.
    const sh = topo.spawn('pc', [
      'sh',
      '-c',
      `exec ${process.execPath} ${LABELWALL_BIN} agent --key-file ${key.path} --config ${cfg} --queue-base 62 --control-socket ${sock} 2>&1 >/dev/null | sleep 600`,
    ]);
    const status = async () => {
      const r = await lw('pc', ['status', '--json', '--control-socket', sock], 10_000);
      if (r.code !== 0) throw new Error(r.stderr);
      return JSON.parse(r.stdout) as {
        counters: Record<string, number>;
        log?: { dropped: number; droppedBytes: number; pendingBytes: number; destination: string };
      };
    };
    try {
      await waitFor(() => status().then(() => true), 20_000, { what: 'agent behind a stalled stderr answering' });
      // ~600 decision lines of ~500 bytes: several times what the pipe holds.
      const flood = `import socket,sys
for i in range(600):
    s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('',23000+i)); s.sendto(b'x',(sys.argv[1],9)); s.close()`;
      await topo.exec('pc', [PYTHON, '-c', flood, topo.addr('srv')], { timeoutMs: 60_000 });
      const st = await waitFor(
        async () => {
          const x = await status();
          return (x.counters.egress_decisions ?? 0) >= 600 ? x : undefined;
        },
        30_000,
        { what: '600 decisions' },
      );
      const t0 = Date.now();
      await status();
      const ms = Date.now() - t0;
      assert.equal(st.log?.destination, 'stderr');
      // The pipe is full: what was not written waits in the bounded buffer (or was dropped).
      assert.ok((st.log?.pendingBytes ?? 0) + (st.log?.droppedBytes ?? 0) > 65536, `stalled writes (${JSON.stringify(st.log)})`);
      assert.ok(ms < 3000, `status took ${ms} ms`);
      t.diagnostic(
        `stalled stderr: ${st.counters.egress_decisions} decisions, ${st.log?.pendingBytes} bytes waiting, ${st.log?.dropped} lines dropped, status in ${ms} ms`,
      );
    } finally {
      const pids = (await topo.exec('pc', ['pgrep', '-f', `control-socket ${sock}`])).stdout.trim().split('\n').filter(Boolean);
      for (const pid of pids) await topo.exec('pc', ['kill', '-TERM', pid]);
      await waitFor(async () => (await topo.exec('pc', ['pgrep', '-f', `control-socket ${sock}`])).code !== 0, 10_000, {
        what: 'agent stopped by SIGTERM',
      });
      await sh.stop(2000);
    }
    assert.deepEqual(await labelwallRules(topo, 'pc'), [], 'SIGTERM removed its rules');
  });

  test('--log-file that cannot be opened: one line, exit 2, nothing installed', async () => {
    const fifo = join(dir, 'log.fifo');
    execFileSync('mkfifo', [fifo]);
    for (const [file, re] of [
      [fifo, /^labelwall: log file .*log\.fifo: a FIFO with no reader$/],
      ['/proc/1/nope/x.log', /^labelwall: log file \/proc\/1\/nope\/x\.log: cannot create its folder \(ENOENT\)$/],
      ['/sys/labelwall.log', /^labelwall: log file \/sys\/labelwall\.log: cannot open for writing \(EACCES\)$/],
    ] as const) {
      const r = await lw('pc', [
        'verifier',
        '--key-file',
        key.path,
        '--log-file',
        file,
        '--queue-base',
        '56',
        '--control-socket',
        join(dir, 'lf.sock'),
      ]);
      assert.equal(r.code, 2, `${file}: ${r.stderr}`);
      assert.match(r.stderr.trim(), re);
    }
    assert.deepEqual(await labelwallRules(topo, 'pc'), []);
  });

  test('hostile key and config files: FIFO, /dev/zero, 600 MB, alias bomb, foreign owner: one line, exit 2, at once', async () => {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', ['-m', '600', fifo]);
    const big = join(dir, 'big.key');
    writeFileSync(big, '', { mode: 0o600 });
    truncateSync(big, 600 * 1024 * 1024);
    const bomb = join(dir, 'bomb.yaml');
    const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 9; i++)
      lines.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9)
          .fill(`*${String.fromCharCode(96 + i)}`)
          .join(',')}]`,
      );
    writeFileSync(bomb, `${lines.join('\n')}\n`);
    const foreign = writeKey(dir, 'foreign');
    chownSync(foreign.path, 65534, 65534);
    const ctl = join(dir, 'h.sock');
    const cases: Array<[string, string[], RegExp]> = [
      ['FIFO key', ['verifier', '--key-file', fifo], /^labelwall: key file .*fifo: not a regular file \(a FIFO\)$/],
      [
        'FIFO config',
        ['agent', '--key-file', key.path, '--config', fifo],
        /^labelwall: invalid config:\n.*fifo:1:1: \(document\): cannot read config file: not a regular file \(a FIFO\)$/,
      ],
      [
        '/dev/zero config',
        ['verifier', '--key-file', key.path, '--config', '/dev/zero'],
        /^labelwall: invalid config:\n\/dev\/zero:1:1: \(document\): cannot read config file: not a regular file \(a character device\)$/,
      ],
      ['600 MB key', ['verifier', '--key-file', big], /^labelwall: key file .*big\.key: too large: 629145600 bytes, at most 4 KiB$/],
      [
        'alias bomb',
        ['verifier', '--key-file', key.path, '--config', bomb],
        /^labelwall: invalid config:\n.*bomb\.yaml:2:8: \(document\): YAML aliases expand too much \(more than 100 aliased nodes\)/,
      ],
      [
        'foreign key',
        ['verifier', '--key-file', foreign.path],
        /^labelwall: key file .*foreign\.key: refused: owned by uid 65534, which could replace the key; it must belong to root: run chown root /,
      ],
    ];
    for (const [name, args, re] of cases) {
      const t0 = Date.now();
      const r = await lw('pc', [...args, '--queue-base', '58', '--control-socket', ctl]);
      const ms = Date.now() - t0;
      assert.equal(r.code, 2, `${name}: exit ${r.code}, ${r.stderr}`);
      assert.match(r.stderr.trim(), re, name);
      assert.doesNotMatch(r.stderr, /\n\s+at /, `${name}: no stack trace`);
      assert.ok(ms < 15_000, `${name}: took ${ms} ms`);
    }
    // Control: the same key owned by root is accepted (the verifier starts).
    chownSync(foreign.path, 0, 0);
    const ok = await startDaemon(
      topo,
      'pc',
      'verifier',
      ['--profile', 'compat', '--key-file', foreign.path, '--hook', 'input', '--queue-base', '58'],
      dir,
    );
    assert.equal(await ok.stop(), 0);
  });

  test('keygen --force over a device node is refused and the node stays; a regular file is replaced (control)', async () => {
    const node = join(dir, 'full-dev');
    execFileSync('mknod', ['-m', '666', node, 'c', '1', '7']); // same device as /dev/full
    const r = await lw('pc', ['keygen', '--out', node, '--force']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr.trim(),
      /^labelwall: key file .*full-dev: exists and is a character device; refusing to replace it \(only a regular file or a new path\)$/,
    );
    const st = statSync(node);
    assert.ok(st.isCharacterDevice() && st.rdev === statSync('/dev/full').rdev, 'still the device node');
    const reg = writeKey(dir, 'old');
    const before = readFileSync(reg.path, 'utf8');
    const ok = await lw('pc', ['keygen', '--out', reg.path, '--force']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.notEqual(readFileSync(reg.path, 'utf8'), before);
  });

  test('egress: a decision flood is logged up to the limits, with a summary; an evil argv against (a+)+$ costs nothing', async (t) => {
    const cfg = join(dir, 'agent.yaml');
    writeFileSync(
      cfg,
      [
        'log:',
        '  egress_decisions: { allow_per_second: 5, deny_per_second: 50, summary_seconds: 2 }',
        'agent:',
        '  egress:',
        '    default: allow',
        '    unknown: allow',
        '    rules:',
        '      - name: evil-regex',
        '        app: { cmdline: "(a+)+$" }',
        '        action: deny',
        '      - name: closed-port',
        '        dst: { ports: [9101] }',
        '        action: deny',
        '',
      ].join('\n'),
    );
    // A pattern RE2 cannot compile is refused before anything starts, with its position.
    const badCfg = join(dir, 'bad.yaml');
    writeFileSync(badCfg, 'agent:\n  egress:\n    rules:\n      - { app: { cmdline: "(a)\\\\1" }, action: deny }\n');
    const bad = await lw('pc', ['agent', '--key-file', key.path, '--config', badCfg, '--control-socket', join(dir, 'bad.sock')]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(
      bad.stderr,
      /bad\.yaml:4:27: agent\.egress\.rules\[0\]\.app\.cmdline: bad regular expression \(RE2 syntax: no backreferences or lookaround\): invalid escape sequence/,
    );

    const server = topo.spawn('srv', [PYTHON, EGRESS_PEER, 'serve', '9000,9101', '9000,9101']);
    await server.waitForOutput(/"ready": true/, 10_000, 'stdout');
    const agent = await startDaemon(
      topo,
      'pc',
      'agent',
      ['--profile', 'compat', '--key-file', key.path, '--config', cfg, '--queue-base', '60'],
      dir,
    );
    try {
      const connect = `import socket,sys,time
t=time.time()
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20).close(); ok=True
except OSError as e:
    ok=False
print(ok, round((time.time()-t)*1000, 1))`;
      const timed = async (last: string): Promise<{ ok: boolean; ms: number }> => {
        const r = await topo.exec('pc', [PYTHON, '-c', connect, topo.addr('srv'), '9000', last], { timeoutMs: 30_000 });
        const [ok, ms] = r.stdout.trim().split(' ');
        return { ok: ok === 'True', ms: Number(ms) };
      };
      // A first flow pays one-time costs (the interpreter's SHA-256, cold caches): not timed.
      await timed('warm-up');
      const plain = await timed('plain');
      // The argv that stalled a backtracking engine for 39 s: its flow is judged at once (no match: allowed).
      const evil = await timed(`${'a'.repeat(32)}!`);
      assert.equal(evil.ok, true);
      assert.ok(evil.ms < 1000, `connect with the evil argv took ${evil.ms} ms`);
      t.diagnostic(`connect() with the evil argv: ${evil.ms} ms; with a plain one: ${plain.ms} ms`);
      // Control: the rule is live (an argv ending in "a"s matches and is denied).
      const match = await timed('a'.repeat(32));
      assert.equal(match.ok, false, 'the cmdline rule denies a matching argv');

      // The flood: 400 allowed and 150 denied new UDP flows, as fast as one process can (one
      // source port each, so that no two are the same conntrack flow).
      const flood = `import socket,sys
h=sys.argv[1]
for port,n,base in ((9000,400,20000),(9101,150,21000)):
    for i in range(n):
        s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('',base+i)); s.sendto(b'x',(h,port)); s.close()
print('done')`;
      const before = (await agent.counters()).egress_decisions ?? 0;
      const f = await topo.exec('pc', [PYTHON, '-c', flood, topo.addr('srv')], { timeoutMs: 60_000 });
      assert.match(f.stdout, /done/, f.stderr);
      const decided = await waitFor(
        async () => {
          const c = await agent.counters();
          return (c.egress_decisions ?? 0) - before >= 550 ? c : undefined;
        },
        30_000,
        { what: '550 flood decisions' },
      ).catch(async (e: Error) => {
        throw new Error(`${e.message}: ${JSON.stringify(await agent.status())}`);
      });
      const summary = await waitFor(() => agent.logs().find((l) => l.event === 'egress-suppressed'), 10_000, { what: 'summary line' });
      await new Promise((r) => setTimeout(r, 2500)); // one more period: every suppressed decision summarised
      const lines = agent.logs().filter((l) => l.event === 'egress');
      const floodLines = lines.filter((l) => l.proto === 'udp');
      const allowLines = floodLines.filter((l) => l.action === 'allow').length;
      const denyLines = floodLines.filter((l) => l.action === 'deny').length;
      const summaries = agent.logs().filter((l) => l.event === 'egress-suppressed') as Array<{
        suppressed: Record<string, number>;
        total: number;
      }>;
      const summarised = summaries.reduce((n, s) => n + s.total, 0);
      const c = await agent.counters();
      // Burst 50 for allow (the TCP flows above took some of it), all 150 denials (burst 500).
      assert.ok(allowLines <= 50 + 5 * 20, `allow lines ${allowLines}`);
      assert.ok(allowLines < 200, `allow lines ${allowLines} of 400`);
      assert.equal(denyLines, 150, 'every deny decision logged (under its higher limit)');
      assert.equal(c.egress_log_suppressed, summarised, 'every suppressed decision is in a summary');
      assert.equal((c.egress_decisions ?? 0) - before - floodLines.length, c.egress_log_suppressed, 'judged = logged + suppressed');
      assert.ok(summarised >= 200, `summarised ${summarised}`);
      assert.equal(typeof (summary as { byRule?: unknown }).byRule, 'object');
      t.diagnostic(
        `flood: ${(decided.egress_decisions ?? 0) - before} decisions, ${allowLines} allow + ${denyLines} deny lines, ${summarised} suppressed in ${summaries.length} summaries`,
      );
    } finally {
      await agent.stop();
      await server.stop(2000);
    }
    assert.deepEqual(await labelwallRules(topo, 'pc'), []);
    assert.ok(!existsSync(join(dir, 'bad.sock')));
  });
});
