import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { loadConfig, parseConfig, defaultConfig } from '../../src/config/load.js';
import { ConfigError, type ConfigProblem } from '../../src/config/messages.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Parses text that must fail and returns its problems. */
function problems(text: string): ConfigProblem[] {
  try {
    parseConfig(text, 'test.yaml');
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    return e.problems;
  }
  assert.fail('config was accepted but should have been rejected');
}

/** Asserts exactly one problem, at `line`, for `path`, whose message matches `re`. */
function one(text: string, line: number, path: string, re: RegExp): ConfigProblem {
  const ps = problems(text);
  assert.equal(ps.length, 1, `expected one problem, got:\n${ps.map((p) => `${p.line}: ${p.path}: ${p.message}`).join('\n')}`);
  const p = ps[0]!;
  assert.equal(p.file, 'test.yaml');
  assert.equal(p.line, line, `line of ${p.path}: ${p.message}`);
  assert.equal(p.path, path);
  assert.match(p.message, re);
  return p;
}

test('empty file gives every default', () => {
  const c = parseConfig('', 'empty.yaml');
  assert.equal(c.log.level, 'info');
  assert.deepEqual(c.agent.families, ['ipv4', 'ipv6']);
  assert.equal(c.agent.fail, 'closed');
  assert.equal(c.agent.queueBase, 100);
  assert.equal(c.agent.egress.default, 'allow');
  assert.equal(c.agent.egress.unknown, 'allow');
  assert.equal(c.verifier.hook, 'forward');
  assert.equal(c.verifier.action, 'drop');
  assert.equal(c.verifier.queueBase, 200);
  assert.deepEqual(c.verifier.mark, {
    mask: 0xf00,
    valid: 0x100,
    invalid: 0x200,
    unlabelled: 0x300,
    malformed: 0x400,
    tagMask: 0xffff0000,
  });
  assert.equal(c.agent.profile, 'v1');
  assert.equal(c.verifier.profile, 'v1');
  assert.deepEqual(c.tags, {});
  assert.equal(c.control.socket, undefined, 'not given: each role resolves its own (/run/labelwall/<role>.sock)');
  assert.equal(c.agent.key, undefined);
  assert.deepEqual(c.agent.identity, { bpf: 'auto', exhaustive: false, hash: true, indexIntervalMs: 1000 });
  assert.deepEqual(defaultConfig().agent, c.agent);
});

test('the shipped examples load', () => {
  const dir = join(root, 'examples');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 3);
  for (const f of files) loadConfig(join(dir, f));
  const v = loadConfig(join(dir, 'verifier.yaml'));
  assert.equal(v.verifier.rules.length, 2);
  assert.deepEqual(v.verifier.rules[1]!.ports, [
    { lo: 80, hi: 80 },
    { lo: 443, hi: 443 },
    { lo: 8000, hi: 9000 },
  ]);
  assert.equal(v.verifier.rules[1]!.destinations[1]!.text, 'fd00:1::/64');
  assert.equal(v.verifier.rules[0]!.action, 'mark');
  const a = loadConfig(join(dir, 'agent.yaml'));
  assert.equal(a.agent.egress.rules[3]!.app!.holders, 'all');
  assert.equal(a.agent.egress.rules[2]!.app!.holders, 'any');
  assert.equal(a.agent.egress.default, 'deny');
  assert.equal(a.source, join(dir, 'agent.yaml'));
});

test('values are typed and defaults fill rules', () => {
  const c = parseConfig(
    [
      'keys:',
      '  main: rel/main.key',
      'agent:',
      '  egress:',
      '    rules:',
      `      - app: { sha256: ${'AB'.repeat(32)} }`,
      '        action: deny',
      'verifier:',
      '  action: log',
      '  mark: { mask: "0xff000", valid: 4096, invalid: "0x2000", unlabelled: 0x3000, malformed: "16384" }',
      '  rules:',
      '    - ports: [22, "1000-2000"]',
    ].join('\n'),
    '/etc/lw/c.yaml',
  );
  assert.equal(c.keys.main?.file, '/etc/lw/rel/main.key', 'relative key path resolves against the config folder');
  assert.equal(c.agent.key, 'main', 'the only key is the agent key');
  const r = c.agent.egress.rules[0]!;
  assert.equal(r.name, 'rule-1');
  assert.equal(r.app!.sha256, 'ab'.repeat(32));
  assert.equal(r.app!.holders, 'any');
  assert.equal(r.dst, undefined);
  assert.deepEqual(c.verifier.mark, {
    mask: 0xff000,
    valid: 0x1000,
    invalid: 0x2000,
    unlabelled: 0x3000,
    malformed: 0x4000,
    tagMask: 0xffff0000,
  });
  assert.equal(c.verifier.rules[0]!.action, 'log', 'rule action defaults to verifier.action');
  assert.equal(c.verifier.rules[0]!.keys, undefined);
  assert.deepEqual(c.verifier.rules[0]!.ports, [
    { lo: 22, hi: 22 },
    { lo: 1000, hi: 2000 },
  ]);
});

test('YAML syntax error names its line', () => {
  const ps = problems('log:\n  level: info\nagent: [1, 2\nverifier: {}\n');
  assert.ok(ps.length >= 1);
  assert.match(ps[0]!.message, /^YAML syntax error: /);
  assert.ok(ps[0]!.line === 3 || ps[0]!.line === 4, `line ${ps[0]!.line}`);
});

test('duplicate key is a YAML error on the second occurrence', () => {
  const ps = problems('log:\n  level: info\n  level: debug\n');
  assert.equal(ps.length, 1);
  assert.equal(ps[0]!.line, 3);
  assert.match(ps[0]!.message, /unique/);
});

test('unknown key: names it, suggests the nearest valid key', () => {
  const p = one(
    'agent:\n  label:\n    destinaton: []\n',
    3,
    'agent.label.destinaton',
    /unknown key "destinaton" \(did you mean "destinations"\?\)/,
  );
  assert.equal(p.col, 5);
  one('verifer:\n  hook: input\n', 1, 'verifer', /did you mean "verifier"/);
  one('agent:\n  zzzzzzzzzz: 1\n', 2, 'agent.zzzzzzzzzz', /unknown key "zzzzzzzzzz" \(valid keys: key, interfaces, /);
});

test('wrong type', () => {
  one('agent:\n  queues: "two"\n', 2, 'agent.queues', /must be an integer, got "two"/);
  one('agent:\n  interfaces: eth0\n', 2, 'agent.interfaces', /must be a list, got "eth0"/);
  one('log: [info]\n', 1, 'log', /must be a mapping, got a list/);
  one('keys:\n  main: 12\n', 2, 'keys.main', /must be the path of a key file/);
  one('just a string\n', 1, '', /must be a mapping/);
});

test('bad CIDR', () => {
  one(
    'agent:\n  label:\n    destinations: [10.0.0.0/8, 300.1.1.1/32]\n',
    3,
    'agent.label.destinations[1]',
    /bad CIDR: "300\.1\.1\.1\/32" is not an IPv4 or IPv6/,
  );
  one(
    'verifier:\n  rules:\n    - sources:\n        - 10.0.0.0/8\n        - 10.0.0.0/40\n',
    5,
    'verifier.rules[0].sources[1]',
    /prefix length must be 0-32/,
  );
  one(
    'verifier:\n  rules:\n    - destinations: ["fd00::1/8"]\n',
    3,
    'verifier.rules[0].destinations[0]',
    /host bits set \(did you mean "fd00::\/8"\?\)/,
  );
});

test('bad port range', () => {
  one('agent:\n  label:\n    ports: ["80-70"]\n', 3, 'agent.label.ports[0]', /range start 80 is greater than its end 70/);
  one('agent:\n  label:\n    ports: [0]\n', 3, 'agent.label.ports[0]', /port 0 is outside 1-65535/);
  one('agent:\n  label:\n    ports: ["http"]\n', 3, 'agent.label.ports[0]', /not a port or a range/);
  one('agent:\n  label:\n    ports: [true]\n', 3, 'agent.label.ports[0]', /must be a port \(1-65535\) or a range/);
});

test('bad glob and bad regex', () => {
  const rule = (app: string): string => `agent:\n  egress:\n    rules:\n      - action: deny\n        app: ${app}\n`;
  one(rule('{ exe: "/usr/bin/[ab" }'), 5, 'agent.egress.rules[0].app.exe', /bad glob "\/usr\/bin\/\[ab": Missing closing: "\]"/);
  one(rule('{ exe: "python3" }'), 5, 'agent.egress.rules[0].app.exe', /can never match: executable paths are absolute/);
  one(rule('{ cgroup: "*.service{" }'), 5, 'agent.egress.rules[0].app.cgroup', /bad glob/);
  one(
    rule('{ cmdline: "a(b" }'),
    5,
    'agent.egress.rules[0].app.cmdline',
    /bad regular expression \(RE2 syntax: no backreferences or lookaround\): missing closing \): `a\(b`/,
  );
  // Valid JavaScript, but not RE2: refused by the engine that would run it.
  one(
    rule('{ cmdline: "(a)\\\\1" }'),
    5,
    'agent.egress.rules[0].app.cmdline',
    /bad regular expression \(RE2 syntax.*invalid escape sequence/,
  );
  one(rule('{ cmdline: "(?=x)y" }'), 5, 'agent.egress.rules[0].app.cmdline', /bad regular expression \(RE2 syntax.*/);
});

test('bad sha256', () => {
  const rule = (h: string): string => `agent:\n  egress:\n    rules:\n      - action: deny\n        app:\n          sha256: ${h}\n`;
  one(rule('abc123'), 6, 'agent.egress.rules[0].app.sha256', /exactly 64 hex digits, got "abc123"/);
  one(rule('g'.repeat(64)), 6, 'agent.egress.rules[0].app.sha256', /exactly 64 hex digits/);
  parseConfig(rule('f'.repeat(64)), 'ok.yaml');
});

test('unknown action, with a suggestion', () => {
  one(
    'agent:\n  egress:\n    rules:\n      - action: alow\n',
    4,
    'agent.egress.rules[0].action',
    /must be one of allow, deny, log, got "alow" \(did you mean "allow"\?\)/,
  );
  one('verifier:\n  action: reject\n', 2, 'verifier.action', /must be one of drop, mark, log, got "reject"/);
  one('agent:\n  egress:\n    rules:\n      - name: x\n', 4, 'agent.egress.rules[0]', /missing required key "action"/);
});

test('references to undefined keys', () => {
  one('keys:\n  main: /k\nagent:\n  key: other\n', 4, 'agent.key', /key "other" is not defined under keys \(defined: main\)/);
  one(
    'keys:\n  main: /k\n  old: /o\nverifier:\n  rules:\n    - keys: [main, olld]\n',
    6,
    'verifier.rules[0].keys[1]',
    /"olld" is not defined under keys \(did you mean "old"\?\)/,
  );
  one('keys:\n  "bad name": /k\n', 2, 'keys["bad name"]', /invalid name "bad name"/);
});

test('mark bits: fit in mask, distinct, non-zero', () => {
  one('verifier:\n  mark: { valid: 0x1000 }\n', 2, 'verifier.mark.valid', /0x1000 has bits outside the mask 0xf00/);
  one('verifier:\n  mark:\n    valid: 0x100\n    invalid: 0x100\n', 4, 'verifier.mark.invalid', /same value as valid/);
  one('verifier:\n  mark:\n    malformed: 0\n', 3, 'verifier.mark.malformed', /must not be 0/);
  one('verifier:\n  mark:\n    mask: "0xzz"\n', 3, 'verifier.mark.mask', /not a 32-bit unsigned integer/);
});

test('semantic conflicts', () => {
  one(
    'verifier:\n  hook: input\n  rules:\n    - out_interfaces: [eth1]\n',
    4,
    'verifier.rules[0].out_interfaces',
    /does not apply with hook: input/,
  );
  one(
    'agent:\n  egress:\n    rules:\n      - action: deny\n        dst: { proto: icmp, ports: [1] }\n',
    5,
    'agent.egress.rules[0].dst.ports',
    /ports do not apply to proto icmp/,
  );
  one(
    'agent:\n  egress:\n    rules:\n      - { name: a, action: deny }\n      - { name: a, action: allow }\n',
    5,
    'agent.egress.rules[1].name',
    /already used by rules\[0\]/,
  );
  one('agent:\n  queue_base: 65535\n  queues: 2\n', 2, 'agent.queue_base', /run past the last queue number/);
  one('agent:\n  interfaces: ["eth 0"]\n', 2, 'agent.interfaces[0]', /must be an interface name/);
  one('agent:\n  families: [ipv4, ipv4]\n', 2, 'agent.families', /same entry twice/);
});

test('every problem is reported at once, sorted by line', () => {
  const ps = problems(
    [
      'log:',
      '  level: loud', // 2
      'agent:',
      '  fial: open', // 4
      '  label:',
      '    ports: ["9-1"]', // 6
      'verifier:',
      '  queues: 0', // 8
    ].join('\n'),
  );
  assert.deepEqual(
    ps.map((p) => [p.line, p.path]),
    [
      [2, 'log.level'],
      [4, 'agent.fial'],
      [6, 'agent.label.ports[0]'],
      [8, 'verifier.queues'],
    ],
  );
  assert.match(ps[1]!.message, /did you mean "fail"/);
});

test('ConfigError message lists file:line:col: path: reason', () => {
  try {
    parseConfig('log:\n  level: loud\n', '/etc/labelwall/x.yaml');
    assert.fail('accepted');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.message, '/etc/labelwall/x.yaml:2:10: log.level: must be one of trace, debug, info, warn, error, got "loud"');
  }
});

test('unreadable file is a ConfigError', () => {
  assert.throws(
    () => loadConfig('/nonexistent/labelwall.yaml'),
    (e: unknown) => e instanceof ConfigError && /cannot read config file: no such file/.test(e.message),
  );
});

test('an unquoted all-digit digest is flagged as read as a number', () => {
  one(
    `agent:\n  egress:\n    rules:\n      - action: deny\n        app: { sha256: ${'1'.repeat(64)} }\n`,
    5,
    'agent.egress.rules[0].app.sha256',
    /64 hex digits, got .* \(quote the value: YAML read it as a number\)/,
  );
});

test('agent.identity maps onto the attributor options', () => {
  const c = parseConfig('agent:\n  identity: { ebpf: off, exhaustive: true, hash: false, index_interval_ms: 0 }\n', 'i.yaml');
  assert.deepEqual(c.agent.identity, { bpf: 'off', exhaustive: true, hash: false, indexIntervalMs: 0 });
  one('agent:\n  identity:\n    ebpf: yes\n', 3, 'agent.identity.ebpf', /must be one of auto, on, off, got "yes"/);
});
