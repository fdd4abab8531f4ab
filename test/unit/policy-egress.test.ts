import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EgressPolicy } from '../../src/config/model.js';
import { parseConfig } from '../../src/config/load.js';
import { decideEgress, egressLogRecord, policyNeedsHash, type EgressFlow } from '../../src/policy/egress.js';
import type { Attribution, ProcessInfo } from '../../src/identity/types.js';

function policy(yaml: string): EgressPolicy {
  return parseConfig(`agent:\n  egress:\n${yaml.replace(/^/gm, '    ')}\n`, 'p.yaml').agent.egress;
}

function proc(pid: number, exe: string, over: Partial<ProcessInfo> = {}): ProcessInfo {
  return { pid, ppid: 1, exe, exeDeleted: false, cmdline: [exe], uid: 1000, user: 'alice', cgroup: '/init.scope', ...over };
}

const att = (...holders: ProcessInfo[]): Attribution => ({ socket: { inode: 1, uid: 1000 }, holders, unknown: false });
const unknown: Attribution = { holders: [], unknown: true, reason: 'no process' };
const tcp = (dst: string, dport: number): EgressFlow => ({ family: dst.includes(':') ? 6 : 4, proto: 'tcp', dst, dport });

const curl = proc(10, '/usr/bin/curl');
const bash = proc(11, '/usr/bin/bash');
const py = proc(12, '/usr/bin/python3.11', {
  cmdline: ['/usr/bin/python3', '-m', 'http.server'],
  uid: 0,
  user: 'root',
  cgroup: '/system.slice/web.service',
  unit: 'web.service',
});

test('first match wins, then default', () => {
  const p = policy(`default: deny
rules:
  - { name: r1, app: { exe: /usr/bin/curl }, dst: { ports: ["443"] }, action: allow }
  - { name: r2, app: { exe: "/usr/bin/*" }, action: log }
  - { name: r3, app: { exe: /usr/bin/curl }, action: allow }`);
  assert.deepEqual(decideEgress(p, tcp('10.0.0.1', 443), att(curl)), { action: 'allow', rule: 'r1', matchedHolders: [10] });
  // port 80: r1 misses, r2 matches before r3
  assert.deepEqual(decideEgress(p, tcp('10.0.0.1', 80), att(curl)), { action: 'log', rule: 'r2', matchedHolders: [10] });
  assert.deepEqual(decideEgress(p, tcp('10.0.0.1', 80), att(proc(5, '/opt/x'))), { action: 'deny', rule: 'default', matchedHolders: [] });
});

test('holders any vs all: the inherited-socket case', () => {
  const p = policy(`default: deny
rules:
  - { name: all-curl, app: { exe: /usr/bin/curl, holders: all }, action: allow }
  - { name: any-curl, app: { exe: /usr/bin/curl, holders: any }, action: log }`);
  // bash opened the socket, curl inherited it: not all holders are curl, but one is.
  const d = decideEgress(p, tcp('10.0.0.1', 80), att(bash, curl));
  assert.deepEqual(d, { action: 'log', rule: 'any-curl', matchedHolders: [10] });
  assert.deepEqual(decideEgress(p, tcp('10.0.0.1', 80), att(curl, proc(20, '/usr/bin/curl'))), {
    action: 'allow',
    rule: 'all-curl',
    matchedHolders: [10, 20],
  });
  assert.equal(decideEgress(p, tcp('10.0.0.1', 80), att(bash)).rule, 'default');
});

test('holders all needs at least one holder; unknown flows go to egress.unknown', () => {
  const p = policy(`default: allow
unknown: deny
rules:
  - { name: all-any-app, app: { holders: all }, action: allow }`);
  assert.deepEqual(decideEgress(p, tcp('10.0.0.1', 80), unknown), { action: 'deny', rule: 'unknown', matchedHolders: [] });
  // holders empty but not flagged unknown is still treated as unknown
  assert.equal(decideEgress(p, tcp('10.0.0.1', 80), { holders: [], unknown: false }).rule, 'unknown');
  assert.equal(decideEgress(p, tcp('10.0.0.1', 80), att(bash)).rule, 'all-any-app');
});

test('destination-only rules apply to unknown flows; app rules never do', () => {
  const p = policy(`unknown: allow
rules:
  - { name: curl-ok, app: { exe: "**" }, action: allow }
  - { name: no-10, dst: { cidr: [10.0.0.0/8] }, action: deny }`);
  assert.equal(decideEgress(p, tcp('10.1.2.3', 80), unknown).rule, 'no-10');
  assert.equal(decideEgress(p, tcp('10.1.2.3', 80), unknown).action, 'deny');
  assert.equal(decideEgress(p, tcp('192.168.0.1', 80), unknown).rule, 'unknown');
  assert.equal(decideEgress(p, tcp('10.1.2.3', 80), att(curl)).rule, 'curl-ok');
});

test('destination matching: cidr, ports, proto, icmp ignores ports, bytes or text', () => {
  const p = policy(`default: deny
rules:
  - { name: v6, dst: { cidr: ["fd00::/8"], proto: tcp }, action: allow }
  - { name: dns, dst: { cidr: [10.0.0.53/32], ports: ["53"], proto: udp }, action: allow }
  - { name: ping, dst: { proto: icmp }, action: log }
  - { name: hi, dst: { ports: ["8000-9000"] }, action: allow }`);
  assert.equal(decideEgress(p, tcp('fd00::5', 1), att(curl)).rule, 'v6');
  assert.equal(decideEgress(p, { family: 6, proto: 'udp', dst: 'fd00::5', dport: 1 }, att(curl)).rule, 'default');
  assert.equal(decideEgress(p, { family: 4, proto: 'udp', dst: '10.0.0.53', dport: 53 }, att(curl)).rule, 'dns');
  assert.equal(decideEgress(p, { family: 4, proto: 'tcp', dst: '10.0.0.53', dport: 53 }, att(curl)).rule, 'default');
  assert.equal(decideEgress(p, { family: 4, proto: 'udp', dst: new Uint8Array([10, 0, 0, 53]), dport: 53 }, att(curl)).rule, 'dns');
  assert.equal(decideEgress(p, { family: 4, proto: 'icmp', dst: '1.1.1.1', dport: 0 }, att(curl)).rule, 'ping');
  assert.equal(decideEgress(p, tcp('1.1.1.1', 8500), att(curl)).rule, 'hi');
  assert.equal(decideEgress(p, tcp('1.1.1.1', 9001), att(curl)).rule, 'default');
  // A ports rule never matches ICMP even with proto any.
  const q = policy(`default: deny
rules:
  - { name: p0, dst: { ports: ["1-65535"] }, action: allow }`);
  assert.equal(decideEgress(q, { family: 4, proto: 'icmp', dst: '1.1.1.1', dport: 0 }, att(curl)).rule, 'default');
});

test('app fields: sha256, user name or uid, cgroup unit or path, cmdline regex; all fields must hold', () => {
  const h = 'ab'.repeat(32);
  const p = policy(`default: deny
rules:
  - { name: hash, app: { sha256: "${h.toUpperCase()}" }, action: deny }
  - { name: uid0-web, app: { user: 0, cgroup: "*.service", cmdline: "-m http\\\\.server" }, action: allow }
  - { name: alice-slice, app: { user: alice, cgroup: "/user.slice/**" }, action: log }
  - { name: alice, app: { user: alice, exe: /usr/bin/curl }, action: allow }`);
  assert.equal(decideEgress(p, tcp('1.1.1.1', 1), att({ ...bash, sha256: h })).rule, 'hash');
  assert.equal(decideEgress(p, tcp('1.1.1.1', 1), att(py)).rule, 'uid0-web');
  assert.equal(decideEgress(p, tcp('1.1.1.1', 1), att({ ...py, cmdline: ['/usr/bin/python3', 'x.py'] })).rule, 'default');
  assert.equal(
    decideEgress(p, tcp('1.1.1.1', 1), att({ ...curl, cgroup: '/user.slice/user-1000.slice/session-2.scope' })).rule,
    'alice-slice',
  );
  assert.equal(decideEgress(p, tcp('1.1.1.1', 1), att(curl)).rule, 'alice');
  assert.equal(decideEgress(p, tcp('1.1.1.1', 1), att({ ...curl, user: 'bob', uid: 1001 })).rule, 'default');
  // container id matched by the cgroup glob
  const c = policy(`default: deny
rules:
  - { name: ctr, app: { cgroup: "0123*" }, action: allow }`);
  const id = `0123${'f'.repeat(60)}`;
  assert.equal(
    decideEgress(
      c,
      tcp('1.1.1.1', 1),
      att({ ...curl, cgroup: `/system.slice/docker-${id}.scope`, unit: `docker-${id}.scope`, containerId: id }),
    ).rule,
    'ctr',
  );
});

test('the renamed copy of a denied binary is still denied by hash', () => {
  const h = 'cd'.repeat(32);
  const p = policy(`default: allow
rules:
  - { name: no-nc, app: { sha256: "${h}" }, action: deny }`);
  assert.equal(decideEgress(p, tcp('1.1.1.1', 1), att(proc(3, '/tmp/totally-not-nc', { sha256: h }))).action, 'deny');
  assert.equal(decideEgress(p, tcp('1.1.1.1', 1), att(proc(3, '/usr/bin/nc', { sha256: 'ee'.repeat(32) }))).action, 'allow');
  // unknown hash (exe unreadable) does not match a hash rule
  assert.equal(decideEgress(p, tcp('1.1.1.1', 1), att(proc(3, '/usr/bin/nc'))).action, 'allow');
});

test('log record carries flow, identity, rule and which holders matched', () => {
  const p = policy(`rules:
  - { name: curl, app: { exe: /usr/bin/curl }, action: log }`);
  const a = att(bash, { ...curl, exeDeleted: true, sha256: 'ab'.repeat(32), unit: 'x.service' });
  const flow = { family: 4 as const, proto: 'tcp' as const, dst: new Uint8Array([10, 0, 0, 9]), dport: 443, src: '10.0.0.1', sport: 5555 };
  const d = decideEgress(p, flow, a);
  const r = egressLogRecord(flow, a, d);
  assert.equal(r.event, 'egress');
  assert.equal(r.action, 'log');
  assert.equal(r.rule, 'curl');
  assert.equal(r.dst, '10.0.0.9');
  assert.equal(r.src, '10.0.0.1');
  assert.equal(r.sport, 5555);
  assert.deepEqual(r.socket, { inode: 1, uid: 1000 });
  assert.deepEqual(
    r.holders.map((h) => [h.pid, h.matched]),
    [
      [11, false],
      [10, true],
    ],
  );
  assert.equal(r.holders[1]!.exeDeleted, true);
  assert.equal(r.holders[1]!.unit, 'x.service');
  assert.equal(r.holders[0]!.exeDeleted, undefined);
  // JSON round trip keeps everything (no bigint, no bytes)
  assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
  const u = egressLogRecord(
    { family: 6, proto: 'udp', dst: 'fd00::1', dport: 53 },
    unknown,
    decideEgress(p, { family: 6, proto: 'udp', dst: 'fd00::1', dport: 53 }, unknown),
  );
  assert.equal(u.unknown, true);
  assert.equal(u.rule, 'unknown');
  assert.equal(u.reason, 'no process');
  assert.equal(policyNeedsHash(p), false);
  assert.equal(policyNeedsHash(policy(`rules:\n  - { app: { sha256: "${'a'.repeat(64)}" }, action: deny }`)), true);
});
