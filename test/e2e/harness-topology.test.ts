// Tests of the end-to-end harness itself, without labelwall: the topology forwards real
// traffic byte for byte, and teardown leaves nothing behind. These are also the positive
// controls for labelwall's e2e tests (what must work, and what must arrive, when nobody verifies).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createTopology, listNamespaces, standardTopology, withTopology, waitFor, type Topology } from '../../src/lab/netns.js';
import { httpRequests, startHttpServer, type HttpRequest, type HttpServer } from '../../src/lab/http.js';
import { blob, firstDifference, sha256hex } from '../../src/lab/blob.js';

const SIZES = [1, 7, 536, 1460, 65_535, 1_000_003, 5 * 1024 * 1024];

function assertSameBytes(actual: Buffer, expected: Buffer, what: string): void {
  const d = firstDifference(actual, expected);
  assert.equal(d, -1, `${what}: ${actual.length} bytes received, ${expected.length} expected, first difference at byte ${d}`);
}

describe('standard topology', () => {
  let topo: Topology;
  let http: HttpServer;

  before(async () => {
    topo = await createTopology(standardTopology());
    http = await startHttpServer(topo, 'srv', { bind: '::', port: 8080 });
  });
  after(async () => {
    await topo?.destroy();
  });

  test('names are unique per run, fit IFNAMSIZ, and addresses are where the map says', async () => {
    assert.match(topo.id, /^lw[0-9a-f]{6}$/);
    for (const h of Object.values(topo.hosts)) {
      assert.ok(h.ns.startsWith(`${topo.id}-`));
      const out = (await topo.check(h.name, ['ip', '-o', 'addr', 'show'])).stdout;
      for (const i of Object.values(h.ifaces)) {
        assert.ok(i.name.length <= 15, i.name);
        assert.ok(i.name.startsWith(topo.id), i.name);
        assert.match(out, new RegExp(`${i.name}\\s+inet ${i.ipv4Cidr.replace(/\./g, '\\.')} `));
        assert.match(out, new RegExp(`${i.name}\\s+inet6 ${i.ipv6Cidr} `));
      }
      assert.match(out, /^1: lo\s+inet 127\.0\.0\.1/m, `lo up in ${h.name}`);
    }
    assert.equal(topo.addr('pc'), '10.200.1.2');
    assert.equal(topo.addr('srv', 6), 'fd00:200:3::2');
    assert.equal(topo.addr('mb', 4, 'srv'), '10.200.3.1');
    assert.equal(topo.iface('mb', 'srv').peerIface, topo.iface('srv', 'mb').name);
    // Forwarding only on the router.
    const fwd = async (h: string): Promise<string> =>
      (await topo.check(h, ['sysctl', '-n', 'net.ipv4.ip_forward', 'net.ipv6.conf.all.forwarding'])).stdout.trim();
    assert.equal(await fwd('mb'), '1\n1');
    assert.equal(await fwd('pc'), '0\n0');
    // Nothing of ours in the root namespace.
    const rootLinks = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' });
    assert.ok(!rootLinks.includes(topo.id), 'no veth of this run in the root namespace');
  });

  for (const family of [4, 6] as const) {
    test(`HTTP GET/POST/PUT/DELETE through mb are byte-exact, IPv${family}`, async () => {
      const base = http.url(topo.addr('srv', family));
      const reqs: HttpRequest[] = [];
      const expected: Buffer[] = [];
      for (const n of SIZES) {
        reqs.push({ method: 'GET', path: `/blob/${n}` });
        expected.push(blob(n));
        const body = blob(n, `post${family}`);
        reqs.push({ method: n % 2 ? 'POST' : 'PUT', path: '/echo', body });
        expected.push(body);
      }
      reqs.push({ method: 'DELETE', path: '/item/42' });
      expected.push(Buffer.from('{"deleted":"42"}\n'));
      const big = blob(2_000_000, 'digest');
      reqs.push({ method: 'POST', path: '/sha256', body: big });
      expected.push(Buffer.from(`${JSON.stringify({ length: big.length, sha256: sha256hex(big) })}\n`));
      const res = await httpRequests(topo, 'pc', base, reqs);
      res.forEach((r, i) => {
        const what = `${reqs[i]!.method} ${reqs[i]!.path} (${reqs[i]!.body?.length ?? 0} bytes up)`;
        assert.equal(r.status, 200, `${what}: ${r.error ?? ''}`);
        assertSameBytes(r.body, expected[i]!, what);
      });
      // The server really crossed mb: the client's route to srv goes via mb.
      const route = (await topo.check('pc', ['ip', `-${family}`, 'route', 'get', topo.addr('srv', family)])).stdout;
      assert.match(route, new RegExp(`via ${topo.addr('mb', family, 'pc')}`));
    });
  }

  test('the HTTP client reports failure instead of hiding it (no listener on the port)', async () => {
    const [r] = await httpRequests(topo, 'uc', `http://${topo.addr('srv')}:8081`, [{ method: 'GET', path: '/blob/10', timeoutSec: 3 }]);
    assert.equal(r!.status, null);
    assert.match(r!.error ?? '', /Refused/i);
  });

  test('exec reports failures with the command line and stderr', async () => {
    const r = await topo.exec('pc', ['ip', 'link', 'show', 'nonexistent0']);
    assert.notEqual(r.code, 0);
    await assert.rejects(topo.check('pc', ['ip', 'link', 'show', 'nonexistent0']), (e: Error) => {
      assert.match(e.message, /ip netns exec lw[0-9a-f]{6}-pc ip link show nonexistent0/);
      assert.match(e.message, /stderr: .*nonexistent0/);
      return true;
    });
  });
});

describe('teardown', () => {
  test('destroy kills tracked processes, deletes every namespace and is idempotent', async () => {
    const topo = await createTopology(standardTopology({ offloadsOff: true }));
    const names = topo.namespaces;
    assert.equal((await listNamespaces(topo.id)).length, 4);
    const off = (await topo.check('pc', ['ethtool', '-k', topo.iface('pc', 'mb').name])).stdout;
    assert.match(off, /tcp-segmentation-offload: off/);
    assert.match(off, /generic-receive-offload: off/);
    const sleeper = topo.spawn('srv', ['sleep', '600']);
    // A process the test did not track (started by exec and left behind) must die too.
    await topo.check('mb', ['sh', '-c', 'setsid sleep 600 >/dev/null 2>&1 < /dev/null &']);
    // (pgrep would see the whole machine: the pid namespace is shared; `ip netns pids` is exact.)
    const untracked = await waitFor(
      async () => {
        const pids = (await topo.check('pc', ['ip', 'netns', 'pids', topo.ns('mb')])).stdout.split('\n').filter(Boolean).map(Number);
        return pids.some((p) => /sleep/.test(readFileSync(`/proc/${p}/cmdline`, 'utf8'))) ? pids : null;
      },
      3000,
      { what: 'untracked sleep in mb' },
    );
    await Promise.all([topo.destroy(), topo.destroy()]);
    await topo.destroy();
    assert.equal(sleeper.running, false);
    // Gone, or a zombie waiting for its parent to reap it: either way, no longer running.
    const state = (pid: number): string => {
      try {
        return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0]!;
      } catch {
        return 'gone';
      }
    };
    for (const pid of untracked) assert.match(state(pid), /^(gone|Z|X)$/, `pid ${pid}`);
    const left = await listNamespaces(topo.id);
    assert.deepEqual(left, [], `left behind: ${left.join(' ')} (of ${names.join(' ')})`);
  });

  test('withTopology destroys also when the body throws', async () => {
    let id = '';
    await assert.rejects(
      withTopology(undefined, standardTopology(), async (topo) => {
        id = topo.id;
        topo.spawn('pc', ['sleep', '600']);
        throw new Error('boom');
      }),
      /boom/,
    );
    assert.deepEqual(await listNamespaces(id), []);
  });

  test('a failing build removes what it created', async () => {
    let id = '';
    await assert.rejects(createTopology({ hosts: [{ name: 'a' }, { name: 'b', via: 'c' }], links: [{ a: 'a', b: 'b' }] }), (e: Error) => {
      id = e.message.match(/^topology (lw[0-9a-f]{6}): /)?.[1] ?? '';
      return /via c/.test(e.message);
    });
    assert.ok(id, 'the error names the topology');
    assert.deepEqual(await listNamespaces(id), []);
  });

  // A child process builds a topology and is then killed: SIGTERM must run the exit handler;
  // after SIGKILL the next createTopology reaps the orphan via the registry.
  for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
    test(`a test process killed with ${sig} leaves no namespace behind`, async () => {
      const here = dirname(fileURLToPath(import.meta.url));
      const netnsJs = join(here, '..', '..', 'src', 'lab', 'netns.js');
      const script =
        `import { createTopology, standardTopology } from ${JSON.stringify(netnsJs)};` +
        `const t = await createTopology(standardTopology()); t.spawn('srv', ['sleep', '600']);` +
        `console.log('UP ' + t.id); setInterval(() => {}, 1000);`;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const id = await waitFor(() => out.match(/UP (lw[0-9a-f]{6})/)?.[1], 15_000, { what: 'child topology' });
      assert.equal((await listNamespaces(id)).length, 4);
      const exited = new Promise((r) => child.on('close', r));
      child.kill(sig);
      await exited;
      if (sig === 'SIGKILL') {
        // SIGKILL cannot be handled: the namespaces stay until a reaper runs (possibly a concurrent
        // test run's createTopology, so their presence here is not asserted).
        const t = await createTopology({ hosts: [{ name: 'x' }], links: [] }); // reaps
        await t.destroy();
      }
      assert.deepEqual(await listNamespaces(id), []);
    });
  }
});
