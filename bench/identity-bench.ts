// Attribution latency per new TCP connection, with many idle processes holding sockets.
// Run inside a network namespace by bench/identity-bench.sh (which also starts the idle load):
//   node dist/bench/identity-bench.js [connections]
// For each mode (eBPF fast path; /proc only with a background index; /proc only, no index),
// a Python client opens connections one by one and each is attributed synchronously; prints
// p50/p99/max of the attribution time and how each was found.
import net from 'node:net';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { Attributor, type AttributorOptions, type FlowTuple } from '../src/identity/attribute.js';
import { scanSnapshot } from '../src/identity/socket-index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const n = Number(process.argv[2] ?? 1000);
const WARMUP = 20;

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

async function run(label: string, opts: AttributorOptions, count: number): Promise<void> {
  const a = new Attributor(opts);
  // Start measuring once the first (full) background pass has arrived.
  while (opts.indexIntervalMs !== 0 && a.indexStatus().scans === 0) await new Promise((r) => setTimeout(r, 50));
  const server = net.createServer((c) => c.on('error', () => {}).resume()).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const port = (server.address() as net.AddressInfo).port;
  const client = spawn('/usr/bin/python3', [join(root, 'bench', 'identity-client.py'), String(port), String(count + WARMUP)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const times: number[] = [];
  let unknown = 0;
  let holdersOk = 0;
  const rl = createInterface({ input: client.stdout });
  let i = 0;
  const t0 = performance.now();
  for await (const line of rl) {
    const t = JSON.parse(line) as FlowTuple;
    const s = performance.now();
    const r = a.attribute(t);
    const ms = performance.now() - s;
    if (i++ >= WARMUP) {
      times.push(ms);
      if (r.unknown) unknown++;
      else if (r.holders.length === 1 && r.holders[0]!.pid === client.pid) holdersOk++;
    }
    client.stdin.write('\n');
  }
  const wall = (performance.now() - t0) / 1000;
  server.close();
  const st = a.stats;
  await a.close();
  console.log(
    `${label.padEnd(34)} n=${times.length} p50=${pct(times, 50).toFixed(3)}ms p99=${pct(times, 99).toFixed(3)}ms max=${Math.max(...times).toFixed(3)}ms ` +
      `correct=${holdersOk} unknown=${unknown} incrScans=${st.incrementalScans} fullScans=${st.fullScans} bpfHits=${st.bpfHits} (${(i / wall).toFixed(0)} conn/s incl. client)`,
  );
}

const t = performance.now();
const snap = scanSnapshot();
console.log(`full /proc scan: ${(performance.now() - t).toFixed(1)} ms, ${snap.size} socket fds indexed`);
await run('warm-up (not reported)', { bpf: 'on', indexIntervalMs: 0 }, 200);
await run('eBPF + background index (default)', { bpf: 'on' }, n);
await run('eBPF, no background index', { bpf: 'on', indexIntervalMs: 0 }, n);
await run('eBPF + background index (default)', { bpf: 'on' }, n);
await run('/proc only + background index', { bpf: 'off' }, Math.min(n, 200));
await run('/proc only, exhaustive (full scans)', { bpf: 'off', indexIntervalMs: 0, exhaustive: true }, Math.min(n, 100));
process.exit(0);
