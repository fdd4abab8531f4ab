// Micro-benchmark of the agent's GSO path in userspace, without the kernel: cut one 64 KiB
// super-packet (IPv4, timestamps option) into 1,428-byte segments and label each in place
// (agent/superpacket.ts), for v1 and compat; and, as the floor, the same bytes copied and HMACed
// without any header work; and v1 without its fast path for a super-packet's later segments
// (labelSibling: each segment cut, parsed and labelled on its own, as before it); and the
// verifier's userspace share: each of those v1 segments judged as the verifier's worker judges a
// queued packet (verifier/decide.ts: parse, rule, label, HMAC), without the kernel, and the same
// segments forged with a new tag each (what a flood cycling through tags costs). CPU time of
// this thread (process.cpuUsage), the arms' rounds interleaved and the median round printed:
// the shared machine's speed drifts by a third within minutes. µs per segment and per super-packet.
// Usage: node dist/bench/gso-micro.js [super-packets per run, default 2000]
import { cutAndLabel } from '../src/agent/superpacket.js';
import { LabelKey } from '../src/label/keys.js';
import type { LabelProfile } from '../src/label/profile.js';
import { getProfile } from '../src/label/registry.js';
import { buildTcpPacket } from '../src/wire/build.js';
import { parseIpPacket } from '../src/wire/packet.js';
import { decideVerifierPacket, type RuntimeVerifierRule } from '../src/verifier/decide.js';
import { DEFAULT_MARK } from '../src/config/model.js';

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

/** The IPv4 super-packet every arm cuts, with the timestamps option or without options, parsed. */
function superPacket(withOptions: boolean) {
  const pkt = buildTcpPacket({ family: 4, seq: 1000, flags: 0x18, payload, ...(withOptions ? { options: ts } : {}) });
  const p = parseIpPacket(pkt);
  if (!p.ok) throw new Error(p.reason);
  return { pkt, p };
}

/** One round of `n` super-packets through cutAndLabel with `profile`: µs of CPU per super-packet. */
function run(profile: LabelProfile, withOptions: boolean, n: number): number {
  const { pkt, p } = superPacket(withOptions);
  const ctx = { tag: 0, nat: 0 };
  const t0 = cpuMicros();
  for (let k = 0; k < n; k++) {
    const r = cutAndLabel(profile, pkt, p, SIZE, 0, key, ctx, slots, lens);
    if (r.written !== SEGS || r.labelled !== SEGS) throw new Error(`cut ${r.written}, labelled ${r.labelled}: ${r.error}`);
  }
  return (cpuMicros() - t0) / n;
}

function floor(n: number): number {
  const t0 = cpuMicros();
  for (let k = 0; k < n; k++) {
    for (let j = 0; j < SEGS; j++) {
      const seg = payload.subarray(j * SIZE, (j + 1) * SIZE);
      slots[j]!.set(seg, 72);
      key.mac(slots[j]!.subarray(0, 72), seg);
    }
  }
  return (cpuMicros() - t0) / n;
}

const v1 = getProfile('v1');

// The segments the verifier arm judges: one super-packet cut and labelled with v1, each copied out of its slot.
const v1Segments = (() => {
  const { pkt, p } = superPacket(true);
  const r = cutAndLabel(v1, pkt, p, SIZE, 0, key, { tag: 0, nat: 0 }, slots, lens);
  return Array.from({ length: r.written }, (_, j) => Buffer.from(slots[j]!.subarray(0, lens[j])));
})();
const verifierRules: RuntimeVerifierRule[] = [
  { name: 'bench', inInterfaces: [], outInterfaces: [], sources: [], destinations: [], ports: [], keys: [key], action: 'drop' },
];
const verifierContext = {};

/** One round of the verifier judging the `SEGS` v1 segments of one super-packet `n` times: µs of CPU per super-packet. */
function verifyRun(n: number): number {
  const t0 = cpuMicros();
  for (let k = 0; k < n; k++) {
    for (const seg of v1Segments) {
      const v = decideVerifierPacket(v1, seg, 0, verifierRules, DEFAULT_MARK, 'mb-pc', 'mb-srv', verifierContext, Date.now());
      if (v.judged !== 'valid') throw new Error(`verifier judged a segment ${v.judged} (${v.reason})`);
    }
  }
  return (cpuMicros() - t0) / n;
}
// The same segments as a forger would send them: a new tag in every one (so its MAC is wrong).
// A tag no valid label has shown costs one extra HMAC and is never cached (v1.ts, verifyV1).
const forgedSegments = v1Segments.map((s) => Buffer.from(s));
const TAG_AT = 20 + 20 + 6; // IPv4, TCP base header, the label first: its bytes 6-7
let forgedTag = 0;
function forgedRun(n: number): number {
  const t0 = cpuMicros();
  for (let k = 0; k < n; k++) {
    for (const seg of forgedSegments) {
      forgedTag = (forgedTag + 1) & 0xffff || 1;
      seg.writeUInt16BE(forgedTag, TAG_AT);
      const v = decideVerifierPacket(v1, seg, 0, verifierRules, DEFAULT_MARK, 'mb-pc', 'mb-srv', verifierContext, Date.now());
      if (v.reason !== 'mac-mismatch') throw new Error(`verifier judged a forged segment ${v.judged} (${v.reason})`);
    }
  }
  return (cpuMicros() - t0) / n;
}
// v1 with every segment cut, parsed and labelled on its own: the path before the sibling fast path.
const { labelSibling: _unused, ...v1Slow } = v1;
const arms: [string, (n: number) => number][] = [
  ['v1 (timestamps)', (n) => run(v1, true, n)],
  ['v1, no fast path', (n) => run(v1Slow, true, n)],
  ['compat', (n) => run(getProfile('compat'), false, n)],
  ['copy + HMAC only', floor],
  ['verifier, v1', verifyRun],
  ['verifier, forged', forgedRun],
];
// Rounds interleaved across the arms, the median round reported: the machine's speed drifts.
const ROUNDS = 9;
const per = Math.max(1, Math.ceil(N / ROUNDS));
for (const [, f] of arms) f(Math.min(200, per));
const got: number[][] = arms.map(() => []);
for (let round = 0; round < ROUNDS; round++) {
  for (let a = 0; a < arms.length; a++) got[a]!.push(arms[a]![1](per));
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
arms.forEach(([name], a) => {
  const us = median(got[a]!);
  console.log(
    `${name.padEnd(18)} ${(us / SEGS).toFixed(2)} µs/segment  ${us.toFixed(1)} µs/super-packet (${SEGS} segments of ${SIZE} bytes)`,
  );
});
