import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findOwned, multiportChunks, nfqueueTarget, renderRestore, selectionMatches, splitRuleLine } from '../../src/datapath/iptables.js';
import { agentRulePlan } from '../../src/agent/rules.js';
import { verifierRulePlan } from '../../src/verifier/rules.js';
import { parseCidr } from '../../src/util/match.js';
import { compat } from '../../src/label/compat.js';

const cidr = (t: string) => {
  const r = parseCidr(t);
  assert.ok(r.ok);
  return r.value;
};

test('nfqueueTarget: one queue, balanced queues, bypass only when failing open', () => {
  assert.deepEqual(nfqueueTarget([7], false), ['-j', 'NFQUEUE', '--queue-num', '7']);
  assert.deepEqual(nfqueueTarget([4, 3], true), ['-j', 'NFQUEUE', '--queue-balance', '3:4', '--queue-bypass']);
});

test('multiportChunks: at most 15 slots per rule, a range takes two', () => {
  const many = Array.from({ length: 20 }, (_, i) => ({ lo: 1000 + i, hi: 1000 + i }));
  const chunks = multiportChunks(many);
  assert.equal(chunks.length, 2);
  assert.equal(chunks[0]!.split(',').length, 15);
  assert.deepEqual(
    multiportChunks([
      { lo: 1, hi: 2 },
      { lo: 80, hi: 80 },
    ]),
    ['1:2,80'],
  );
  const ranges = Array.from({ length: 8 }, (_, i) => ({ lo: i * 10, hi: i * 10 + 5 }));
  assert.equal(multiportChunks(ranges).length, 2); // 7 ranges = 14 slots, the 8th starts a new rule
});

test('selectionMatches: cross product per family; addresses of the other family only => no rule', () => {
  const sel = { inInterfaces: ['a', 'b'], sources: [cidr('10.0.0.0/8'), cidr('fd00::/8')], ports: [{ lo: 80, hi: 80 }] };
  const v4 = selectionMatches(sel, 4);
  assert.equal(v4.length, 2);
  assert.deepEqual(v4[0], ['-i', 'a', '-s', '10.0.0.0/8', '-p', 'tcp', '-m', 'multiport', '--dports', '80']);
  assert.equal(selectionMatches(sel, 6).length, 2);
  assert.deepEqual(selectionMatches({ destinations: [cidr('10.0.0.0/8')] }, 6), []);
  assert.deepEqual(selectionMatches({}, 6), [['-p', 'tcp']]);
});

test('agent plan: loopback and already-handled packets skip the queue; inbound mirrors outbound', () => {
  const plan = agentRulePlan(4, {
    queues: [100],
    failOpen: false,
    interfaces: ['eth0'],
    destinations: [cidr('10.9.0.0/16')],
    ports: [{ lo: 443, hi: 443 }],
  });
  const text = renderRestore(plan);
  assert.match(text, /^\*mangle$/m);
  assert.match(text, /-A LABELWALL-AGENT-OUT -o lo -j RETURN/);
  assert.match(text, /-A LABELWALL-AGENT-OUT -m mark --mark 0x2\/0x2 -j RETURN/);
  assert.match(text, /-A LABELWALL-AGENT-OUT -o eth0 -d 10.9.0.0\/16 -p tcp -m multiport --dports 443 -j NFQUEUE --queue-num 100$/m);
  assert.match(
    text,
    /-A LABELWALL-AGENT-IN -i eth0 -s 10.9.0.0\/16 -p tcp -m multiport --sports 443 --tcp-flags SYN SYN -j NFQUEUE --queue-num 100$/m,
  );
  assert.match(text, /-I OUTPUT 1 -m comment --comment "labelwall LABELWALL-AGENT" -j LABELWALL-AGENT-OUT/);
  // Order: skips come before the queue rule.
  assert.ok(text.indexOf('-o lo -j RETURN') < text.indexOf('NFQUEUE'));
});

test('verifier plan: judged packets return first; rules keep config order', () => {
  const plan = verifierRulePlan(6, {
    hook: 'input',
    queues: [200, 201],
    failOpen: true,
    markMask: 0xf00,
    optionKind: compat.optionKind,
    selections: [
      { inInterfaces: ['eth1'], outInterfaces: [], sources: [], destinations: [], ports: [{ lo: 22, hi: 22 }] },
      { inInterfaces: [], outInterfaces: [], sources: [cidr('fd00:1::/64')], destinations: [], ports: [] },
    ],
  });
  const lines = renderRestore(plan).split('\n');
  const rules = lines.filter((l) => l.startsWith('-A LABELWALL-VERIFY-INPUT'));
  assert.deepEqual(rules, [
    '-A LABELWALL-VERIFY-INPUT -m mark ! --mark 0x0/0xf00 -j RETURN',
    '-A LABELWALL-VERIFY-INPUT -i lo -j RETURN',
    // Two queues: flows from ephemeral source ports by port bit 1 (u32), the rest by the address hash.
    '-A LABELWALL-VERIFY-INPUT -i eth1 -p tcp -m multiport --dports 22 -m tcp --sport 1024:65535 -m u32 --u32 "40>>17&0x1=0x0" -j NFQUEUE --queue-num 200 --queue-bypass',
    '-A LABELWALL-VERIFY-INPUT -i eth1 -p tcp -m multiport --dports 22 -m tcp --sport 1024:65535 -m u32 --u32 "40>>17&0x1=0x1" -j NFQUEUE --queue-num 201 --queue-bypass',
    '-A LABELWALL-VERIFY-INPUT -i eth1 -p tcp -m multiport --dports 22 -j NFQUEUE --queue-balance 200:201 --queue-bypass',
    '-A LABELWALL-VERIFY-INPUT -s fd00:1::/64 -p tcp -m tcp --sport 1024:65535 -m u32 --u32 "40>>17&0x1=0x0" -j NFQUEUE --queue-num 200 --queue-bypass',
    '-A LABELWALL-VERIFY-INPUT -s fd00:1::/64 -p tcp -m tcp --sport 1024:65535 -m u32 --u32 "40>>17&0x1=0x1" -j NFQUEUE --queue-num 201 --queue-bypass',
    '-A LABELWALL-VERIFY-INPUT -s fd00:1::/64 -p tcp -j NFQUEUE --queue-balance 200:201 --queue-bypass',
  ]);
  assert.ok(lines.includes('*filter'));
});

test('findOwned: our chains and the jumps into them, nothing else', () => {
  const save = [
    '-P OUTPUT ACCEPT',
    '-N LABELWALL-AGENT-OUT',
    '-N OTHER',
    '-A OUTPUT -j OTHER',
    '-A OUTPUT -m comment --comment "labelwall LABELWALL-AGENT" -j LABELWALL-AGENT-OUT',
    '-A OUTPUT -m comment --comment "not ours -j LABELWALL-AGENT-OUT" -j ACCEPT',
    '-A LABELWALL-AGENT-OUT -o lo -j RETURN',
    '-A OTHER -j LABELWALL-VERIFY-INPUT',
  ].join('\n');
  const r = findOwned(save, 'LABELWALL-AGENT');
  assert.deepEqual(r.chains, ['LABELWALL-AGENT-OUT']);
  assert.deepEqual(r.jumps, [['OUTPUT', '-m', 'comment', '--comment', 'labelwall LABELWALL-AGENT', '-j', 'LABELWALL-AGENT-OUT']]);
  assert.deepEqual(splitRuleLine('-A X -m comment --comment "a \\"b\\" c" -j Y'), [
    '-A',
    'X',
    '-m',
    'comment',
    '--comment',
    'a "b" c',
    '-j',
    'Y',
  ]);
});
