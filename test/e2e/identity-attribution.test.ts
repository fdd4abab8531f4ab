// Real processes in a private network namespace: sock_diag + /proc (+ eBPF) attribution of
// TCP, UDP, ICMP flows, inherited sockets and sockets passed over SCM_RIGHTS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { Attribution, FlowTuple } from '../../src/identity/types.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..', '..');
const scenarioPy = join(root, 'test', 'e2e', 'identity-scenario.py');
const probeJs = join(here, 'identity-probe-cli.js');
const ns = `lwid${randomBytes(3).toString('hex')}`;

/** A line-oriented child process: send a line, await the next line. */
class LineProc {
  readonly proc: ChildProcessWithoutNullStreams;
  private readonly rl: Interface;
  private readonly lines: string[] = [];
  private waiters: ((l: string) => void)[] = [];
  stderr = '';
  constructor(cmd: string[]) {
    this.proc = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: 'pipe' });
    this.proc.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.rl = createInterface({ input: this.proc.stdout });
    this.rl.on('line', (l) => {
      const w = this.waiters.shift();
      if (w) w(l);
      else this.lines.push(l);
    });
  }
  next(timeoutMs = 15000): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no output within ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs);
      this.waiters.push((line) => {
        clearTimeout(t);
        resolve(line);
      });
    });
  }
  send(line: string): void {
    this.proc.stdin.write(line + '\n');
  }
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.stdin.end();
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
}

interface Scenario {
  tuple: FlowTuple;
  pids: Record<string, number>;
  proc: LineProc;
}

const live: LineProc[] = [];
async function scenario(name: string): Promise<Scenario> {
  const p = new LineProc(['/usr/bin/python3', scenarioPy, name]);
  live.push(p);
  const j = JSON.parse(await p.next()) as { tuple: FlowTuple; pids: Record<string, number> };
  return { ...j, proc: p };
}

type ProbeReply = Attribution & { ms: number; stats: { fullScans: number; bpfHits: number } };
const probes: Record<string, LineProc> = {};
async function attribute(probe: string, t: FlowTuple): Promise<ProbeReply> {
  const p = probes[probe]!;
  p.send(JSON.stringify(t));
  return JSON.parse(await p.next()) as ProbeReply;
}

function holderPids(r: Attribution): number[] {
  return r.holders.map((h) => h.pid).sort((a, b) => a - b);
}

const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);

before(async () => {
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
  // Ping sockets are off by default ("1 0"); allow them for every group inside this namespace only.
  execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ping_group_range=0 2147483647']);
  const server = new LineProc(['/usr/bin/python3', scenarioPy, 'server']);
  live.push(server);
  assert.deepEqual(JSON.parse(await server.next()), { ready: true });
  for (const [name, args] of [
    ['bpf', ['--bpf', 'on']],
    ['proc', ['--bpf', 'off']],
    ['exhaustive', ['--bpf', 'on', '--exhaustive']],
  ] as const) {
    const p = new LineProc([process.execPath, probeJs, ...args]);
    probes[name] = p;
    const hello = JSON.parse(await p.next()) as { ready: boolean; bpf: boolean; bpfError: string | null };
    assert.equal(hello.bpf, name !== 'proc', `probe ${name}: bpf ${String(hello.bpfError)}`);
  }
});

after(async () => {
  for (const p of Object.values(probes)) await p.stop();
  for (const p of live) await p.stop();
  try {
    execFileSync('ip', ['netns', 'del', ns]);
  } catch {
    // already gone
  }
});

// Scenarios the eBPF path must answer without a full scan (TCP/UDP with a cookie).
const bpfFast = new Set(['tcp4', 'tcp6', 'udp-connected', 'udp-unconnected', 'inherit-exec', 'inherit-passive', 'scm-use']);
let lastFullScans = 0;

async function expectHolders(name: string, expected: (s: Scenario) => number[], probesToUse = ['bpf', 'proc', 'exhaustive']): Promise<Scenario> {
  const s = await scenario(name);
  try {
    for (const probe of probesToUse) {
      const r = await attribute(probe, s.tuple);
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
        assert.ok(h.cmdline.some((a) => a.endsWith('identity-scenario.py')), `${name}: cmdline ${h.cmdline.join(' ')}`);
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

test('UDP: connected socket, and unconnected socket bound to the wildcard address', async () => {
  await expectHolders('udp-connected', (s) => [s.pids.holder!]);
  await expectHolders('udp-unconnected', (s) => [s.pids.holder!]);
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
  const s = await scenario('gone');
  await new Promise((r) => s.proc.proc.once('exit', r));
  for (const probe of ['bpf', 'proc']) {
    const r = await attribute(probe, s.tuple);
    assert.equal(r.unknown, true, probe);
    assert.deepEqual(r.holders, []);
    assert.ok(r.reason && r.reason.length > 0);
  }
});

test('a tuple with no socket is unknown, with a reason', async () => {
  const r = await attribute('bpf', { family: 4, proto: 'tcp', src: '127.0.0.1', sport: 1, dst: '127.0.0.1', dport: 2 });
  assert.equal(r.unknown, true);
  assert.equal(r.socket, undefined);
  assert.match(r.reason ?? '', /no TCP socket/);
});
