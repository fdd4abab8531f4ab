// Tests of bench/topology.sh, the shell twin of standardTopology() used by the benchmarks.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createTopology, listNamespaces, run, waitFor } from '../../src/lab/netns.js';
import { REPO_ROOT } from '../../src/lab/paths.js';

const SCRIPT = join(REPO_ROOT, 'bench', 'topology.sh');

function bash(body: string, timeoutMs = 60_000) {
  return run(['bash', '-c', `set -euo pipefail; source ${JSON.stringify(SCRIPT)}; ${body}`], { timeoutMs });
}

function iperfBps(json: string): number {
  return (JSON.parse(json) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second;
}

describe('bench/topology.sh', () => {
  test('topo_up builds the standard topology; --shape 1gbit caps pc→srv; exit cleans up', async () => {
    const r = await bash(`
      topo_up --shape 1gbit
      echo "ID=$TOPO_ID"
      ip netns list | grep -c "^$TOPO_ID-" | sed 's/^/COUNT=/'
      in_ns mb tc qdisc show dev "$IF_MB_SRV" | sed 's/^/QDISC=/'
      in_ns pc ip -o addr show dev "$IF_PC" | sed 's/^/ADDR=/'
      in_ns srv iperf3 -s -1 -p 5201 -D
      for i in $(seq 50); do in_ns srv ss -Hltn 'sport = :5201' | grep -q . && break; sleep 0.05; done
      echo "SHAPED=$(in_ns pc iperf3 -c "$IP4_SRV" -p 5201 -t 2 -J | tr -d '\\n')"
      topo_unshape
      in_ns srv iperf3 -s -1 -p 5202 -D
      for i in $(seq 50); do in_ns srv ss -Hltn 'sport = :5202' | grep -q . && break; sleep 0.05; done
      echo "V6=$(in_ns pc iperf3 -c "$IP6_SRV" -p 5202 -t 1 -J | tr -d '\\n')"
    `);
    assert.equal(r.code, 0, r.stderr);
    const get = (k: string): string => r.stdout.match(new RegExp(`^${k}=(.*)$`, 'm'))?.[1] ?? '';
    const id = get('ID');
    assert.match(id, /^lw[0-9a-f]{6}$/);
    assert.equal(get('COUNT'), '4');
    assert.match(get('QDISC'), /tbf .*rate 1Gbit/);
    assert.match(get('ADDR'), /inet 10\.200\.1\.2\/24/);
    const shaped = iperfBps(get('SHAPED'));
    assert.ok(shaped < 1.02e9 && shaped > 0.5e9, `shaped throughput ${(shaped / 1e9).toFixed(3)} Gbit/s`);
    assert.ok(iperfBps(get('V6')) > 0, 'IPv6 through mb');
    // The EXIT trap removed everything.
    assert.deepEqual(await listNamespaces(id), []);
  });

  for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
    test(`a benchmark shell killed with ${sig} leaves no namespace behind`, async () => {
      const child = spawn('bash', ['-c', `source ${JSON.stringify(SCRIPT)}; topo_up; echo "UP $TOPO_ID"; while :; do sleep 0.1; done`], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const id = await waitFor(() => out.match(/UP (lw[0-9a-f]{6})/)?.[1], 15_000, { what: 'topo_up' });
      assert.equal((await listNamespaces(id)).length, 4);
      const closed = new Promise((r) => child.on('close', r));
      child.kill(sig);
      await closed;
      if (sig === 'SIGKILL') {
        // SIGKILL cannot be handled: the namespaces stay until a reaper runs (possibly a concurrent
        // test run's createTopology, so their presence here is not asserted).
        const t = await createTopology({ hosts: [{ name: 'x' }], links: [] });
        await t.destroy();
      }
      await waitFor(async () => (await listNamespaces(id)).length === 0, 5000, { what: `namespaces of ${id} gone` });
    });
  }

  test('topo_down is idempotent and topo_up refuses a second topology in the same shell', async () => {
    const r = await bash(`
      TOPO_NO_TRAP=1
      topo_up
      id=$TOPO_ID
      if topo_up 2>/dev/null; then echo SECOND=yes; else echo SECOND=refused; fi
      topo_down; topo_down
      echo "LEFT=$(ip netns list | grep -c "^$id-" || true)"
    `);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^SECOND=refused$/m);
    assert.match(r.stdout, /^LEFT=0$/m);
  });
});
