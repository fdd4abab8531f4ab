// The agent's egress pieces that need no kernel: flow tuples from packets, verdict marks, the
// rule plan with an egress queue, flow keys (packet vs tuple), the labeller keeping the egress
// bits, flag resolution, and the `labelwall flows` table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTcpPacket, buildUdpPacket } from '../../src/wire/build.js';
import { parseIp } from '../../src/util/ip.js';
import { defaultConfig, parseConfig } from '../../src/config/load.js';
import { renderRestore } from '../../src/datapath/iptables.js';
import { flowTupleOf, egressMark } from '../../src/agent/egress.js';
import { flowHashOfPacket, flowHashOfTuple } from '../../src/agent/flow-hash.js';
import { agentRulePlan } from '../../src/agent/rules.js';
import { queueRules } from '../../src/datapath/iptables.js';
import { decideAgentPacket, NF_INET_LOCAL_OUT } from '../../src/agent/decide.js';
import { AGENT_MARK_ALLOW, AGENT_MARK_DENY, AGENT_MARK_DONE, AGENT_MARK_MASK } from '../../src/config/marks.js';
import { compat } from '../../src/label/compat.js';
import { LabelKey } from '../../src/label/keys.js';
import { resolveAgent, UsageError } from '../../src/daemon/resolve.js';
import { flowRow, formatFlows } from '../../src/agent/flows.js';
import type { FlowEntry } from '../../src/policy/egress-gate.js';

const ip = (s: string): Uint8Array => parseIp(s)!;
const SYN = 0x02;

function icmpEcho(family: 4 | 6, ident: number, type?: number): Buffer {
  // An ICMP packet from a UDP one of the same length: protocol byte and the 8-byte header replaced.
  const b = buildUdpPacket({
    family,
    src: ip(family === 4 ? '10.0.0.1' : 'fd00::1'),
    dst: ip(family === 4 ? '10.0.0.2' : 'fd00::2'),
    payload: Buffer.from('ping'),
  });
  const l4 = family === 4 ? 20 : 40;
  b[family === 4 ? 9 : 6] = family === 4 ? 1 : 58;
  b[l4] = type ?? (family === 4 ? 8 : 128);
  b[l4 + 1] = 0;
  b.writeUInt16BE(ident, l4 + 4);
  b.writeUInt16BE(1, l4 + 6);
  return b;
}

test('flowTupleOf: TCP SYN, UDP, ICMP echo (v4 and v6); the echo identifier stands for the port', () => {
  const syn = buildTcpPacket({ family: 4, src: ip('10.0.0.1'), dst: ip('10.0.0.2'), srcPort: 40001, dstPort: 443, flags: SYN });
  assert.deepEqual(flowTupleOf(syn), {
    ok: true,
    syn: true,
    tuple: { family: 4, proto: 'tcp', src: '10.0.0.1', sport: 40001, dst: '10.0.0.2', dport: 443 },
  });
  const ack = buildTcpPacket({ family: 6, src: ip('fd00::1'), dst: ip('fd00::2'), srcPort: 5, dstPort: 6, flags: 0x10 });
  assert.deepEqual(flowTupleOf(ack), {
    ok: true,
    syn: false,
    tuple: { family: 6, proto: 'tcp', src: 'fd00::1', sport: 5, dst: 'fd00::2', dport: 6 },
  });
  const udp = buildUdpPacket({ family: 6, src: ip('fd00::1'), dst: ip('fd00::53'), srcPort: 3333, dstPort: 53 });
  assert.deepEqual(flowTupleOf(udp), {
    ok: true,
    syn: false,
    tuple: { family: 6, proto: 'udp', src: 'fd00::1', sport: 3333, dst: 'fd00::53', dport: 53 },
  });
  assert.deepEqual(flowTupleOf(icmpEcho(4, 777)), {
    ok: true,
    syn: false,
    tuple: { family: 4, proto: 'icmp', src: '10.0.0.1', sport: 777, dst: '10.0.0.2', dport: 0 },
  });
  assert.deepEqual(flowTupleOf(icmpEcho(6, 778)), {
    ok: true,
    syn: false,
    tuple: { family: 6, proto: 'icmp', src: 'fd00::1', sport: 778, dst: 'fd00::2', dport: 0 },
  });
  // Not flows: an echo reply, a truncated packet, garbage.
  assert.deepEqual(flowTupleOf(icmpEcho(4, 1, 0)), { ok: false, reason: 'icmp-type-0' });
  assert.equal(flowTupleOf(syn.subarray(0, 10)).ok, false);
  assert.equal(flowTupleOf(Buffer.from([0x55, 1, 2])).ok, false);
});

test('egressMark: deny and allow bits replace each other, other mark bits stay', () => {
  assert.equal(egressMark(0, 'deny'), AGENT_MARK_DENY);
  assert.equal(egressMark(0, 'allow'), AGENT_MARK_ALLOW);
  assert.equal(egressMark(0, 'log'), AGENT_MARK_ALLOW);
  assert.equal(egressMark(0x80000f01, 'deny'), (0x80000f01 | AGENT_MARK_DENY) >>> 0);
  assert.equal(egressMark(AGENT_MARK_ALLOW | 1, 'deny'), AGENT_MARK_DENY | 1);
  assert.equal(AGENT_MARK_MASK, AGENT_MARK_DONE | AGENT_MARK_DENY | AGENT_MARK_ALLOW);
});

test('labelling keeps the egress decision bits (else the labelled SYN would be queued for a decision again)', () => {
  const key = LabelKey.fromBytes(Buffer.alloc(32, 7));
  const syn = buildTcpPacket({ family: 4, srcPort: 1, dstPort: 2, flags: SYN });
  const d = decideAgentPacket(compat, NF_INET_LOCAL_OUT, syn, AGENT_MARK_ALLOW | 0x5, 1500, key, Buffer.alloc(65536));
  assert.equal(d.counter, 'labelled');
  assert.equal(d.mark, AGENT_MARK_ALLOW | AGENT_MARK_DONE | 0x5);
});

test('rule plan with an egress queue: egress before labelling, denied packets skip labelling, REJECT per protocol', () => {
  const base = { queues: [100, 101], failOpen: false, interfaces: [], destinations: [], ports: [] };
  for (const family of [4, 6] as const) {
    const text = renderRestore(agentRulePlan(family, { ...base, egressQueue: 102 }));
    const out = text.split('\n').filter((l) => l.startsWith('-A LABELWALL-AGENT-OUT'));
    const icmp = family === 4 ? '-p icmp --icmp-type echo-request' : '-p ipv6-icmp --icmpv6-type echo-request';
    const at = family === 4 ? '0>>22&0x3C@0>>17' : '40>>17';
    assert.deepEqual(out, [
      '-A LABELWALL-AGENT-OUT -o lo -j RETURN',
      '-A LABELWALL-AGENT-OUT -m mark --mark 0x4/0x4 -j RETURN',
      '-A LABELWALL-AGENT-OUT -m mark --mark 0x0/0xc -p tcp --syn -m conntrack --ctstate NEW -j NFQUEUE --queue-num 102',
      '-A LABELWALL-AGENT-OUT -m mark --mark 0x0/0xc -p udp -m conntrack --ctstate NEW -j NFQUEUE --queue-num 102',
      `-A LABELWALL-AGENT-OUT -m mark --mark 0x0/0xc ${icmp} -m conntrack --ctstate NEW -j NFQUEUE --queue-num 102`,
      '-A LABELWALL-AGENT-OUT -m mark --mark 0x2/0x2 -j RETURN',
      // Two queues: flows from ephemeral local ports by port bit 1, the rest by the address hash.
      `-A LABELWALL-AGENT-OUT -p tcp -m tcp --sport 1024:65535 -m u32 --u32 "${at}&0x1=0x0" -j NFQUEUE --queue-num 100`,
      `-A LABELWALL-AGENT-OUT -p tcp -m tcp --sport 1024:65535 -m u32 --u32 "${at}&0x1=0x1" -j NFQUEUE --queue-num 101`,
      '-A LABELWALL-AGENT-OUT -p tcp -j NFQUEUE --queue-balance 100:101',
    ]);
    const eg = text.split('\n').filter((l) => l.startsWith('-A LABELWALL-AGENT-EGRESS'));
    const u = family === 4 ? 'icmp-port-unreachable' : 'icmp6-port-unreachable';
    const p =
      family === 4 ? '-p icmp -j REJECT --reject-with icmp-admin-prohibited' : '-p ipv6-icmp -j REJECT --reject-with icmp6-adm-prohibited';
    assert.deepEqual(eg, [
      '-A LABELWALL-AGENT-EGRESS -m mark ! --mark 0x4/0x4 -j RETURN',
      '-A LABELWALL-AGENT-EGRESS -p tcp -j REJECT --reject-with tcp-reset',
      `-A LABELWALL-AGENT-EGRESS -p udp -j REJECT --reject-with ${u}`,
      `-A LABELWALL-AGENT-EGRESS ${p}`,
      '-A LABELWALL-AGENT-EGRESS -j DROP',
    ]);
    assert.match(text, /^\*filter$/m);
  }
  // Fail-open: the egress queue is bypassed when nobody listens, like the labelling queues.
  assert.match(renderRestore(agentRulePlan(4, { ...base, failOpen: true, egressQueue: 102 })), /--queue-num 102 --queue-bypass/);
  // No egress queue: no egress rules and no filter chain at all.
  const none = renderRestore(agentRulePlan(4, base));
  assert.doesNotMatch(none, /conntrack|EGRESS|\*filter/);
});

test('flow keys: the labeller (packet bytes) and the flow table (tuple) agree; different flows differ', () => {
  const flows = [
    { family: 4 as const, src: '10.0.0.1', dst: '10.9.8.7', sport: 40000, dport: 443 },
    { family: 6 as const, src: 'fd00::1', dst: 'fd00:1::2', sport: 51000, dport: 22 },
  ];
  const keys = new Set<number>();
  for (const f of flows) {
    const pkt = buildTcpPacket({
      family: f.family,
      src: ip(f.src),
      dst: ip(f.dst),
      srcPort: f.sport,
      dstPort: f.dport,
      payload: Buffer.alloc(100),
    });
    const k = flowHashOfPacket(pkt);
    assert.equal(k, flowHashOfTuple({ ...f, proto: 'tcp' }));
    keys.add(k);
    keys.add(flowHashOfTuple({ ...f, proto: 'tcp', sport: f.sport + 1 }));
    keys.add(flowHashOfTuple({ ...f, proto: 'udp' }));
  }
  assert.equal(keys.size, 6);
  assert.equal(flowHashOfPacket(icmpEcho(4, 1)), -1, 'ICMP is never labelled');
});

test('resolveAgent: egress on with a config file, off without; --egress / --no-egress override; queue after the labelling queues', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lw-resolve-'));
  try {
    const keyFile = join(dir, 'k.key');
    writeFileSync(keyFile, 'cd'.repeat(32), { mode: 0o600 });
    const cfg = parseConfig('agent:\n  queues: 2\n  egress:\n    default: deny\n    rules:\n      - { action: log }\n', 'x.yaml');
    const on = resolveAgent(cfg, { keyFile: [keyFile], config: 'x.yaml' });
    assert.equal(on.egress?.queue, 102);
    assert.equal(on.egress?.policy.default, 'deny');
    assert.equal(on.egress?.policy.rules.length, 1);
    assert.equal(resolveAgent(cfg, { keyFile: [keyFile], config: 'x.yaml', egress: false }).egress, undefined);
    assert.equal(resolveAgent(defaultConfig(), { keyFile: [keyFile] }).egress, undefined);
    const forced = resolveAgent(defaultConfig(), { keyFile: [keyFile], egress: true, egressQueue: 7 });
    assert.equal(forced.egress?.queue, 7);
    assert.equal(forced.egress?.policy.default, 'allow');
    assert.throws(() => resolveAgent(cfg, { keyFile: [keyFile], config: 'x.yaml', egressQueue: 101 }), UsageError);
    // agent.egress.queue in the file; --egress-queue overrides it.
    const inFile = parseConfig('agent:\n  egress:\n    queue: 300\n', 'y.yaml');
    assert.equal(resolveAgent(inFile, { keyFile: [keyFile], config: 'y.yaml' }).egress?.queue, 300);
    assert.equal(resolveAgent(inFile, { keyFile: [keyFile], config: 'y.yaml', egressQueue: 9 }).egress?.queue, 9);
    assert.throws(() => parseConfig('agent:\n  queues: 2\n  egress:\n    queue: 101\n', 'z.yaml'), {
      message: /^z\.yaml:4:12: agent\.egress\.queue: queue 101 is one of the labelling queues 100\.\.101: pick another number$/,
    });
    // The default after the last queue number: named as the default, with both ways out.
    const top = parseConfig('agent:\n  queue_base: 65535\n', 't.yaml');
    assert.throws(() => resolveAgent(top, { keyFile: [keyFile], config: 't.yaml' }), {
      message:
        'the egress queue, by default the one after the labelling queues 65535..65535, would be 65536: lower agent.queue_base (--queue-base) or set agent.egress.queue (--egress-queue)',
    });
    assert.equal(
      resolveAgent(parseConfig('agent:\n  queue_base: 65535\n  egress: { queue: 7 }\n', 't.yaml'), { keyFile: [keyFile], config: 't.yaml' })
        .egress?.queue,
      7,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('flows table: application is the first holder, unknown flows say so; text columns', () => {
  const e = (over: Partial<FlowEntry>): FlowEntry => ({
    tuple: { family: 4, proto: 'tcp', src: '10.0.0.1', sport: 40000, dst: '10.0.0.2', dport: 443 },
    action: 'allow',
    rule: 'default',
    tag: 0,
    unknown: false,
    holders: [
      { pid: 10, exe: '/usr/bin/curl', uid: 0, user: 'root' },
      { pid: 11, exe: '/bin/bash', uid: 0, user: 'root' },
    ],
    firstSeen: Date.UTC(2026, 0, 1, 12, 0, 0),
    lastSeen: Date.UTC(2026, 0, 1, 12, 0, 5),
    packets: 1,
    bytesLabelled: 1234,
    ...over,
  });
  const a = flowRow(e({}));
  assert.equal(a.app, '/usr/bin/curl');
  assert.equal(a.bytesLabelled, 1234);
  assert.equal(a.firstSeen, '2026-01-01T12:00:00.000Z');
  const u = flowRow(
    e({
      holders: [],
      unknown: true,
      action: 'deny',
      rule: 'unknown',
      bytesLabelled: 0,
      tuple: { family: 6, proto: 'icmp', src: 'fd00::1', sport: 9, dst: 'fd00::2', dport: 0 },
    }),
  );
  assert.equal(u.app, 'unknown');
  const text = formatFlows({ generatedAt: '', flows: [a, u], attribution: {}, missingByteReports: 0 });
  const lines = text.trimEnd().split('\n');
  assert.match(lines[0]!, /^PROTO\s+DESTINATION\s+VERDICT\s+RULE\s+APPLICATION\s+HOLDERS/);
  assert.match(
    lines[1]!,
    /^tcp\s+10\.0\.0\.2:443\s+allow\s+default\s+\/usr\/bin\/curl\s+10 \/usr\/bin\/curl root, 11 \/bin\/bash root\s+1234\s+12:00:00\.000\s+12:00:05\.000$/,
  );
  assert.match(lines[2]!, /^icmp6\s+fd00::2\s+deny\s+unknown\s+unknown\s+\(none found\)\s+0/);
  assert.equal(lines[3], '2 flow(s)');
});

test('NFQUEUE rules for N queues: every value of the port bits goes to exactly one queue, the rest to the address hash', () => {
  for (const n of [2, 3, 4, 5, 8, 64]) {
    const rules = queueRules(
      ['-p', 'tcp'],
      Array.from({ length: n }, (_, i) => 100 + i),
      false,
      4,
    );
    assert.equal(rules.length, n + 1);
    const seen = new Map<number, number>();
    rules.slice(0, n).forEach((r, i) => {
      const m = /&0x([0-9a-f]+)=(.*)$/.exec(r[r.indexOf('--u32') + 1]!);
      assert.ok(m);
      assert.deepEqual(r.slice(-2), ['--queue-num', String(100 + i)]);
      for (const v of m[2]!.split(',')) {
        assert.ok(!seen.has(Number(v)), `value ${v} in two rules`);
        seen.set(Number(v), i);
      }
      const mask = Number.parseInt(m[1]!, 16);
      assert.equal(seen.size <= mask + 1, true);
    });
    const pow = 2 ** Math.ceil(Math.log2(n));
    assert.equal(seen.size, pow, `n=${n}: all ${pow} values covered`);
    assert.deepEqual(rules[n]!.slice(-2), ['--queue-balance', `100:${99 + n}`]);
  }
  assert.deepEqual(queueRules(['-p', 'tcp'], [7], true, 6), [['-p', 'tcp', '-j', 'NFQUEUE', '--queue-num', '7', '--queue-bypass']]);
});
