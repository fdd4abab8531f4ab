import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EgressPolicy } from '../../src/config/model.js';
import { parseConfig } from '../../src/config/load.js';
import { EgressGate, flowKey } from '../../src/policy/egress-gate.js';
import type { EgressLogRecord } from '../../src/policy/egress.js';
import type { Attribution, FlowTuple, ProcessInfo } from '../../src/identity/types.js';

function policy(yaml: string): EgressPolicy {
  return parseConfig(`agent:\n  egress:\n${yaml.replace(/^/gm, '    ')}\n`, 'p.yaml').agent.egress;
}

const proc = (pid: number, exe: string): ProcessInfo => ({
  pid,
  ppid: 1,
  exe,
  exeDeleted: false,
  cmdline: [exe],
  uid: 1000,
  user: 'alice',
  cgroup: '/',
});
const tcp = (sport: number, dport = 443): FlowTuple => ({ family: 4, proto: 'tcp', src: '10.0.0.1', sport, dst: '10.0.0.2', dport });

function setup(yaml: string, who: Record<number, ProcessInfo[]>) {
  let now = 1_000_000;
  const logs: EgressLogRecord[] = [];
  const calls: FlowTuple[] = [];
  const gate = new EgressGate({
    policy: policy(yaml),
    attribute: (t): Attribution => {
      calls.push(t);
      const h = who[t.sport] ?? [];
      return h.length > 0
        ? { socket: { inode: t.sport, uid: 1000 }, holders: h, unknown: false }
        : { holders: [], unknown: true, reason: 'gone' };
    },
    log: (r) => logs.push(r),
    now: () => now,
    idleMs: { tcp: 10_000, udp: 5_000 },
    maxFlows: 3,
  });
  return { gate, logs, calls, tick: (ms: number) => (now += ms) };
}

test('first packet judged and logged once; later packets reuse the decision', () => {
  const { gate, logs, calls, tick } = setup(
    `default: deny
rules:
  - { name: curl, app: { exe: /usr/bin/curl }, action: allow }`,
    { 1000: [proc(5, '/usr/bin/curl')], 1001: [proc(6, '/usr/bin/nc')] },
  );
  const a = gate.packet(tcp(1000), true);
  assert.equal(a.action, 'allow');
  assert.equal(a.rule, 'curl');
  assert.deepEqual(a.holders, [{ pid: 5, exe: '/usr/bin/curl', uid: 1000, user: 'alice' }]);
  tick(100);
  assert.equal(gate.packet(tcp(1000)).packets, 2);
  tick(100);
  gate.packet(tcp(1000), true); // SYN retransmission within retransmitMs: same decision
  assert.equal(calls.length, 1);
  assert.equal(logs.length, 1);
  assert.equal(logs[0]!.rule, 'curl');
  assert.equal(gate.packet(tcp(1001), true).action, 'deny');
  assert.equal(logs.length, 2);
  gate.labelled(tcp(1000), 1200);
  gate.labelled(tcp(1000), 300);
  assert.equal(gate.table().find((e) => e.tuple.sport === 1000)!.bytesLabelled, 1500);
});

test('policy reload applies to new flows only; idle flows expire; a new SYN later is judged again', () => {
  const { gate, calls, tick } = setup('default: allow', { 1000: [proc(5, '/usr/bin/curl')], 1002: [proc(5, '/usr/bin/curl')] });
  assert.equal(gate.packet(tcp(1000), true).action, 'allow');
  gate.setPolicy(policy('default: deny'));
  assert.equal(gate.packet(tcp(1000)).action, 'allow', 'existing flow keeps its decision');
  assert.equal(gate.packet(tcp(1002), true).action, 'deny');
  tick(5000);
  assert.equal(gate.packet(tcp(1000), true).action, 'deny', 'a SYN long after the first is a new flow');
  assert.equal(calls.length, 3);
  tick(10_001);
  assert.equal(gate.table().length, 0, 'all idle past 10 s');
});

test('unknown attribution, table bound, ICMP key ignores dport', () => {
  const { gate } = setup('unknown: deny', { 1: [proc(1, '/bin/a')], 2: [proc(2, '/bin/b')], 3: [proc(3, '/bin/c')] });
  const u = gate.packet(tcp(999), true);
  assert.equal(u.action, 'deny');
  assert.equal(u.rule, 'unknown');
  assert.equal(u.unknown, true);
  for (const p of [1, 2, 3]) gate.packet(tcp(p), true);
  assert.equal(gate.size, 3, 'bounded');
  assert.equal(
    gate.table().some((e) => e.tuple.sport === 999),
    false,
    'least recently seen dropped',
  );
  const icmp: FlowTuple = { family: 4, proto: 'icmp', src: '10.0.0.1', sport: 77, dst: '10.0.0.2', dport: 8 };
  assert.equal(flowKey(icmp), flowKey({ ...icmp, dport: 0 }));
});
