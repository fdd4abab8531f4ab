// `labelwall check-config` (exit 0 valid, 2 with every problem as FILE:LINE:COL, key files
// checked, --role resolves as the daemon would) and `labelwall version --json` (the package
// version, profiles, libcrypto, kernel and its features, compared with what the host says).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { iptablesBackend, moduleState } from '../../src/cli/version.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = path.join(root, 'bin', 'labelwall');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-check-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function lw(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: dir });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
function write(name: string, text: string, mode = 0o600): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text, { mode });
  fs.chmodSync(p, mode);
  return p;
}
const key = write('site.key', `${'ab'.repeat(32)}\n`);

test('check-config: a valid file exits 0 and says so (also --role agent and verifier)', () => {
  const f = write('ok.yaml', `keys:\n  site: ${key}\nagent:\n  key: site\nmetrics:\n  listen: 9464\n`);
  const r = lw('check-config', f);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${f}: valid\n`);
  assert.equal(lw('check-config', f, '--role', 'agent').stdout, `${f}: valid for the agent\n`);
  assert.equal(lw('check-config', f, '--role', 'verifier').code, 0);
});

test('check-config: every problem listed as FILE:LINE:COL: KEY: REASON, exit 2', () => {
  const f = write('bad.yaml', 'agent:\n  queues: 0\n  fail: opne\nmetrics:\n  listen: "localhost:1"\n');
  const r = lw('check-config', f);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.deepEqual(r.stderr.trim().split('\n'), [
    `labelwall: ${f}:2:11: agent.queues: must be an integer from 1 to 64, got 0`,
    `labelwall: ${f}:3:9: agent.fail: must be one of closed, open, got "opne" (did you mean "open"?)`,
    `labelwall: ${f}:5:11: metrics.listen: "localhost" is not an IP address (host names are not resolved: give the address)`,
  ]);
  const j = JSON.parse(lw('check-config', f, '--json').stdout) as { valid: boolean; problems: Array<{ line: number; path: string }> };
  assert.equal(j.valid, false);
  assert.deepEqual(
    j.problems.map((p) => [p.line, p.path]),
    [
      [2, 'agent.queues'],
      [3, 'agent.fail'],
      [5, 'metrics.listen'],
    ],
  );
});

test('check-config: key files are checked (mode), --role agent needs a labelling key; unreadable config exits 2', () => {
  const open = write('open.key', `${'cd'.repeat(32)}\n`, 0o644);
  const f = write('keys.yaml', `keys:\n  site: ${key}\n  old: ${open}\n`);
  const r = lw('check-config', f);
  assert.equal(r.code, 2);
  // At the entry's line and column, like every other problem.
  assert.match(r.stderr, new RegExp(`^labelwall: ${f}:3:8: keys\\.old: .*${open}.*(group|others)`, 'm'));
  const noKey = write('nokey.yaml', 'verifier:\n  hook: input\n');
  assert.equal(lw('check-config', noKey).code, 0, 'no key is fine for the file alone');
  const a = lw('check-config', noKey, '--role', 'agent');
  assert.equal(a.code, 2);
  assert.match(a.stderr, /^labelwall: .*nokey\.yaml:1:1: agent: no labelling key/m);
  const missing = lw('check-config', path.join(dir, 'absent.yaml'));
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /absent\.yaml:1:1: \(document\): cannot read config file/);
  assert.equal(lw('check-config', f, '--role', 'router').code, 2, 'a bad --role is a usage error');
});

test('check-config: a key pasted as a key name or an unquoted 0x value is never echoed, in text or --json', () => {
  const hex = 'ab'.repeat(32);
  // Control: a name that is not key-like is listed among the names defined.
  const plain = write('names.yaml', `keys:\n  site: ${key}\n  other: ${key}\nagent:\n  key: nosuch\n`);
  assert.match(lw('check-config', plain).stderr, /nosuch" is not defined under keys \(defined: site, other\)/);
  const pasted = write('pasted.yaml', `keys:\n  site: ${key}\n  ${hex}: ${key}\nagent:\n  key: nosuch\n`);
  const number = write('number.yaml', `keys:\n  site: 0x${hex}\n`);
  for (const f of [pasted, number]) {
    for (const r of [lw('check-config', f), lw('check-config', f, '--json')]) {
      assert.equal(r.code, 2);
      const out = r.stdout + r.stderr;
      assert.ok(!out.toLowerCase().includes('abababababababab'), out);
      // 0x + 64 hex digits as a YAML number is about 7.76e+76: its leading digits are the key's.
      assert.doesNotMatch(out, /7\.76\d*e\+76/);
    }
  }
  assert.match(
    lw('check-config', pasted).stderr,
    /pasted\.yaml:5:\d+: agent\.key: key "nosuch" is not defined under keys \(defined: site, <looks like key material: not shown>\)/,
  );
  assert.match(lw('check-config', number).stderr, /number\.yaml:2:\d+: keys\.site: .*a number too large to be read exactly \(not shown\)/);
});

test('version --json: package version, profiles with format versions, Node, libcrypto, kernel, features as the host reports them', () => {
  const r = lw('version', '--json');
  assert.equal(r.code, 0, r.stderr);
  const v = JSON.parse(r.stdout);
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
  assert.equal(v.labelwall, pkg.version);
  assert.deepEqual(
    v.profiles.map((p: { name: string; formatVersion: string }) => [p.name, p.formatVersion]),
    [
      ['compat', '0'],
      ['v1', '1'],
      ['any', 'v1+compat'],
    ],
  );
  assert.equal(v.node, process.versions.node);
  assert.match(v.openssl.libcrypto, /^OpenSSL 3\.\d+\.\d+/);
  assert.equal(v.kernel, os.release());
  const ipt = execFileSync('iptables', ['-V'], { encoding: 'utf8' });
  assert.equal(v.features.iptables.backend, /nf_tables/.test(ipt) ? 'nft' : 'legacy');
  assert.equal(v.features.nfnetlinkQueue === 'loaded', fs.existsSync('/proc/net/netfilter/nfnetlink_queue'));
  assert.equal(typeof v.features.ebpf.usable, 'boolean');
  // Root with a cgroup2 mount (the test machines): eBPF works, as identity-bpf's e2e test shows.
  if (process.getuid?.() === 0 && fs.existsSync('/sys/fs/cgroup/cgroup.controllers'))
    assert.equal(v.features.ebpf.usable, true, v.features.ebpf.reason);
  const text = lw('version');
  assert.match(text.stdout, new RegExp(`^labelwall ${pkg.version.replace(/\./g, '\\.')}\\n`));
  assert.match(text.stdout, /^iptables: (nft|legacy)/m);
  assert.equal(lw('--version').stdout.trim(), pkg.version);
});

test('version: module state and iptables backend parsing (pure)', () => {
  const files: Record<string, string> = {
    '/proc/modules': 'nf_conntrack 176128 3 - Live 0x0\n',
    '/lib/modules/6.1.0/modules.dep': 'kernel/net/netfilter/nfnetlink_queue.ko.xz: kernel/net/netfilter/nfnetlink.ko.xz\n',
  };
  const read = (p: string): string | undefined => files[p];
  assert.equal(moduleState('nf_conntrack', [], read, '6.1.0'), 'loaded');
  assert.equal(moduleState('nfnetlink_queue', ['/proc/net/netfilter/nfnetlink_queue'], read, '6.1.0'), 'available');
  assert.equal(moduleState('xt_nothing', [], read, '6.1.0'), 'missing');
  assert.deepEqual(iptablesBackend('iptables v1.8.9 (nf_tables)'), { backend: 'nft', version: '1.8.9' });
  assert.deepEqual(iptablesBackend('iptables v1.8.7 (legacy)'), { backend: 'legacy', version: '1.8.7' });
  assert.deepEqual(iptablesBackend(undefined), { backend: 'missing' });
});
