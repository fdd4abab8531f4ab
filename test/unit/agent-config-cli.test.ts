// Config mistakes through the real CLI: `labelwall agent --config FILE` refuses each kind of
// mistake in the egress/identity sections with its own precise message (file:line:col: key:
// reason) and exit code 2, before touching iptables or queues. Flag mistakes likewise.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pool } from '../helpers/pool.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(root, 'bin', 'labelwall');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-agentcfg-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const keyFile = path.join(dir, 'k.key');
fs.writeFileSync(keyFile, `${'ab'.repeat(32)}\n`, { mode: 0o600 });

function lw(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [bin, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // A case that wrongly got past validation would start an agent: never let it run.
    const t = setTimeout(() => c.kill('SIGKILL'), 20_000);
    c.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

const rule = (body: string): string => `agent:\n  egress:\n    rules:\n      - ${body}\n`;

// [case, file content, the exact problem line after "FILE:"]
const cases: Array<[string, string, string]> = [
  [
    'yaml syntax',
    'agent:\n  egress:\n    rules: [\n',
    '4:1: (document): YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]',
  ],
  ['unknown key', 'agent:\n  egress:\n    rulez: []\n', '3:5: agent.egress.rulez: unknown key "rulez" (did you mean "rules"?)'],
  ['bad action', rule('action: reject'), '4:17: agent.egress.rules[0].action: must be one of allow, deny, log, got "reject"'],
  ['missing action', rule('app: { exe: /usr/bin/curl }'), '4:9: agent.egress.rules[0]: missing required key "action"'],
  [
    'bad default',
    'agent:\n  egress:\n    default: alow\n',
    '3:14: agent.egress.default: must be one of allow, deny, log, got "alow" (did you mean "allow"?)',
  ],
  [
    'bad sha256',
    rule('app: { sha256: "abc" }\n        action: deny'),
    '4:24: agent.egress.rules[0].app.sha256: must be a SHA-256 digest: exactly 64 hex digits, got "abc"',
  ],
  [
    'unquoted digest',
    rule(`app: { sha256: ${'1234567890'.repeat(6)}1234 }\n        action: deny`),
    '4:24: agent.egress.rules[0].app.sha256: must be a SHA-256 digest: exactly 64 hex digits, got a number too large to be read exactly (not shown) (quote the value: YAML read it as a number)',
  ],
  [
    'cidr host bits',
    rule('dst: { cidr: [10.1.2.3/8] }\n        action: deny'),
    '4:23: agent.egress.rules[0].dst.cidr[0]: bad CIDR: "10.1.2.3/8" has host bits set (did you mean "10.0.0.0/8"?)',
  ],
  [
    'bad port range',
    rule('dst: { ports: ["80-70"] }\n        action: deny'),
    '4:24: agent.egress.rules[0].dst.ports[0]: bad port: "80-70": range start 80 is greater than its end 70',
  ],
  [
    'ports with icmp',
    rule('dst: { proto: icmp, ports: [80] }\n        action: deny'),
    '4:36: agent.egress.rules[0].dst.ports: ports do not apply to proto icmp',
  ],
  [
    'duplicate rule name',
    'agent:\n  egress:\n    rules:\n      - { name: x, action: deny }\n      - { name: x, action: allow }\n',
    '5:17: agent.egress.rules[1].name: rule name "x" is already used by rules[0]',
  ],
  [
    'relative exe',
    rule('app: { exe: curl }\n        action: deny'),
    '4:21: agent.egress.rules[0].app.exe: "curl" can never match: executable paths are absolute (write "/usr/bin/curl" or "**/curl")',
  ],
  [
    'bad regex',
    rule('app: { cmdline: "(unclosed" }\n        action: deny'),
    '4:25: agent.egress.rules[0].app.cmdline: bad regular expression (RE2 syntax: no backreferences or lookaround): missing closing ): `(unclosed`',
  ],
  [
    'bad glob',
    rule('app: { cgroup: "[abc" }\n        action: deny'),
    '4:24: agent.egress.rules[0].app.cgroup: bad glob "[abc": Missing closing: "]" - use "\\\\]" to match literal characters',
  ],
  [
    'bad holders',
    rule('app: { exe: /bin/sh, holders: every }\n        action: deny'),
    '4:39: agent.egress.rules[0].app.holders: must be one of any, all, got "every"',
  ],
  ['bad ebpf mode', 'agent:\n  identity:\n    ebpf: maybe\n', '3:11: agent.identity.ebpf: must be one of auto, on, off, got "maybe"'],
];

test('each kind of config mistake: its own message with file:line:col and key, exit 2', async () => {
  const results = await pool(cases, 4, async ([name, text], i) => {
    const file = path.join(dir, `case${i}.yaml`);
    fs.writeFileSync(file, text);
    return {
      name,
      file,
      r: await lw(['agent', '--key-file', keyFile, '--config', file, '--control-socket', path.join(dir, `c${i}.sock`)]),
    };
  });
  const seen = new Set<string>();
  results.forEach(({ name, file, r }, i) => {
    assert.equal(r.code, 2, `${name}: exit code (stderr: ${r.stderr})`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines[0], 'labelwall: invalid config:', name);
    assert.deepEqual(lines.slice(1), [`${file}:${cases[i]![2]}`], name);
    seen.add(lines[1]!.slice(file.length));
  });
  assert.equal(seen.size, cases.length, 'every mistake has its own message');
});

test('several mistakes in one file: all listed, by line', async () => {
  const file = path.join(dir, 'many.yaml');
  fs.writeFileSync(
    file,
    'agent:\n  egress:\n    default: deny\n    unknown: maybe\n    rules:\n      - dst: { cidr: [fd00::1/8] }\n        action: allow\n      - acton: deny\n',
  );
  const r = await lw(['agent', '--key-file', keyFile, '--config', file]);
  assert.equal(r.code, 2);
  const lines = r.stderr.trim().split('\n').slice(1);
  assert.deepEqual(
    lines.map((l) =>
      l
        .slice(file.length + 1)
        .split(':')
        .slice(0, 3)
        .join(':'),
    ),
    [
      '4:14: agent.egress.unknown',
      '6:23: agent.egress.rules[0].dst.cidr[0]',
      '8:9: agent.egress.rules[1]',
      '8:9: agent.egress.rules[1].acton',
    ],
    r.stderr,
  );
});

test('a config file that cannot be read, and egress flag mistakes: precise messages, exit 2', async () => {
  const missing = path.join(dir, 'nope.yaml');
  const [a, b, c] = await Promise.all([
    lw(['agent', '--key-file', keyFile, '--config', missing]),
    lw(['agent', '--key-file', keyFile, '--egress', '--queue-base', '100', '--egress-queue', '100']),
    lw(['agent', '--key-file', keyFile, '--no-egress', '--egress-queue', '7']),
  ]);
  assert.equal(a.code, 2);
  assert.equal(a.stderr, `labelwall: invalid config:\n${missing}:1:1: (document): cannot read config file: no such file\n`);
  assert.equal(b.code, 2);
  assert.equal(b.stderr, 'labelwall: --egress-queue 100 is one of the labelling queues 100..100: pick another number\n');
  assert.equal(c.code, 2);
  assert.equal(c.stderr, 'labelwall: --egress-queue: egress policy is off (--no-egress, or no --config); give --egress or a config file\n');
});
