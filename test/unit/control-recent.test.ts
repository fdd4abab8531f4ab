// GET /events (the ring of recent denials/refusals) and GET /rules (the agent's egress rules).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecentEvents } from '../../src/control/recent.js';
import { egressRulesReport } from '../../src/agent/policy-report.js';
import { parseConfig } from '../../src/config/load.js';

test('RecentEvents keeps the newest `capacity` events, oldest first, and counts all', () => {
  const r = new RecentEvents(3);
  assert.deepEqual(r.report().events, []);
  for (let i = 0; i < 5; i++) r.add({ kind: 'log', level: 'warn', msg: 'verifier: invalid', n: i }, Date.UTC(2026, 0, 1, 0, 0, i));
  const rep = r.report();
  assert.equal(rep.total, 5);
  assert.deepEqual(
    rep.events.map((e) => e.n),
    [2, 3, 4],
  );
  assert.equal(rep.events[0]!.time, '2026-01-01T00:00:02.000Z');
  // The worker's log envelope is not part of the event.
  assert.equal('kind' in rep.events[0]!, false);
  assert.equal('level' in rep.events[0]!, false);
  assert.equal(rep.events[0]!.msg, 'verifier: invalid');
});

test('egressRulesReport: one line per rule, what it matches, tag names', () => {
  const cfg = parseConfig(
    `tags:\n  web: 300\nagent:\n  egress:\n    default: allow\n    unknown: deny\n    rules:\n` +
      `      - { name: no-curl, app: { exe: "**/curl" }, action: deny }\n` +
      `      - { name: web, app: { exe: "/usr/bin/python3*", holders: all }, dst: { ports: [8080, 9000-9010], proto: tcp, cidr: [10.0.0.0/8] }, action: allow, tag: web }\n` +
      `      - { name: watch, action: log }\n`,
    'p.yaml',
  );
  const r = egressRulesReport(cfg.agent.egress, { 300: 'web' });
  assert.equal(r.default, 'allow');
  assert.equal(r.unknown, 'deny');
  assert.deepEqual(r.rules, [
    { name: 'no-curl', action: 'deny', match: 'exe **/curl' },
    {
      name: 'web',
      action: 'allow',
      match: 'exe /usr/bin/python3*, (all holders), tcp, to 10.0.0.0/8, port 8080, 9000-9010',
      tag: 300,
      tagName: 'web',
    },
    { name: 'watch', action: 'log', match: 'any flow' },
  ]);
});
