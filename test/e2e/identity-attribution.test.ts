// Real processes in a private network namespace: sock_diag + /proc (+ eBPF) attribution of
// TCP, UDP, ICMP flows, inherited sockets and sockets passed over SCM_RIGHTS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { Attribution } from '../../src/identity/types.js';
import { createNs, deleteNs, scenario, startServer, Probe, type LineProc, type Scenario } from './identity-harness.js';

let ns = '';
let server: LineProc | undefined;
const probes: Record<string, Probe> = {};

function holderPids(r: Attribution): number[] {
  return r.holders.map((h) => h.pid).sort((a, b) => a - b);
}
const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);

before(async () => {
  ns = createNs();
  server = await startServer(ns);
  for (const [name, args] of [
    ['bpf', ['--bpf', 'on']],
    ['proc', ['--bpf', 'off']],
    ['exhaustive', ['--bpf', 'on', '--exhaustive']],
  ] as const) {
    const p = await Probe.start(ns, [...args]);
    probes[name] = p;
    assert.equal(p.bpf, name !== 'proc', `probe ${name}: bpf ${String(p.bpfError)}`);
  }
});

after(async () => {
  for (const p of Object.values(probes)) await p.stop();
  await server?.stop();
  deleteNs(ns);
});

// Scenarios the eBPF path must answer without a full scan (TCP/UDP with a cookie).
const bpfFast = new Set([
  'tcp4',
  'tcp6',
  'tcp-mapped',
  'tcp-syn-held',
  'udp-connected',
  'udp-unconnected',
  'inherit-exec',
  'inherit-passive',
  'scm-use',
]);
let lastFullScans = 0;

async function expectHolders(
  name: string,
  expected: (s: Scenario) => number[],
  probesToUse = ['bpf', 'proc', 'exhaustive'],
): Promise<Scenario> {
  const s = await scenario(ns, name);
  try {
    for (const probe of probesToUse) {
      const r = await probes[probe]!.attribute(s.tuple);
      assert.equal(r.unknown, false, `${name} via ${probe}: ${r.reason ?? ''}`);
      if (probe === 'bpf' && bpfFast.has(name)) {
        // Found through the socket cookie, without a full /proc scan.
        assert.equal(r.stats.fullScans, lastFullScans, `${name}: bpf path fell back to a full scan`);
      }
      if (probe === 'bpf') lastFullScans = r.stats.fullScans;
      assert.ok(r.socket && r.socket.inode > 0, `${name} via ${probe}: socket inode`);
      assert.equal(r.socket.uid, 0);
      assert.deepEqual(holderPids(r), sorted(expected(s)), `${name} via ${probe}`);
      for (const h of r.holders) {
        assert.match(h.exe, /^\/usr\/bin\/python3(\.\d+)?$/, `${name}: exe of ${h.pid}`);
        assert.match(h.sha256 ?? '', /^[0-9a-f]{64}$/);
        assert.equal(h.uid, 0);
        assert.equal(h.user, 'root');
        assert.ok(
          h.cmdline.some((a) => a.endsWith('identity-scenario.py')),
          `${name}: cmdline ${h.cmdline.join(' ')}`,
        );
        assert.ok(h.ppid > 0);
      }
    }
  } finally {
    await s.proc.stop();
  }
  return s;
}

test('TCP over IPv4 and IPv6: the connecting process', async () => {
  await expectHolders('tcp4', (s) => [s.pids.holder!]);
  await expectHolders('tcp6', (s) => [s.pids.holder!]);
});

test('TCP whose SYN never left (dropped at OUTPUT, where NFQUEUE would queue it): still attributed', async () => {
  execFileSync('ip', ['netns', 'exec', ns, 'iptables', '-A', 'OUTPUT', '-p', 'tcp', '--dport', '9002', '--syn', '-j', 'DROP']);
  await expectHolders('tcp-syn-held', (s) => [s.pids.holder!]);
});

test('UDP: connected socket, and unconnected socket bound to the wildcard address', async () => {
  await expectHolders('udp-connected', (s) => [s.pids.holder!]);
  await expectHolders('udp-unconnected', (s) => [s.pids.holder!]);
});

test('dual-stack: an IPv6 socket talking to an IPv4-mapped address, looked up as IPv4', async () => {
  await expectHolders('tcp-mapped', (s) => [s.pids.holder!]);
});

test('ICMP: ping sockets (IPv4, IPv6) by echo identifier, and a raw ICMP socket', async () => {
  await expectHolders('ping4', (s) => [s.pids.holder!]);
  await expectHolders('ping6', (s) => [s.pids.holder!]);
  await expectHolders('raw-icmp', (s) => [s.pids.holder!]);
});

test("the paper's case: parent opens the socket, the child it execs inherits it and connects: both hold it", async () => {
  const s = await expectHolders('inherit-exec', (x) => [x.pids.parent!, x.pids.child!]);
  assert.notEqual(s.pids.parent, s.pids.child);
});

test('a child that only holds an inherited socket is a holder too', async () => {
  await expectHolders('inherit-passive', (x) => [x.pids.parent!, x.pids.child!]);
});

test('SCM_RIGHTS: the receiver connects, the sender keeps its copy: both hold it', async () => {
  await expectHolders('scm-use', (x) => [x.pids.sender!, x.pids.receiver!]);
});

test('SCM_RIGHTS to an unrelated process that never uses it: found by a full scan', async () => {
  // The eBPF fast path sees creator and connector only; an unrelated passive receiver needs
  // the /proc scan (exhaustive mode, or the no-eBPF path, or the background index).
  await expectHolders('scm-passive', (x) => [x.pids.sender!, x.pids.receiver!], ['proc', 'exhaustive']);
});

test('a flow whose process has exited is unknown', async () => {
  const s = await scenario(ns, 'gone');
  await new Promise((r) => s.proc.proc.once('exit', r));
  for (const probe of ['bpf', 'proc']) {
    const r = await probes[probe]!.attribute(s.tuple);
    assert.equal(r.unknown, true, probe);
    assert.deepEqual(r.holders, []);
    assert.ok(r.reason && r.reason.length > 0);
  }
});

test('a tuple with no socket is unknown, with a reason', async () => {
  const r = await probes.bpf!.attribute({ family: 4, proto: 'tcp', src: '127.0.0.1', sport: 1, dst: '127.0.0.1', dport: 2 });
  assert.equal(r.unknown, true);
  assert.equal(r.socket, undefined);
  assert.match(r.reason ?? '', /no TCP socket/);
});
