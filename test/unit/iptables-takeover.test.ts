// The restore texts that replace a dead instance's rules in one transaction, and remove only
// what one instance installed (pure).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  findOwned,
  jumpComment,
  jumpOwner,
  ownedBy,
  renderRemove,
  renderRestore,
  type Table,
  type TableState,
} from '../../src/datapath/iptables.js';
import { verifierRulePlan } from '../../src/verifier/rules.js';
import { agentRulePlan } from '../../src/agent/rules.js';
import { compat } from '../../src/label/compat.js';

const sel = { inInterfaces: [], outInterfaces: [], sources: [], destinations: [], ports: [] };
const plan = (hook: 'input' | 'forward', queue = 200) =>
  verifierRulePlan(4, { hook, queues: [queue], failOpen: false, markMask: 0xf00, optionKind: compat.optionKind, selections: [sel] });

const staleSave = [
  '-P INPUT ACCEPT',
  '-N LABELWALL-VERIFY-INPUT',
  '-A INPUT -m comment --comment "labelwall LABELWALL-VERIFY owner=111-aaaaaa" -j LABELWALL-VERIFY-INPUT',
  '-A INPUT -p tcp --dport 22 -j ACCEPT',
  '-A LABELWALL-VERIFY-INPUT -p tcp -j NFQUEUE --queue-num 200',
].join('\n');

test('jump comments carry the owner; jumpOwner reads it back', () => {
  assert.equal(jumpComment('LABELWALL-VERIFY', '42-abcdef'), 'labelwall LABELWALL-VERIFY owner=42-abcdef');
  assert.equal(jumpComment('LABELWALL-VERIFY'), 'labelwall LABELWALL-VERIFY');
  const { jumps } = findOwned(staleSave, 'LABELWALL-VERIFY');
  assert.equal(jumpOwner(jumps[0]!), '111-aaaaaa');
  assert.equal(jumpOwner(['INPUT', '-j', 'LABELWALL-VERIFY-INPUT']), undefined);
});

test('takeover of the same chain: flush-and-refill, old jump deleted before the new one, one COMMIT', () => {
  const stale = new Map<Table, TableState>([['filter', findOwned(staleSave, 'LABELWALL-VERIFY')]]);
  const text = renderRestore(plan('input', 201), { owner: '222-bbbbbb', stale });
  const lines = text.trim().split('\n');
  assert.equal(lines[0], '*filter');
  assert.equal(lines.at(-1), 'COMMIT');
  assert.equal(lines.filter((l) => l === 'COMMIT').length, 1, 'one transaction');
  assert.ok(lines.includes(':LABELWALL-VERIFY-INPUT - [0:0]'), 'the existing chain is flushed by its declaration and refilled');
  const del = lines.indexOf('-D INPUT -m comment --comment "labelwall LABELWALL-VERIFY owner=111-aaaaaa" -j LABELWALL-VERIFY-INPUT');
  const ins = lines.indexOf('-I INPUT 1 -m comment --comment "labelwall LABELWALL-VERIFY owner=222-bbbbbb" -j LABELWALL-VERIFY-INPUT');
  assert.ok(del > 0 && ins > del, text);
  assert.ok(lines.some((l) => /--queue-num 201$/.test(l)));
  assert.ok(!lines.some((l) => l.startsWith('-X')), 'the chain the plan keeps is not deleted');
  assert.ok(!text.includes('--dport 22'), "the administrator's rule is never named");
});

test('takeover when the hook changed: the stale chain is flushed and deleted in the same transaction', () => {
  const stale = new Map<Table, TableState>([['filter', findOwned(staleSave, 'LABELWALL-VERIFY')]]);
  const lines = renderRestore(plan('forward'), { owner: 'x', stale }).trim().split('\n');
  assert.ok(lines.includes(':LABELWALL-VERIFY-FORWARD - [0:0]'));
  const f = lines.indexOf('-F LABELWALL-VERIFY-INPUT');
  const x = lines.indexOf('-X LABELWALL-VERIFY-INPUT');
  const d = lines.findIndex((l) => l.startsWith('-D INPUT'));
  assert.ok(d >= 0 && f > d && x > f, lines.join('\n'));
  assert.equal(lines.filter((l) => l === 'COMMIT').length, 1);
});

test('stale state in a table the new plan does not use gets its own block; without stale state the text is the plain install', () => {
  const egress = agentRulePlan(4, { queues: [100], failOpen: false, interfaces: [], destinations: [], ports: [], egressQueue: 101 });
  const save =
    '-N LABELWALL-AGENT-EGRESS\n-A OUTPUT -m comment --comment "labelwall LABELWALL-AGENT owner=1-a" -j LABELWALL-AGENT-EGRESS\n';
  const noEgress = agentRulePlan(4, { queues: [100], failOpen: false, interfaces: [], destinations: [], ports: [] });
  const text = renderRestore(noEgress, { owner: 'n', stale: new Map([['filter', findOwned(save, 'LABELWALL-AGENT')]]) });
  assert.match(
    text,
    /\*filter\n-D OUTPUT -m comment --comment "labelwall LABELWALL-AGENT owner=1-a" -j LABELWALL-AGENT-EGRESS\n-F LABELWALL-AGENT-EGRESS\n-X LABELWALL-AGENT-EGRESS\nCOMMIT/,
  );
  assert.equal(renderRestore(egress, { stale: new Map() }), renderRestore(egress));
});

test('ownedBy: only our jumps; a chain another rule still jumps to is kept', () => {
  const save = [
    '-N LABELWALL-VERIFY-INPUT',
    '-A INPUT -m comment --comment "labelwall LABELWALL-VERIFY owner=me" -j LABELWALL-VERIFY-INPUT',
    '-A INPUT -m comment --comment "labelwall LABELWALL-VERIFY owner=other" -j LABELWALL-VERIFY-INPUT',
  ].join('\n');
  const s = findOwned(save, 'LABELWALL-VERIFY');
  const r = ownedBy(s, 'me', ['LABELWALL-VERIFY-INPUT']);
  assert.equal(r.mine.jumps.length, 1);
  assert.equal(jumpOwner(r.mine.jumps[0]!), 'me');
  assert.deepEqual(r.mine.chains, []);
  assert.deepEqual(r.kept, ['LABELWALL-VERIFY-INPUT']);
  const alone = ownedBy(findOwned(staleSave, 'LABELWALL-VERIFY'), '111-aaaaaa', ['LABELWALL-VERIFY-INPUT']);
  assert.deepEqual(alone.mine.chains, ['LABELWALL-VERIFY-INPUT']);
  assert.equal(ownedBy(findOwned(staleSave, 'LABELWALL-VERIFY'), 'someone-else', ['LABELWALL-VERIFY-INPUT']).mine.jumps.length, 0);
  const rm = renderRemove(new Map([['filter', alone.mine]]));
  assert.equal(
    rm,
    '*filter\n-D INPUT -m comment --comment "labelwall LABELWALL-VERIFY owner=111-aaaaaa" -j LABELWALL-VERIFY-INPUT\n-F LABELWALL-VERIFY-INPUT\n-X LABELWALL-VERIFY-INPUT\nCOMMIT\n',
  );
  assert.equal(renderRemove(new Map([['filter', { chains: [], jumps: [] }]])), '');
});
