import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderRestore } from '../../src/datapath/iptables.js';
import { kernelCountersFromListing, verifierRulePlan } from '../../src/verifier/rules.js';
import { compat } from '../../src/label/compat.js';

const sel = { inInterfaces: [], outInterfaces: [], sources: [], destinations: [], ports: [] };

test('verifier plan: the kernel chain runs first and decides segments without option 253 per rule action', () => {
  const plan = verifierRulePlan(4, {
    hook: 'forward',
    queues: [40],
    failOpen: false,
    markMask: 0xf00,
    optionKind: compat.optionKind,
    unlabelledMark: 0x300,
    suspectQueue: 41,
    selections: [
      { ...sel, inInterfaces: ['a'], action: 'drop' },
      { ...sel, inInterfaces: ['b'], action: 'mark' },
    ],
  });
  const text = renderRestore(plan);
  const lines = text.split('\n');
  const jumps = lines.filter((l) => l.startsWith('-I FORWARD'));
  // Inserted at 1 in order: the last one listed is the first rule of FORWARD.
  assert.match(jumps[jumps.length - 1]!, /-j LABELWALL-VERIFY-KERNEL$/);
  assert.equal(jumps.length, 2, 'only KERNEL and FORWARD are jumped to; the others are reached with -g');
  const kernel = lines.filter((l) => l.startsWith('-A LABELWALL-VERIFY-KERNEL'));
  assert.deepEqual(kernel, [
    '-A LABELWALL-VERIFY-KERNEL -m mark ! --mark 0x0/0xf00 -j RETURN',
    '-A LABELWALL-VERIFY-KERNEL -i a -p tcp -m tcp ! --tcp-option 253 -g LABELWALL-VERIFY-UDROP',
    '-A LABELWALL-VERIFY-KERNEL -i a -p tcp -m recent --name LABELWALL-VERIFY-BAD --rcheck --seconds 10 -g LABELWALL-VERIFY-SUSPECT',
    '-A LABELWALL-VERIFY-KERNEL -i a -p tcp -j RETURN',
    '-A LABELWALL-VERIFY-KERNEL -i b -p tcp -m tcp ! --tcp-option 253 -g LABELWALL-VERIFY-UMARK',
    '-A LABELWALL-VERIFY-KERNEL -i b -p tcp -m recent --name LABELWALL-VERIFY-BAD --rcheck --seconds 10 -g LABELWALL-VERIFY-SUSPECT',
    '-A LABELWALL-VERIFY-KERNEL -i b -p tcp -j RETURN',
  ]);
  assert.ok(lines.includes('-A LABELWALL-VERIFY-UDROP -j DROP'));
  assert.ok(lines.includes('-A LABELWALL-VERIFY-UMARK -j MARK --set-xmark 0x300/0xf00'));
  assert.ok(lines.some((l) => /^-A LABELWALL-VERIFY-SUSPECT -m hashlimit .*--hashlimit-mode srcip .*-j DROP$/.test(l)));
  assert.ok(lines.includes('-A LABELWALL-VERIFY-SUSPECT -j NFQUEUE --queue-num 41'));
});

test('verifier plan: failing open, the suspect limit lets the excess pass unseen (like a full queue)', () => {
  const text = renderRestore(
    verifierRulePlan(6, {
      hook: 'input',
      queues: [200],
      failOpen: true,
      markMask: 0xf00,
      optionKind: compat.optionKind,
      suspectQueue: 201,
      selections: [sel],
    }),
  );
  assert.match(text, /-A LABELWALL-VERIFY-SUSPECT -m hashlimit .* -j RETURN$/m);
  assert.match(text, /-A LABELWALL-VERIFY-SUSPECT -j NFQUEUE --queue-num 201 --queue-bypass$/m);
  assert.match(text, /-A LABELWALL-VERIFY-KERNEL -i lo -j RETURN$/m);
});

test('kernelCountersFromListing: sums the counters of our decision rules only', () => {
  const listing = [
    '-N LABELWALL-VERIFY-UDROP',
    '-A LABELWALL-VERIFY-UDROP -c 1200 72000 -j DROP',
    '-A LABELWALL-VERIFY-UMARK -c 30 1800 -j MARK --set-xmark 0x300/0xf00',
    '-A LABELWALL-VERIFY-SUSPECT -s 10.0.0.2/32 -d 10.0.0.3/32 -p tcp -m tcp --sport 1 --dport 2 -c 999 1 -j NFQUEUE --queue-num 40',
    '-A LABELWALL-VERIFY-SUSPECT -m hashlimit --hashlimit-above 2000/sec -c 77 100 -j DROP',
    '-A INPUT -c 5000 1 -j DROP',
  ].join('\n');
  assert.deepEqual(kernelCountersFromListing(listing), { unlabelledDropped: 1200, unlabelledMarked: 30, rateLimited: 77 });
});
