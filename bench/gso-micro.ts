// Micro-benchmark of the agent's GSO path in userspace, without the kernel: cut one 64 KiB
// super-packet (IPv4, timestamps option) into 1,428-byte segments and label each in place
// (agent/superpacket.ts), for v1 and compat; and, as the floor, the same bytes copied and HMACed
// without any header work. CPU time of this thread (process.cpuUsage), so a busy machine
// slows the wall clock but not the figure much. Prints µs per segment and per super-packet.
// Usage: node dist/bench/gso-micro.js [super-packets per run, default 2000]
import { cutAndLabel } from '../src/agent/superpacket.js';
import { LabelKey } from '../src/label/keys.js';
import { getProfile } from '../src/label/registry.js';
import { buildTcpPacket } from '../src/wire/build.js';
import { parseIpPacket } from '../src/wire/packet.js';

const N = Number(process.argv[2] ?? 2000);
const SIZE = 1428;
const SEGS = 45;
const payload = Buffer.alloc(SIZE * SEGS);
for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
const ts = Uint8Array.from([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
const key = LabelKey.fromBytes(Buffer.alloc(32, 7), 'bench');
const slots = Array.from({ length: 192 }, () => Buffer.alloc(9216));
const lens = new Uint32Array(192);

function cpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

function run(profileName: string, withOptions: boolean): number {
  const profile = getProfile(profileName);
  const pkt = buildTcpPacket({ family: 4, seq: 1000, flags: 0x18, payload, ...(withOptions ? { options: ts } : {}) });
  const p = parseIpPacket(pkt);
  if (!p.ok) throw new Error(p.reason);
  const ctx = { tag: 0, nat: 0 };
  for (let w = 0; w < 200; w++) cutAndLabel(profile, pkt, p, SIZE, 0, key, ctx, slots, lens);
  const t0 = cpuMicros();
  for (let k = 0; k < N; k++) {
    const r = cutAndLabel(profile, pkt, p, SIZE, 0, key, ctx, slots, lens);
    if (r.written !== SEGS || r.labelled !== SEGS) throw new Error(`cut ${r.written}, labelled ${r.labelled}: ${r.error}`);
  }
  return (cpuMicros() - t0) / N;
}

function floor(): number {
  const t0 = cpuMicros();
  for (let k = 0; k < N; k++) {
    for (let j = 0; j < SEGS; j++) {
      const seg = payload.subarray(j * SIZE, (j + 1) * SIZE);
      slots[j]!.set(seg, 72);
      key.mac(slots[j]!.subarray(0, 72), seg);
    }
  }
  return (cpuMicros() - t0) / N;
}

for (const [name, us] of [
  ['v1 (timestamps)', run('v1', true)],
  ['compat', run('compat', false)],
  ['copy + HMAC only', floor()],
] as const) {
  console.log(
    `${name.padEnd(18)} ${(us / SEGS).toFixed(2)} µs/segment  ${us.toFixed(1)} µs/super-packet (${SEGS} segments of ${SIZE} bytes)`,
  );
}
