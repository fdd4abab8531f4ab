// Flag mistakes through the real CLI: every flag of `agent` and `verifier` is checked by the
// config's schema and semantic checks, so each mistake is refused with exit 2 and exactly the
// message the same value gets in the config file, naming the flag instead of file:line:col.
// The key file is readable by others on purpose: a case that wrongly got past the flag checks
// ends at the key check (another message, so the test fails) and never starts a daemon.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig, withOverrides, defaultConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/messages.js';
import { pool } from '../helpers/pool.js';
import { buildProgram } from '../../src/cli/program.js';
import { CliError } from '../../src/cli/errors.js';
import { int, intFlag } from '../../src/cli/int-flag.js';
import { controlGet } from '../../src/control/client.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(root, 'bin', 'labelwall');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-flags-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const keyFile = path.join(dir, 'open.key');
fs.writeFileSync(keyFile, `${'ab'.repeat(32)}\n`, { mode: 0o644 });
fs.chmodSync(keyFile, 0o644);

function lw(args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [bin, ...args], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'], ...(env ? { env } : {}) });
    let stderr = '';
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => c.kill('SIGKILL'), 30_000);
    c.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stderr });
    });
  });
}

const sock = path.join(dir, 'never.sock');
const longSock = `/tmp/${'s'.repeat(110)}`;
// [role, flags, the same value in a config file, the message both must give]
const cases: Array<[string, string[], string, string]> = [
  ['verifier', ['--family', 'IPv4'], 'verifier:\n  families: [IPv4]\n', 'must be one of ipv4, ipv6, got "IPv4" (did you mean "ipv4"?)'],
  ['agent', ['--family', 'inet'], 'agent:\n  families: [inet]\n', 'must be one of ipv4, ipv6, got "inet"'],
  ['agent', ['--family', 'ipv4', '--family', 'ipv4'], 'agent:\n  families: [ipv4, ipv4]\n', 'lists the same entry twice (entries 0 and 1)'],
  [
    'verifier',
    ['--hook', 'input', '--out-interface', 'eth1'],
    'verifier:\n  hook: input\n  rules:\n    - out_interfaces: [eth1]\n',
    'out_interfaces does not apply with HOOK (packets there have no output interface)',
  ],
  ['verifier', ['--hook', 'inbound'], 'verifier:\n  hook: inbound\n', 'must be one of input, forward, got "inbound"'],
  ['verifier', ['--action', 'reject'], 'verifier:\n  action: reject\n', 'must be one of drop, mark, log, got "reject"'],
  ['agent', ['--fail', 'opn'], 'agent:\n  fail: opn\n', 'must be one of closed, open, got "opn" (did you mean "open"?)'],
  ['verifier', ['--queues', '65'], 'verifier:\n  queues: 65\n', 'must be an integer from 1 to 64, got 65'],
  ['agent', ['--queues', '0'], 'agent:\n  queues: 0\n', 'must be an integer from 1 to 64, got 0'],
  ['agent', ['--queues', '1e1'], 'agent:\n  queues: "1e1"\n', 'must be an integer, got "1e1"'],
  ['verifier', ['--queues', '0x2'], 'verifier:\n  queues: "0x2"\n', 'must be an integer, got "0x2"'],
  ['verifier', ['--queue-base', '70000'], 'verifier:\n  queue_base: 70000\n', 'must be an integer from 0 to 65535, got 70000'],
  [
    'agent',
    ['--queue-base', '65535', '--queues', '2'],
    'agent:\n  queue_base: 65535\n  queues: 2\n',
    'queues 65535..65536 run past the last queue number 65535',
  ],
  ['verifier', ['--control-socket', ''], 'control:\n  socket: ""\n', 'must not be empty'],
  ['agent', ['--control-socket', longSock], `control:\n  socket: ${longSock}\n`, 'is 115 bytes long; a UNIX socket path has at most 107'],
  ['agent', ['--log-level', 'loud'], 'log:\n  level: loud\n', 'must be one of trace, debug, info, warn, error, got "loud"'],
  ['agent', ['--log-file', ''], 'log:\n  file: ""\n', 'must not be empty'],
  ['agent', ['--interface', 'a-very-long-name0'], 'agent:\n  interfaces: [a-very-long-name0]\n', 'IFACE, got "a-very-long-name0"'],
  ['agent', ['--interface', 'eth0:1'], 'agent:\n  interfaces: ["eth0:1"]\n', 'IFACE, got "eth0:1"'],
  ['verifier', ['--in-interface', 'e th'], 'verifier:\n  rules:\n    - in_interfaces: ["e th"]\n', 'IFACE, got "e th"'],
  ['verifier', ['--in-interface', '..'], 'verifier:\n  rules:\n    - in_interfaces: [".."]\n', 'IFACE, got ".."'],
  ['verifier', ['--in-interface', 'e+th+x'], 'verifier:\n  rules:\n    - in_interfaces: [e+th+x]\n', 'IFACE, got "e+th+x"'],
  ['verifier', ['--out-interface', 'eth/1'], 'verifier:\n  rules:\n    - out_interfaces: [eth/1]\n', 'IFACE, got "eth/1"'],
  [
    'verifier',
    ['--source', '10.1.2.3/8'],
    'verifier:\n  rules:\n    - sources: [10.1.2.3/8]\n',
    'bad CIDR: "10.1.2.3/8" has host bits set (did you mean "10.0.0.0/8"?)',
  ],
  ['agent', ['--destination', '300.1.1.1'], 'agent:\n  label:\n    destinations: [300.1.1.1]\n', 'bad CIDR: '],
  [
    'verifier',
    ['--port', '80,90-70'],
    'verifier:\n  rules:\n    - ports: [80, "90-70"]\n',
    'bad port: "90-70": range start 90 is greater than its end 70',
  ],
  ['agent', ['--port', '0'], 'agent:\n  label:\n    ports: ["0"]\n', 'bad port: '],
];
const IFACE =
  'must be an interface name: 1-15 characters of A-Z a-z 0-9 _ . - (a trailing "+" matches every name that starts with the rest, as in iptables)';
const expand = (m: string, hook: string): string => m.replace('IFACE', IFACE).replace('HOOK', hook);
const flagName = (args: string[]): string => {
  // The flag whose value is wrong: the last one in these cases, except where the check is on a pair.
  const f = args.filter((a) => a.startsWith('--'));
  return f[f.length - 1]!;
};

test("every flag mistake: exit 2, the config's own message for the same value, naming the flag", async () => {
  const results = await pool(cases, 4, async ([role, flags, yaml], i) => {
    const file = path.join(dir, `c${i}.yaml`);
    fs.writeFileSync(file, yaml);
    const base = [role, '--key-file', keyFile];
    const [byFlag, byFile] = await Promise.all([lw([...base, '--control-socket', sock, ...flags]), lw([...base, '--config', file])]);
    return { file, byFlag, byFile };
  });
  results.forEach(({ file, byFlag, byFile }, i) => {
    const [role, flags, , msg] = cases[i]!;
    const name = `${role} ${flags.join(' ')}`;
    assert.equal(byFlag.code, 2, `${name}: exit code (stderr: ${byFlag.stderr})`);
    assert.equal(byFile.code, 2, `${name} in a file: exit code (stderr: ${byFile.stderr})`);
    const flagLines = byFlag.stderr.trim().split('\n');
    assert.equal(flagLines.length, 1, `${name}: one line: ${byFlag.stderr}`);
    const flag = flags.includes('--queue-base') && flags.includes('--queues') ? '--queue-base' : flagName(flags);
    const want = expand(msg, flag === '--out-interface' ? '--hook input' : 'hook: input');
    const got = flagLines[0]!;
    assert.ok(got.startsWith(`labelwall: ${flag}: `), `${name}: names the flag: ${got}`);
    assert.ok(got.slice(`labelwall: ${flag}: `.length).startsWith(want), `${name}: ${got}`);
    // The file gives the same reason at file:line:col: key.
    const fileLines = byFile.stderr.trim().split('\n');
    assert.equal(fileLines[0], 'labelwall: invalid config:', `${name} in a file: ${byFile.stderr}`);
    const fileMsg = fileLines[1]!.replace(/^[^:]+:\d+:\d+: [^:]+: /, '');
    assert.ok(fileLines[1]!.startsWith(file), fileLines[1]);
    assert.equal(
      fileMsg.replace('hook: input', '--hook input'),
      got.slice(`labelwall: ${flag}: `.length).replace('hook: input', '--hook input'),
      `${name}: same message as the file`,
    );
  });
});

test('flag and file combined are checked as one: --hook input with a file rule on out_interfaces, file hook with --out-interface', async () => {
  const file = path.join(dir, 'rule.yaml');
  fs.writeFileSync(file, 'verifier:\n  rules:\n    - name: out\n      out_interfaces: [eth1]\n');
  const a = await lw(['verifier', '--key-file', keyFile, '--control-socket', sock, '--config', file, '--hook', 'input']);
  assert.equal(a.code, 2);
  assert.equal(
    a.stderr,
    `labelwall: invalid config:\n${file}:4:23: verifier.rules[0].out_interfaces: out_interfaces does not apply with --hook input (packets there have no output interface)\n`,
  );
  const hookFile = path.join(dir, 'hook.yaml');
  fs.writeFileSync(hookFile, 'verifier:\n  hook: input\n');
  const b = await lw(['verifier', '--key-file', keyFile, '--control-socket', sock, '--config', hookFile, '--out-interface', 'eth1']);
  assert.equal(b.code, 2);
  assert.equal(
    b.stderr,
    'labelwall: --out-interface: out_interfaces does not apply with hook: input (packets there have no output interface)\n',
  );
  // `status` and `flows` read the socket: an empty path is refused the same way.
  for (const cmd of ['status', 'flows']) {
    const e = await lw([cmd, '--control-socket', '']);
    assert.equal(e.code, 2, cmd);
    assert.equal(e.stderr, 'labelwall: --control-socket: must not be empty\n', cmd);
  }
  // Valid flags get as far as the key file (whose mode is refused): no flag problem.
  const c = await lw([
    'verifier',
    '--key-file',
    keyFile,
    '--control-socket',
    sock,
    '--in-interface',
    'eth+',
    '--family',
    'ipv4',
    '--queues',
    '2',
    '--hook',
    'forward',
  ]);
  assert.equal(c.code, 2);
  assert.match(c.stderr, /^labelwall: key file .*open\.key.*\n$/);
});

test("withOverrides: a problem under a flag's key names the flag; the other problems keep file:line:col", () => {
  const cfg = parseConfig('verifier:\n  queues: 2\n', 'v.yaml');
  assert.throws(
    () =>
      withOverrides(cfg, [
        { path: ['verifier', 'families'], value: ['ipv5'], flag: '--family' },
        { path: ['verifier', 'queue_base'], value: 65535, flag: '--queue-base' },
      ]),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.deepEqual(
        e.problems.map((p) => [p.flag, p.path, p.message]),
        [
          ['--family', 'verifier.families[0]', 'must be one of ipv4, ipv6, got "ipv5" (did you mean "ipv4"?)'],
          ['--queue-base', 'verifier.queue_base', 'queues 65535..65536 run past the last queue number 65535'],
        ],
      );
      return true;
    },
  );
  const ok = withOverrides(defaultConfig(), [{ path: ['verifier', 'families'], value: ['ipv4'], flag: '--family' }]);
  assert.deepEqual(ok.verifier.families, ['ipv4']);
  assert.equal(withOverrides(cfg, []).verifier.queues, 2);
});

test('cleanup without the iptables tools on PATH says so and exits 1, touching nothing', async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('needs root: without CAP_NET_ADMIN cleanup stops earlier, at "needs root"');
    return;
  }
  const r = await lw(['cleanup'], { PATH: '/nonexistent' });
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /^labelwall cleanup: iptables, iptables-restore, ip6tables, ip6tables-restore not found on PATH \(\/nonexistent\).*nothing removed$/m,
  );
});

test('demo --iperf-seconds: an integer 1-600, anything else refused by the option parser (before the demo builds anything)', () => {
  // The parser of the registered option itself: commander runs it while parsing, before any action.
  const demo = buildProgram().commands.find((c) => c.name() === 'demo');
  const opt = demo?.options.find((o) => o.long === '--iperf-seconds');
  assert.ok(opt?.parseArg, 'demo has --iperf-seconds with a parser');
  const parse = (v: string): unknown => opt.parseArg!(v, undefined);
  assert.equal(opt.defaultValue, 3);
  assert.equal(parse('1'), 1);
  assert.equal(parse('600'), 600);
  assert.equal(parse('10'), 10);
  for (const [v, got] of [
    ['abc', '"abc"'],
    ['0', '0'],
    ['-3', '-3'],
    ['601', '601'],
    ['1e1', '"1e1"'],
    ['0x2', '"0x2"'],
    ['2.5', '"2.5"'],
    ['', '""'],
  ]) {
    assert.throws(
      () => parse(v!),
      (e: unknown) =>
        e instanceof CliError && e.exitCode === 2 && e.message === `--iperf-seconds: must be an integer from 1 to 600, got ${got}`,
      v,
    );
  }
  // The shared rule: decimal digits only, as the daemons' integer flags.
  assert.equal(int('12'), 12);
  assert.equal(int('1e1'), '1e1');
  assert.equal(intFlag('--n', 0, 5)('0'), 0);
});

test('status / flows --control-socket: a path that exists and is not a socket says so; a missing one says nothing listens', async () => {
  const file = path.join(dir, 'regular-file');
  fs.writeFileSync(file, 'not a socket\n');
  const folder = path.join(dir, 'a-folder');
  fs.mkdirSync(folder, { recursive: true });
  await assert.rejects(controlGet(file, '/status'), {
    message: `${file} is not a socket (a regular file): give the control socket of a running labelwall (--control-socket)`,
  });
  await assert.rejects(controlGet(folder, '/flows'), { message: new RegExp(`^${folder} is not a socket \\(a directory\\)`) });
  await assert.rejects(controlGet(path.join(dir, 'none.sock'), '/status'), {
    message: /^nothing is listening on .*none\.sock: is labelwall running\?/,
  });
  // Through the CLI: one line, exit 1.
  for (const cmd of ['status', 'flows']) {
    const r = await lw([cmd, '--control-socket', file]);
    assert.equal(r.code, 1, cmd);
    assert.equal(
      r.stderr,
      `labelwall ${cmd}: ${file} is not a socket (a regular file): give the control socket of a running labelwall (--control-socket)\n`,
    );
  }
});
