// The GSO path's segmenter (agent/segment.ts, agent/superpacket.ts) and its segment size
// (agent/segment-size.ts): properties over random super-packets, for both profiles, and the
// size rules by example.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { segmentCount, writeSegment, finishSegment } from '../../src/agent/segment.js';
import {
  FALLBACK_MSS_V4,
  FALLBACK_MSS_V6,
  PathInfoCache,
  labelledTcpHeaderBound,
  segmentPayloadSize,
} from '../../src/agent/segment-size.js';
import { decideAgentPacket, NF_INET_LOCAL_OUT } from '../../src/agent/decide.js';
import { cutAndLabel } from '../../src/agent/superpacket.js';
import { LabelKey } from '../../src/label/keys.js';
import { verifyWith } from '../../src/label/profile.js';
import { getProfile } from '../../src/label/registry.js';
import { buildTcpPacket } from '../../src/wire/build.js';
import { parseIpPacket, type ParsedPacket } from '../../src/wire/packet.js';
import { TCP_ACK, TCP_CWR, TCP_ECE, TCP_FIN, TCP_PSH, TCP_URG } from '../../src/wire/tcp.js';
import { packetChecksumsOk } from './wire-testutil.js';

const key = LabelKey.fromBytes(Buffer.alloc(32, 0x5a), 'test', false, 3);
const slots = Array.from({ length: 192 }, () => Buffer.alloc(9216));
const lens = new Uint32Array(192);
const TS = Uint8Array.from([1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7]);
const SACK1 = Uint8Array.from([1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2]);

function parsed(pkt: Buffer): ParsedPacket {
  const p = parseIpPacket(pkt);
  if (!p.ok) throw new Error(p.reason);
  return p;
}

const superArb = fc.record({
  family: fc.constantFrom(4 as const, 6 as const),
  payloadLen: fc.integer({ min: 1, max: 20000 }),
  size: fc.integer({ min: 64, max: 9000 }),
  seq: fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0xffff0000, max: 0xffffffff })),
  flags: fc.subarray([TCP_PSH, TCP_FIN, TCP_CWR, TCP_ECE, TCP_URG]).map((f) => f.reduce((a, b) => a | b, TCP_ACK)),
  id: fc.integer({ min: 0, max: 0xffff }),
  options: fc.constantFrom(new Uint8Array(0), TS, Uint8Array.from([...TS, ...SACK1])),
  fill: fc.integer({ min: 0, max: 255 }),
});

test('segmenter: the cuts of a random super-packet reassemble to its byte stream, with seq, flags, IP ids, lengths and checksums right', () => {
  fc.assert(
    fc.property(superArb, (s) => {
      const payload = Buffer.alloc(s.payloadLen);
      for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + s.fill) & 0xff;
      const pkt = buildTcpPacket({ family: s.family, seq: s.seq, flags: s.flags, id: s.id, options: s.options, payload });
      const p = parsed(pkt);
      const n = segmentCount(s.payloadLen, s.size);
      assert.equal(n, Math.ceil(s.payloadLen / s.size));
      const parts: Buffer[] = [];
      for (let i = 0; i < n; i++) {
        const out = Buffer.alloc(p.tcp!.payloadOffset + s.size);
        const len = writeSegment(pkt, p, s.size, i, out);
        finishSegment(out, p, len);
        const seg = out.subarray(0, len);
        const q = parsed(seg);
        const t = q.tcp!;
        assert.ok(packetChecksumsOk(seg, q.l4Offset), `segment ${i}: checksums`);
        assert.ok(t.payloadLen <= s.size && t.payloadLen > 0);
        assert.equal(t.seq, (s.seq + i * s.size) >>> 0, `segment ${i}: seq`);
        const last = i === n - 1;
        const expect = s.flags & ~(last ? 0 : TCP_PSH | TCP_FIN) & ~(i === 0 ? 0 : TCP_CWR);
        assert.equal(t.flags, expect, `segment ${i}: flags`);
        assert.deepEqual(seg.subarray(t.optionsOffset, t.payloadOffset), pkt.subarray(p.tcp!.optionsOffset, p.tcp!.payloadOffset));
        if (s.family === 4) assert.equal(seg.readUInt16BE(4), (s.id + i) & 0xffff, `segment ${i}: IP id`);
        parts.push(Buffer.from(seg.subarray(t.payloadOffset)));
      }
      assert.deepEqual(Buffer.concat(parts), payload);
    }),
    { numRuns: 300 },
  );
});

for (const profileName of ['v1', 'compat'] as const) {
  test(`segmenter + ${profileName}: every segment cut from a random super-packet is labelled, verifies, and the payloads reassemble`, () => {
    const profile = getProfile(profileName);
    fc.assert(
      fc.property(superArb, (s) => {
        // compat labels carry no other option: the stack negotiated none.
        const options = profileName === 'compat' ? new Uint8Array(0) : s.options;
        const payload = Buffer.alloc(s.payloadLen, s.fill);
        for (let i = 0; i < payload.length; i += 7) payload[i] = i & 0xff;
        const pkt = buildTcpPacket({ family: s.family, seq: s.seq, flags: s.flags, id: s.id, options, payload });
        const p = parsed(pkt);
        const size = Math.min(s.size, 9216 - p.tcp!.payloadOffset - 40);
        const n = segmentCount(s.payloadLen, size);
        const ctx = { tag: 0x1234, nat: 0 };
        const parts: Buffer[] = [];
        for (let first = 0; first < n; ) {
          const r = cutAndLabel(profile, pkt, p, size, first, key, ctx, slots, lens);
          assert.equal(r.error, undefined);
          assert.equal(r.labelled, r.written);
          for (let j = 0; j < r.written; j++) {
            const seg = slots[j]!.subarray(0, lens[j]!);
            const q = parsed(seg);
            assert.ok(packetChecksumsOk(seg, q.l4Offset), `segment ${first + j}: checksums`);
            const v = verifyWith(profile, seg, [key], { allowNat: 0 });
            assert.equal(v.verdict, 'valid', `segment ${first + j}: ${v.reason}`);
            if (profileName === 'v1') assert.equal(v.tag, 0x1234);
            assert.equal(q.tcp!.seq, (s.seq + (first + j) * size) >>> 0);
            parts.push(Buffer.from(seg.subarray(q.tcp!.payloadOffset)));
          }
          first += r.written;
        }
        assert.deepEqual(Buffer.concat(parts), payload);
      }),
      { numRuns: 150 },
    );
  });
}

// Options that make v1 trim: timestamps and three SACK blocks (12 + 26 bytes) leave no room
// for the full label (compact, SACK cut to its first block).
const SACK3 = Uint8Array.from([1, 1, 5, 26, ...Array.from({ length: 24 }, (_, i) => i + 1)]);
const slowSlots = Array.from({ length: 192 }, () => Buffer.alloc(9216));
const slowLens = new Uint32Array(192);

test("segmenter + v1: the fast path for a super-packet's later segments (labelSibling) writes byte for byte what labelling each segment on its own writes", () => {
  const v1 = getProfile('v1');
  assert.ok(v1.labelSibling, 'v1 has the fast path');
  const { labelSibling: _none, ...v1Slow } = v1;
  fc.assert(
    fc.property(
      superArb,
      fc.constantFrom(new Uint8Array(0), TS, Uint8Array.from([...TS, ...SACK1]), Uint8Array.from([...TS, ...SACK3])),
      fc.integer({ min: 0, max: 0xffff }),
      fc.integer({ min: 0, max: 7 }),
      fc.integer({ min: 1, max: 192 }),
      (s, options, tag, nat, chunk) => {
        const payload = Buffer.alloc(s.payloadLen);
        for (let i = 0; i < payload.length; i++) payload[i] = (i * 13 + s.fill) & 0xff;
        const pkt = buildTcpPacket({ family: s.family, seq: s.seq, flags: s.flags, id: s.id, options, payload });
        const p = parsed(pkt);
        const size = Math.min(s.size, 9216 - p.tcp!.payloadOffset - 40);
        const n = segmentCount(s.payloadLen, size);
        // One clock for both, so that both write the same epoch.
        const ctx = { tag, nat, timeMs: 1_700_000_000_000 };
        for (let first = 0; first < n; ) {
          const fast = { ...cutAndLabel(v1, pkt, p, size, first, key, ctx, slots.slice(0, chunk), lens) };
          const slow = cutAndLabel(v1Slow, pkt, p, size, first, key, ctx, slowSlots.slice(0, chunk), slowLens);
          assert.deepEqual(fast, { ...slow });
          assert.ok(fast.written > 0);
          for (let j = 0; j < fast.written; j++) {
            assert.equal(lens[j], slowLens[j], `segment ${first + j}: length`);
            assert.deepEqual(slots[j]!.subarray(0, lens[j]!), slowSlots[j]!.subarray(0, slowLens[j]!), `segment ${first + j}`);
          }
          first += fast.written;
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('segmenter + v1: labelSibling declines (-1) unless its template is the segment v1 labelled last', () => {
  const v1 = getProfile('v1');
  const pkt = buildTcpPacket({ family: 4, seq: 1, flags: TCP_ACK, options: TS, payload: Buffer.alloc(5000, 3) });
  const p = parsed(pkt);
  const r = cutAndLabel(v1, pkt, p, 1428, 0, key, {}, slots.slice(0, 1), lens);
  assert.equal(r.labelled, 1);
  assert.ok(v1.labelSibling!(slots[0]!, pkt, p, 1428, 1, slots[1]!).length > 0, 'the control: its own first segment is a template');
  // Another packet labelled since: slot 0 is no longer what v1 labelled last.
  const other = buildTcpPacket({ family: 4, seq: 9, flags: TCP_ACK, payload: Buffer.alloc(100, 4) });
  cutAndLabel(v1, other, parsed(other), 1428, 0, key, {}, slots.slice(2, 3), lens);
  assert.equal(v1.labelSibling!(slots[0]!, pkt, p, 1428, 1, slots[1]!).length, -1);
});

test('segmenter: a segment tampered after the cut no longer verifies (the check above would notice a wrong MAC)', () => {
  const profile = getProfile('v1');
  const pkt = buildTcpPacket({ family: 4, seq: 7, flags: TCP_ACK | TCP_PSH, options: TS, payload: Buffer.alloc(4000, 1) });
  const p = parsed(pkt);
  const r = cutAndLabel(profile, pkt, p, 1428, 0, key, {}, slots, lens);
  assert.equal(r.written, 3);
  const seg = Buffer.from(slots[1]!.subarray(0, lens[1]!));
  assert.equal(verifyWith(profile, seg, [key]).verdict, 'valid');
  seg[seg.length - 1]! ^= 1;
  assert.equal(verifyWith(profile, seg, [key]).verdict, 'invalid');
});

test('segment size: the stack size from tcp_info, smaller by the label where the path MTU binds', () => {
  const v1 = getProfile('v1');
  const pkt = buildTcpPacket({ family: 4, flags: TCP_ACK, options: TS, payload: Buffer.alloc(64000) });
  const p = parsed(pkt);
  const hdr = labelledTcpHeaderBound(p, v1.overhead);
  assert.equal(hdr, 52); // 20 + NOP NOP TS (12) + label (20)
  // MTU 1500, peer MSS 1460 clamped by 20: mss_cache 1440 - 12 = 1428; labelled 20 + 52 + 1428 = 1500.
  assert.equal(segmentPayloadSize(p, { sndMss: 1428, pmtu: 1500, timestamps: true }, hdr, 1500), 1428);
  // Path MTU 1400: the stack says 1400 - 40 - 12 = 1348; labelled that would be 1420 bytes: cut at 1328.
  assert.equal(segmentPayloadSize(p, { sndMss: 1348, pmtu: 1400, timestamps: true }, hdr, 1500), 1328);
  // A peer with a small MSS binds: the stack's size.
  assert.equal(segmentPayloadSize(p, { sndMss: 988, pmtu: 1500, timestamps: true }, hdr, 1500), 988);
  // SACK blocks in this super-packet shrink the stack's size as tcp_current_mss does.
  const sack = parsed(
    buildTcpPacket({ family: 4, flags: TCP_ACK, options: Uint8Array.from([...TS, ...SACK1]), payload: Buffer.alloc(9000) }),
  );
  assert.equal(
    segmentPayloadSize(sack, { sndMss: 1428, pmtu: 1500, timestamps: true }, labelledTcpHeaderBound(sack, v1.overhead), 1500),
    1416,
  );
  // The interface MTU bounds a path MTU the socket has not learned.
  assert.equal(segmentPayloadSize(p, { sndMss: 8928, pmtu: 0, timestamps: true }, hdr, 1500), 1428);
  // No tcp_info: the minimum MSS of every path, less the label and options.
  assert.equal(segmentPayloadSize(p, undefined, hdr, 1500), FALLBACK_MSS_V4 - 32);
  const p6 = parsed(buildTcpPacket({ family: 6, flags: TCP_ACK, options: TS, payload: Buffer.alloc(9000) }));
  assert.equal(segmentPayloadSize(p6, undefined, hdr, 1500), FALLBACK_MSS_V6 - 32);
  // compat: no stack options, a 40-byte label.
  const c = parsed(buildTcpPacket({ family: 4, flags: TCP_ACK, payload: Buffer.alloc(9000) }));
  assert.equal(labelledTcpHeaderBound(c, getProfile('compat').overhead), 60);
  assert.equal(segmentPayloadSize(c, { sndMss: 1420, pmtu: 1500, timestamps: false }, 60, 1500), 1420);
});

test('path info cache: one lookup per flow per refresh, a colliding hash key is asked again', () => {
  let now = 0;
  const asked: number[] = [];
  const cache = new PathInfoCache(
    (_f, _s, sport) => {
      asked.push(sport);
      return { sndMss: sport, pmtu: 1500, timestamps: false };
    },
    50,
    2,
    () => now,
  );
  const a = buildTcpPacket({ family: 4, srcPort: 1000, payload: Buffer.alloc(10) });
  const b = buildTcpPacket({ family: 4, srcPort: 2000, payload: Buffer.alloc(10) });
  const c = buildTcpPacket({ family: 4, srcPort: 3000, payload: Buffer.alloc(10) });
  assert.equal(cache.get(1, a, parsed(a))?.sndMss, 1000);
  assert.equal(cache.get(1, a, parsed(a))?.sndMss, 1000);
  assert.deepEqual(asked, [1000]);
  assert.equal(cache.get(1, b, parsed(b))?.sndMss, 2000, 'same key, other tuple');
  now = 49;
  cache.get(1, b, parsed(b));
  assert.deepEqual(asked, [1000, 2000]);
  now = 50;
  cache.get(1, b, parsed(b));
  assert.deepEqual(asked, [1000, 2000, 2000], 'refreshed');
  cache.get(2, a, parsed(a));
  cache.get(3, c, parsed(c));
  assert.equal(cache.size, 2, 'bounded');
});

test("path info cache: a refresh without an answer keeps the flow's last answer; a flow never answered has none", () => {
  let now = 0;
  let answer = true;
  const cache = new PathInfoCache(
    () => (answer ? { sndMss: 1428, pmtu: 1500, timestamps: true } : undefined),
    50,
    10,
    () => now,
  );
  const a = buildTcpPacket({ family: 4, srcPort: 1000, payload: Buffer.alloc(10) });
  const b = buildTcpPacket({ family: 4, srcPort: 2000, payload: Buffer.alloc(10) });
  assert.equal(cache.get(1, a, parsed(a))?.sndMss, 1428);
  answer = false;
  now = 100;
  assert.equal(cache.get(1, a, parsed(a))?.sndMss, 1428, 'the last answer');
  assert.equal(cache.get(2, b, parsed(b)), undefined, 'no answer ever: the caller falls back');
  assert.equal(cache.misses, 2);
});

test('no room for the label: the segment leaves as written, counted as unlabelled_no_room (not as non-TCP), its bytes not as labelled', () => {
  const v1 = getProfile('v1');
  const ts = [8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
  const fourTs = Uint8Array.from([...ts, ...ts, ...ts, ...ts]); // 40 bytes, none of them removable
  const seg = buildTcpPacket({ family: 4, seq: 1, flags: TCP_ACK, options: fourTs, payload: Buffer.alloc(100, 1) });
  const d = decideAgentPacket(v1, NF_INET_LOCAL_OUT, seg, 0, 1500, key, Buffer.alloc(65536), undefined, {});
  assert.deepEqual([d.verdict, d.counter, d.reason, d.payload], ['repeat', 'unlabelled_no_room', 'no-room-for-label', undefined]);
  // Control: a packet that is not TCP is still passed_not_tcp.
  const udp = Buffer.from(seg);
  udp[9] = 17;
  assert.equal(decideAgentPacket(v1, NF_INET_LOCAL_OUT, udp, 0, 1500, key, Buffer.alloc(65536)).counter, 'passed_not_tcp');
  const sp = buildTcpPacket({ family: 4, seq: 1, flags: TCP_ACK, options: fourTs, payload: Buffer.alloc(3000, 1) });
  const r = cutAndLabel(v1, sp, parsed(sp), 1000, 0, key, {}, slots, lens);
  assert.deepEqual([r.written, r.labelled, r.unlabelled, r.bytes], [3, 0, 3, 0]);
});

test('segmenter + v1: when labelling shrinks the header (an MPTCP DSS removed), every segment still carries its own payload', () => {
  const v1 = getProfile('v1');
  const dss28 = [30, 28, 0x20, 0x0f, ...new Array<number>(24).fill(7)];
  const options = Uint8Array.from([...TS, ...dss28]); // 40 bytes: the label fits only without the DSS
  const payload = Buffer.from(Array.from({ length: 3000 }, (_, i) => i & 0xff));
  const pkt = buildTcpPacket({ family: 4, seq: 100, flags: TCP_ACK, options, payload });
  const r = cutAndLabel(v1, pkt, parsed(pkt), 1000, 0, key, {}, slots, lens);
  assert.deepEqual([r.written, r.labelled, r.optionsRemoved], [3, 3, 3]);
  for (let j = 0; j < 3; j++) {
    const seg = Buffer.from(slots[j]!.subarray(0, lens[j]!));
    const p = parsed(seg);
    assert.equal(p.tcp!.dataOffset, 20 + 20 + 12, 'label and timestamps, the DSS gone');
    assert.ok(seg.subarray(p.tcp!.payloadOffset).equals(payload.subarray(j * 1000, (j + 1) * 1000)), `segment ${j}'s payload`);
    assert.equal(verifyWith(v1, seg, [key]).verdict, 'valid');
  }
});
