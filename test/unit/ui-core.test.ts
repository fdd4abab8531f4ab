// labelwall ui's pure parts: the history (rates from counters, an hour bound), the flows table
// filtered, sorted and paged on the server with 65,536 flows, grouping by application, the
// token check and --listen.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { History } from '../../src/ui/history.js';
import { flowsPerRule, groupByApp, parseFlowQuery, queryFlows, type UiFlow } from '../../src/ui/flows-query.js';
import { authorized } from '../../src/ui/auth.js';
import { parseListen } from '../../src/ui/listen.js';
import { liveFlows, overview, warningsOf } from '../../src/ui/overview.js';
import type { SourceState } from '../../src/ui/sources.js';
import type { StatusReport } from '../../src/daemon/run.js';

test('History: per-second rates from consecutive totals, Mbit/s from bytes, a restart counts from zero', () => {
  const h = new History('verifier', 5);
  assert.equal(h.add(10_000, { valid: 100, valid_bytes: 0 }, 0), undefined, 'the first sample only sets the base');
  const p = h.add(12_000, { valid: 300, invalid: 4, valid_bytes: 2_500_000 }, 6)!;
  assert.equal(p.valid, 100);
  assert.equal(p.invalid, 2);
  assert.equal(p.queueDrops, 3);
  assert.equal(p.verifiedMbps, 10);
  // The daemon restarted: its totals went down; the rate is the new total over the interval.
  const r = h.add(13_000, { valid: 50 }, 0)!;
  assert.equal(r.valid, 50);
  assert.equal(r.queueDrops, 0);
  const c = h.columns();
  assert.deepEqual(c.columns[0], [12, 13]);
  assert.deepEqual(
    c.series.map((s) => s.key),
    ['valid', 'invalid', 'unlabelled', 'malformed', 'queueDrops', 'verifiedMbps'],
  );
});

test('History keeps at most its capacity (an hour at 1 s by default), oldest dropped; a gap restarts the rate', () => {
  const h = new History('agent');
  assert.equal(h.capacity, 3600);
  for (let i = 0; i <= 4000; i++) h.add(i * 1000, { labelled: i * 10, labelled_bytes: i * 125_000 }, 0);
  assert.equal(h.length, 3600);
  const c = h.columns();
  assert.equal(c.columns[0]![0], 401);
  assert.equal(c.columns[0]!.at(-1), 4000);
  assert.ok(c.columns[1]!.every((v) => v === 10));
  assert.ok(
    c.columns[5]!.every((v) => v === 1),
    'labelled Mbit/s',
  );
  h.gap();
  assert.equal(h.add(4001_000, { labelled: 0 }, 0), undefined);
  assert.equal(h.length, 3600);
});

function flows(n: number): UiFlow[] {
  const out: UiFlow[] = [];
  for (let i = 0; i < n; i++) {
    const app = i % 1000 === 7 ? '/usr/bin/curl' : i % 3 === 0 ? '/usr/bin/python3.11' : '/usr/sbin/sshd';
    out.push({
      source: '/run/labelwall/agent.sock',
      proto: 'tcp',
      family: 4,
      src: '10.0.0.1',
      sport: 10_000 + (i % 50_000),
      dst: `10.1.${(i >> 8) & 255}.${i & 255}`,
      dport: app === '/usr/bin/curl' ? 443 : 22,
      app,
      holders: [
        { pid: 100 + (i % 7), exe: app, uid: app === '/usr/sbin/sshd' ? 0 : 1000, user: app === '/usr/sbin/sshd' ? 'root' : 'alice' },
      ],
      unknown: false,
      rule: app === '/usr/bin/curl' ? 'no-curl' : 'default',
      verdict: app === '/usr/bin/curl' ? 'deny' : 'allow',
      tag: 0,
      bytesLabelled: i * 3,
      egressPackets: 1,
      firstSeen: new Date(1_700_000_000_000 + i).toISOString(),
      lastSeen: new Date(1_700_000_000_000 + i * 2).toISOString(),
    });
  }
  return out;
}

test('queryFlows over 65,536 flows: one page of at most 500 rows, filter, sort, paging, in well under a second', () => {
  const all = flows(65_536);
  const t0 = performance.now();
  const p = queryFlows(all, parseFlowQuery(new URLSearchParams('')));
  assert.equal(p.total, 65_536);
  assert.equal(p.matched, 65_536);
  assert.equal(p.rows.length, 100, 'the default page');
  assert.equal(p.rows[0], all[65_535], 'newest lastSeen first by default');
  const big = queryFlows(all, parseFlowQuery(new URLSearchParams('limit=100000')));
  assert.equal(big.rows.length, 500, 'a page is capped at 500 rows');

  const curl = queryFlows(all, parseFlowQuery(new URLSearchParams('q=CURL 443&sort=bytesLabelled&dir=asc&limit=10')));
  assert.equal(curl.matched, 66, 'every word must match (case-insensitive)');
  assert.ok(curl.rows.every((f) => f.app === '/usr/bin/curl'));
  assert.deepEqual(
    curl.rows.map((f) => f.bytesLabelled),
    [21, 3021, 6021, 9021, 12021, 15021, 18021, 21021, 24021, 27021],
  );
  // Paging: consecutive pages are disjoint and cover the matched rows in order.
  const seen = new Set<UiFlow>();
  for (let off = 0; off < 66; off += 10) {
    const pg = queryFlows(all, { q: 'curl', sort: 'bytesLabelled', dir: 'asc', offset: off, limit: 10 });
    for (const f of pg.rows) seen.add(f);
  }
  assert.equal(seen.size, 66);
  // Filter by user and by destination; by application.
  const byHand = (f: (x: UiFlow) => boolean): number => all.filter(f).length;
  assert.equal(
    queryFlows(all, { q: 'alice' }).matched,
    byHand((x) => x.holders[0]!.user === 'alice'),
  );
  assert.equal(
    byHand((x) => x.holders[0]!.user === 'alice'),
    21_890,
    'python (i % 3 == 0) and curl',
  );
  // Words are substrings: 10.1.2.3 and 10.1.2.30-39.
  assert.equal(queryFlows(all, { q: '10.1.2.3' }).matched, 11);
  assert.equal(
    queryFlows(all, { q: '10.1.2.3 alice' }).matched,
    byHand((x) => /^10\.1\.2\.3\d?$/.test(x.dst) && x.holders[0]!.user === 'alice'),
  );
  assert.equal(
    queryFlows(all, { app: '/usr/sbin/sshd' }).matched,
    byHand((x) => x.app === '/usr/sbin/sshd'),
  );
  assert.equal(queryFlows(all, { q: 'nothing-like-this' }).matched, 0);
  assert.ok(performance.now() - t0 < 3000, `took ${performance.now() - t0} ms`);
  // An offset past the end gives the last row, not an error; bad parameters fall back to defaults.
  assert.equal(queryFlows(all, { offset: 1e9, limit: 5 }).rows.length, 1);
  const bad = parseFlowQuery(new URLSearchParams('sort=__proto__&dir=sideways&offset=-1&limit=abc'));
  assert.deepEqual(bad, { q: '', sort: 'lastSeen', dir: 'desc', offset: 0, limit: 100 });
});

test('groupByApp and flowsPerRule over 65,536 flows', () => {
  const all = flows(65_536);
  const { groups, apps } = groupByApp(all);
  assert.equal(apps, 3);
  assert.deepEqual(
    groups.map((g) => [g.app, g.flows, g.allowed, g.denied, g.users.join()]),
    [
      ['/usr/sbin/sshd', 43_646, 43_646, 0, 'root'],
      ['/usr/bin/python3.11', 21_824, 21_824, 0, 'alice'],
      ['/usr/bin/curl', 66, 0, 66, 'alice'],
    ],
  );
  assert.deepEqual(flowsPerRule(all), { default: 65_470, 'no-curl': 66 });
});

test('token: query, Bearer header or cookie; anything else refused', () => {
  const tok = 'abc_DEF-123';
  const u = (q: string): URL => new URL(`http://127.0.0.1:8080/${q}`);
  assert.equal(authorized(tok, u(`?token=${tok}`), {}), 'query');
  assert.equal(authorized(tok, u(''), { authorization: `Bearer ${tok}` }), 'header');
  assert.equal(authorized(tok, u(''), { cookie: `a=b; labelwall_ui=${tok}` }), 'cookie');
  assert.equal(authorized(tok, u(''), {}), false);
  assert.equal(authorized(tok, u('?token=abc_DEF-12'), {}), false);
  assert.equal(authorized(tok, u(`?token=${tok}x`), {}), false);
  assert.equal(authorized(tok, u(''), { cookie: 'labelwall_ui=' }), false);
  assert.equal(authorized(tok, u(''), { authorization: `Basic ${tok}` }), false);
});

test('--listen: host:port, [v6]:port, a port alone; loopback told apart; bad values refused with the reason', () => {
  assert.deepEqual(parseListen('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080, loopback: true });
  assert.deepEqual(parseListen('[::1]:9'), { host: '::1', port: 9, loopback: true });
  assert.deepEqual(parseListen('8081'), { host: '127.0.0.1', port: 8081, loopback: true });
  assert.deepEqual(parseListen('localhost:0'), { host: '127.0.0.1', port: 0, loopback: true });
  assert.deepEqual(parseListen('0.0.0.0:8080'), { host: '0.0.0.0', port: 8080, loopback: false });
  assert.throws(() => parseListen('127.0.0.1:70000'), /port 70000 is not 0-65535/);
  assert.throws(() => parseListen('example.org:80'), /"example.org" is not an IP address/);
  assert.throws(() => parseListen('::1:80'), /expected HOST:PORT/);
  assert.throws(() => parseListen(''), /expected HOST:PORT/);
});

test('warnings: unreachable socket, queue drops (and in the last minute), fail open, handler errors', () => {
  const st = (over: Partial<StatusReport['datapath']>, fail = 'closed'): StatusReport =>
    ({
      role: 'verifier',
      pid: 1,
      startedAt: '',
      uptimeSeconds: 1,
      config: { fail },
      counters: {},
      ratesPerSecond: {},
      queues: [],
      datapath: {
        received: 0,
        verdicts: 0,
        handlerErrors: 0,
        kernelErrors: 0,
        enobufs: 0,
        queueDropped: 0,
        userDropped: 0,
        queueTotal: 0,
        ...over,
      },
    }) as StatusReport;
  const s = (x: Partial<SourceState>): SourceState => ({ id: 0, socket: '/s', ok: true, ...x });
  assert.deepEqual(warningsOf(s({ status: st({}) })), []);
  assert.match(warningsOf(s({ ok: false, error: 'nothing is listening' }))[0]!, /no answer on \/s: nothing is listening/);
  const w = warningsOf(s({ status: st({ queueDropped: 7, userDropped: 3, handlerErrors: 2 }, 'open'), dropsMinuteAgo: 4 }));
  assert.match(w[0]!, /^queue drops: 10 packet\(s\) .* since start, 6 in the last minute .*fail open: they passed unseen/);
  assert.match(w[1]!, /^fail open/);
  assert.match(w[2]!, /2 handler error/);
  // An agent's segments that did not go out as they should, one warning per counter that is not zero.
  const agentSt = (counters: Record<string, number>): StatusReport => ({ ...st({}), role: 'agent', counters });
  assert.deepEqual(warningsOf(s({ status: agentSt({ labelled: 10, sack_trimmed: 3, unlabelled_no_room: 0 }) })), []);
  const aw = warningsOf(s({ status: agentSt({ unlabelled_no_room: 4, transmit_errors: 2, gso_dropped: 1, dropped_malformed: 5 }) }));
  assert.equal(aw.length, 4);
  assert.match(aw[0]!, /^4 TCP segment\(s\) sent unlabelled: no room for the label/);
  assert.match(aw[1]!, /^5 outgoing packet\(s\) dropped as malformed/);
  assert.match(aw[2]!, /^1 GSO super-packet\(s\) dropped/);
  assert.match(aw[3]!, /^2 labelled segment\(s\) the kernel refused/);
  // The same counters of a verifier mean nothing there.
  assert.deepEqual(warningsOf(s({ status: { ...st({}), counters: { unlabelled_no_room: 4 } } })), []);
});

test('a source that does not answer: its last flows and egress rules leave the overview and the flows table', () => {
  const [f1, f2] = flows(2);
  const rules = { default: 'allow', unknown: 'allow', rules: [{ name: 'web', action: 'allow', match: 'port 80' }] };
  const status = {
    role: 'agent',
    config: {},
    counters: {},
    datapath: { handlerErrors: 0, queueDropped: 0, userDropped: 0 },
  } as unknown as StatusReport;
  const up: SourceState = { id: 0, socket: '/a', role: 'agent', ok: true, status, flows: [f1!], rules } as unknown as SourceState;
  const down: SourceState = {
    id: 1,
    socket: '/b',
    role: 'agent',
    ok: false,
    error: 'connect ENOENT',
    status,
    flows: [f2!],
    rules,
  } as unknown as SourceState;
  assert.deepEqual(liveFlows([up, down]), [f1]);
  const ov = overview([up, down]);
  assert.equal(ov.flowCount, 1);
  assert.deepEqual(
    ov.egressRules.map((g) => g.source),
    [0],
  );
  // The control: once it answers again, both are there.
  assert.equal(liveFlows([up, { ...down, ok: true }]).length, 2);
  assert.equal(overview([up, { ...down, ok: true }]).egressRules.length, 2);
});
