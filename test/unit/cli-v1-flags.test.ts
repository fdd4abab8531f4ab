// --profile and key ids on the command line: through withOverrides like every flag (the config's
// messages, naming the flag), `--key-file ID=FILE`, and what the resolved agent and verifier get.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultConfig, parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/config/messages.js';
import { parseKeyFlag, resolveAgent, resolveVerifier, UsageError } from '../../src/daemon/resolve.js';
import { agentRulePlan } from '../../src/agent/rules.js';
import { renderRestore } from '../../src/datapath/iptables.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-v1flags-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const k0 = path.join(dir, 'a.key');
const k1 = path.join(dir, 'b.key');
fs.writeFileSync(k0, 'ab'.repeat(32), { mode: 0o600 });
fs.writeFileSync(k1, 'cd'.repeat(32), { mode: 0o600 });

test('--key-file ID=FILE: the id, range and empty file refused', () => {
  assert.deepEqual(parseKeyFlag('/k'), { file: '/k', id: 0 });
  assert.deepEqual(parseKeyFlag('5=/k'), { file: '/k', id: 5 });
  assert.deepEqual(parseKeyFlag('./5=/k'), { file: './5=/k', id: 0 });
  assert.throws(() => parseKeyFlag('8=/k'), /--key-file 8=\/k: key id 8 is not 0-7/);
  assert.throws(() => parseKeyFlag('3='), /no file after '3='/);
});

test("control socket: the role's own by default; any path given (file or flag) is used, the other role's default too", () => {
  const file = (socket: string): ReturnType<typeof parseConfig> =>
    parseConfig(`control:\n  socket: ${socket}\n`, path.join(dir, 'sock.yaml'));
  assert.equal(resolveVerifier(defaultConfig(), { keyFile: [k0] }).controlSocket, '/run/labelwall/verifier.sock');
  assert.equal(resolveAgent(defaultConfig(), { keyFile: [k0] }).controlSocket, '/run/labelwall/agent.sock');
  assert.equal(
    resolveVerifier(parseConfig('log:\n  level: info\n', 'x.yaml'), { keyFile: [k0] }).controlSocket,
    '/run/labelwall/verifier.sock',
  );
  for (const sock of ['/run/labelwall/agent.sock', '/run/labelwall/verifier.sock', '/tmp/lw.sock']) {
    assert.equal(resolveVerifier(file(sock), { keyFile: [k0] }).controlSocket, sock, `verifier, file: ${sock}`);
    assert.equal(resolveAgent(file(sock), { keyFile: [k0] }).controlSocket, sock, `agent, file: ${sock}`);
    assert.equal(resolveVerifier(defaultConfig(), { keyFile: [k0], controlSocket: sock }).controlSocket, sock, `verifier, flag: ${sock}`);
    assert.equal(resolveAgent(defaultConfig(), { keyFile: [k0], controlSocket: sock }).controlSocket, sock, `agent, flag: ${sock}`);
  }
  // The flag wins over the file.
  assert.equal(resolveVerifier(file('/tmp/a.sock'), { keyFile: [k0], controlSocket: '/tmp/b.sock' }).controlSocket, '/tmp/b.sock');
});

test('agent: v1 by default, --profile compat, key id from the flag or the config, tags and nat', () => {
  const a = resolveAgent(defaultConfig(), { keyFile: [k0] });
  assert.equal(a.profile, 'v1');
  assert.equal(a.keyId, 0);
  assert.equal(a.tagMask, 0, 'no egress policy: no tag bits used');
  assert.equal(resolveAgent(defaultConfig(), { keyFile: [`3=${k0}`], profile: 'compat' }).profile, 'compat');
  assert.equal(resolveAgent(defaultConfig(), { keyFile: [`3=${k0}`] }).keyId, 3);
  const cfg = parseConfig(
    `keys:\n  a: ${k0}\n  b: { file: ${k1}, id: 6 }\ntags:\n  web: 300\nagent:\n  key: b\n  nat:\n    - { destinations: [10.0.0.0/8], translated: [source] }\n  egress:\n    rules:\n      - { action: allow, tag: web }\n`,
    path.join(dir, 'c.yaml'),
  );
  const r = resolveAgent(cfg, { config: 'c.yaml' });
  assert.equal(r.keyId, 6);
  assert.equal(r.keyFile, k1);
  assert.deepEqual(r.tagNames, { 300: 'web' });
  assert.equal(r.tagMask, 0xffff0000);
  assert.equal(r.nat[0]!.nat, 1);
  assert.equal(r.egress?.policy.rules[0]?.tag, 300);
  const plan = renderRestore(
    agentRulePlan(4, { queues: [100], failOpen: false, interfaces: [], destinations: [], ports: [], egressQueue: 101, tagMask: r.tagMask }),
  );
  // Save before restore: the SYN the egress queue allowed stores its tag, every packet gets it back.
  assert.match(
    plan,
    /-A LABELWALL-AGENT-OUT -o lo -j RETURN\n-A LABELWALL-AGENT-OUT -m mark --mark 0x8\/0x8 -j CONNMARK --save-mark --nfmask 0xffff0000 --ctmask 0xffff0000\n-A LABELWALL-AGENT-OUT -j CONNMARK --restore-mark/,
  );
});

test('agent --profile mistakes: the schema message, naming the flag', () => {
  try {
    resolveAgent(defaultConfig(), { keyFile: [k0], profile: 'v2' });
    assert.fail('accepted');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.message, '--profile: must be one of v1, compat, got "v2" (did you mean "v1"?)');
  }
  const r = spawnSync(process.execPath, [path.join(root, 'bin', 'labelwall'), 'verifier', '--profile', 'anyy', '--key-file', k0], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  assert.equal(r.status, 2);
  assert.equal(r.stderr, 'labelwall: --profile: must be one of v1, compat, any, got "anyy" (did you mean "any"?)\n');
});

test('verifier: { file, id } keys in the worker data, key ids unique per rule, compat exempt; tags, allowNat, epoch window', () => {
  const v = resolveVerifier(defaultConfig(), { keyFile: [k0, `1=${k1}`] });
  assert.equal(v.profile, 'v1');
  assert.deepEqual(v.rules[0]!.keys, [k0, { file: k1, id: 1 }]);
  assert.throws(
    () => resolveVerifier(defaultConfig(), { keyFile: [k0, k1] }),
    (e: unknown) => e instanceof UsageError && /both have key id 0/.test(e.message),
  );
  assert.equal(resolveVerifier(defaultConfig(), { keyFile: [k0, k1], profile: 'compat' }).rules[0]!.keys.length, 2);
  const cfg = parseConfig(
    `keys:\n  a: ${k0}\n  b: { file: ${k1}, id: 2 }\ntags:\n  web: 300\nverifier:\n  profile: any\n  epoch_window: { before: 4, after: 0 }\n  rules:\n    - { keys: [a, b], tags: [web, 7], allow_nat: [source, ports] }\n`,
    path.join(dir, 'v.yaml'),
  );
  const r = resolveVerifier(cfg, { config: 'v.yaml' });
  assert.equal(r.profile, 'any');
  assert.deepEqual(r.epochWindow, { before: 4, after: 0 });
  assert.deepEqual(r.rules[0]!.keys, [k0, { file: k1, id: 2 }]);
  assert.deepEqual(r.rules[0]!.tags, [300, 7]);
  assert.equal(r.rules[0]!.allowNat, 1 | 4);
  // A flag key with an id one of the rule's keys has.
  assert.throws(
    () => resolveVerifier(cfg, { config: 'v.yaml', keyFile: [`2=${k0}`] }),
    /key "b" .* both have key id 2|--key-file 2=.* both have key id 2/,
  );
});
