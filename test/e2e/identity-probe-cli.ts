// Test helper run inside a network namespace: reads flow tuples as JSON lines on stdin and
// answers each with the attribution as a JSON line. Options: --bpf on|off, --exhaustive,
// --index-ms N.
import { createInterface } from 'node:readline';
import { Attributor, type FlowTuple } from '../../src/identity/attribute.js';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const bpf = (opt('--bpf') ?? 'auto') as 'on' | 'off' | 'auto';
const a = new Attributor({ bpf, exhaustive: args.includes('--exhaustive'), indexIntervalMs: Number(opt('--index-ms') ?? 0) });
process.stdout.write(`${JSON.stringify({ ready: true, bpf: a.bpfMode, bpfError: a.bpfError ?? null })}\n`);
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const t = JSON.parse(line) as FlowTuple;
  const t0 = performance.now();
  const r = a.attribute(t);
  const ms = performance.now() - t0;
  process.stdout.write(`${JSON.stringify({ ...r, ms, stats: a.stats })}\n`);
});
rl.on('close', () => {
  void a.close().then(() => process.exit(0));
});
