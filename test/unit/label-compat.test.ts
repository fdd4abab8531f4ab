import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import {
  LABEL_EXID,
  LABEL_KIND,
  LABEL_LENGTH,
  PAPER_TEST_KEY,
  computeMac,
  findLabelOption,
  labelPacket,
  verifyPacket,
  buildLabelOption,
} from '../../src/label/compat.js';
import { LabelKey } from '../../src/label/keys.js';
import { buildTcpPacket, buildUdpPacket, typicalSynOptions } from '../../src/wire/build.js';
import { parseIpPacket } from '../../src/wire/packet.js';
import { hex, packetChecksumsOk, tcpOptionsArb } from './wire-testutil.js';

const paperKey = LabelKey.fromBytes(PAPER_TEST_KEY, 'paper');
const keyA = LabelKey.fromBytes(Buffer.alloc(32, 0xa5), 'A');
const keyB = LabelKey.fromBytes(Buffer.alloc(16, 0x5a), 'B');

test("constants are the paper's", () => {
  assert.equal(LABEL_KIND, 253);
  assert.equal(LABEL_LENGTH, 40);
  assert.equal(LABEL_EXID, 0x4677);
  assert.equal(PAPER_TEST_KEY.length, 32);
  assert.equal(PAPER_TEST_KEY.toString('hex'), '000000000000000000000000000000000000000000000000' + '6669726577616c6c');
});

test('known answer: HMAC with the paper key over seq 01020304 and "hello"', () => {
  // Computed independently with: printf '\x01\x02\x03\x04hello' | openssl dgst -sha256 -mac HMAC -macopt hexkey:<24 zero bytes>6669726577616c6c
  const expected = '342af37e4381e2af45eaba41b660d215d9d67a23ca62f6ad641c6b9172754aa8';
  assert.equal(computeMac(paperKey, Uint8Array.of(1, 2, 3, 4), Buffer.from('hello')).toString('hex'), expected);
  // ...and with node:crypto directly over the concatenation, as a second derivation.
  assert.equal(
    createHmac('sha256', PAPER_TEST_KEY)
      .update(Buffer.from(`01020304${Buffer.from('hello').toString('hex')}`, 'hex'))
      .digest('hex'),
    expected,
  );
});

test('known answer: whole labelled IPv4 and IPv6 packets, byte for byte (scapy-built expected vectors)', () => {
  // Expected packets built with scapy: IP(...)/TCP(options=[(253, 4677 00000000 <mac>)])/"hello"; the
  // input carries MSS, SACK-permitted, timestamps, wscale, which must all be gone.
  const expected4 =
    '45000055123440004006a46bc0000201c00002029c4000500102030400000000f018ffffeb3e0000' +
    'fd28467700000000342af37e4381e2af45eaba41b660d215d9d67a23ca62f6ad641c6b9172754aa8' +
    '68656c6c6f';
  const expected6 =
    '600000000041064020010db800000000000000000000000120010db80000000000000000000000029c4000500102030400000000f018ffff13ce0000' +
    'fd28467700000000342af37e4381e2af45eaba41b660d215d9d67a23ca62f6ad641c6b9172754aa8' +
    '68656c6c6f';
  for (const [family, expected] of [
    [4, expected4],
    [6, expected6],
  ] as const) {
    const input = buildTcpPacket({ family, seq: 0x01020304, options: typicalSynOptions(), payload: Buffer.from('hello') });
    const r = labelPacket(input, paperKey);
    assert.ok(r.ok);
    assert.equal(r.packet.toString('hex'), expected);
    assert.deepEqual(verifyPacket(hex(expected), [paperKey]), { verdict: 'valid', keyIndex: 0 });
  }
});

test('known answer: IPv6 with a routing header — the TCP checksum uses the final destination (scapy vectors)', () => {
  // scapy: IPv6(dst=2001:db8::100)/IPv6ExtHdrRouting(addresses=[2001:db8::2], segleft=1)/TCP(seq=9, MSS)/"routed",
  // and the same with the label option in place of MSS. Checksum 0x0a3e (it would be 0x0940 with the header's dst).
  const input = hex(
    '6000000000362b4020010db800000000000000000000000120010db8000000000000000000000100060200010000000020010db80000000000000000000000029c40005000000009000000006018ffff52b40000020405b4726f75746564',
  );
  const expected =
    '60000000005a2b4020010db800000000000000000000000120010db8000000000000000000000100060200010000000020010db8000000000000000000000002' +
    '9c4000500000000900000000f018ffff0a3e0000fd28467700000000bc2b0d263cce6857858c876255f9cd12363ea7cb94f43515163dac068d20e67e' +
    '726f75746564';
  const p = parseIpPacket(input);
  assert.ok(p.ok);
  assert.equal(p.pseudoDstOffset, 48);
  assert.equal(p.dstOffset, 24);
  const r = labelPacket(input, paperKey);
  assert.ok(r.ok);
  assert.equal(r.packet.toString('hex'), expected);
});

test('known answer: the 60-byte TCP header built by hand from the spec', () => {
  const payload = Buffer.from('The quick brown fox');
  const input = buildTcpPacket({ family: 4, seq: 0xdeadbeef, ack: 7, flags: 0x18, srcPort: 5555, dstPort: 80, payload });
  const r = labelPacket(input, keyA);
  assert.ok(r.ok);
  const mac = createHmac('sha256', Buffer.alloc(32, 0xa5))
    .update(Buffer.from([0xde, 0xad, 0xbe, 0xef]))
    .update(payload)
    .digest();
  const header = Buffer.alloc(60);
  header.writeUInt16BE(5555, 0);
  header.writeUInt16BE(80, 2);
  header.writeUInt32BE(0xdeadbeef, 4);
  header.writeUInt32BE(7, 8);
  header[12] = 15 << 4;
  header[13] = 0x18;
  header.writeUInt16BE(65535, 14);
  Buffer.from([253, 40, 0x46, 0x77, 0, 0, 0, 0]).copy(header, 20);
  mac.copy(header, 28);
  const got = Buffer.from(r.packet.subarray(20, 80));
  got.writeUInt16BE(0, 16); // checksum checked separately
  assert.equal(got.toString('hex'), header.toString('hex'));
  assert.equal(r.packet.readUInt16BE(2), 20 + 60 + payload.length);
  assert.ok(packetChecksumsOk(r.packet, 20));
});

test('IPv4 options and IPv6 extension headers are kept; lengths and checksums right', () => {
  const v4 = buildTcpPacket({
    family: 4,
    ipv4Options: Uint8Array.of(0x94, 4, 0, 0),
    options: typicalSynOptions(),
    payload: Buffer.from('abc'),
  });
  const r4 = labelPacket(v4, keyA);
  assert.ok(r4.ok);
  assert.deepEqual(r4.packet.subarray(20, 24), Buffer.from([0x94, 4, 0, 0]));
  assert.equal(r4.packet[0], 0x46);
  assert.ok(packetChecksumsOk(r4.packet, 24));
  assert.equal(verifyPacket(r4.packet, [keyA]).verdict, 'valid');

  const v6 = buildTcpPacket({
    family: 6,
    ipv6ExtHeaders: [{ type: 0 }, { type: 60 }],
    options: Uint8Array.of(2, 4, 5, 0xb4),
    payload: Buffer.from('abc'),
  });
  const r6 = labelPacket(v6, keyA);
  assert.ok(r6.ok);
  // Everything of the IP part except the payload length is unchanged.
  assert.deepEqual(r6.packet.subarray(0, 4), v6.subarray(0, 4));
  assert.deepEqual(r6.packet.subarray(6, 56), v6.subarray(6, 56));
  assert.equal(r6.packet.readUInt16BE(4), 16 + 60 + 3);
  assert.ok(packetChecksumsOk(r6.packet, 56));
  assert.equal(verifyPacket(r6.packet, [keyA]).verdict, 'valid');
});

test('labelling drops link padding, replaces an existing label, and writes into `out`', () => {
  const pkt = buildTcpPacket({ family: 4, payload: Buffer.from('pad me') });
  const padded = Buffer.concat([pkt, Buffer.alloc(10, 0xee)]);
  const r = labelPacket(padded, keyA);
  assert.ok(r.ok);
  assert.equal(r.packet.length, pkt.length + 40);
  const again = labelPacket(r.packet, keyB);
  assert.ok(again.ok);
  assert.equal(again.packet.length, r.packet.length);
  assert.deepEqual(verifyPacket(again.packet, [keyA, keyB]), { verdict: 'valid', keyIndex: 1 });
  const out = Buffer.alloc(2000);
  const r2 = labelPacket(pkt, keyA, out);
  assert.ok(r2.ok);
  assert.equal(r2.packet.buffer, out.buffer);
  assert.deepEqual(r2.packet, r.packet);
  // In place: the packet at the start of a large buffer.
  const inPlace = Buffer.alloc(2000);
  pkt.copy(inPlace);
  const r3 = labelPacket(inPlace.subarray(0, pkt.length), keyA, inPlace);
  assert.ok(r3.ok);
  assert.deepEqual(r3.packet, r.packet);
  // Too small an `out` is ignored, not overrun.
  const tiny = Buffer.alloc(10);
  const r4 = labelPacket(pkt, keyA, tiny);
  assert.ok(r4.ok);
  assert.deepEqual(tiny, Buffer.alloc(10));
});

test('labelling: non-TCP is skipped, unparsable is malformed, >65535 is too-large', () => {
  const udp = labelPacket(buildUdpPacket({ family: 4 }), keyA);
  assert.deepEqual(udp, { ok: false, verdict: 'skipped', reason: 'not-tcp' });
  const frag = buildTcpPacket({ family: 4, payload: Buffer.from('x') });
  frag.writeUInt16BE(0x2000, 6);
  assert.deepEqual(labelPacket(frag, keyA), { ok: false, verdict: 'malformed', reason: 'fragment' });
  const badOpts = buildTcpPacket({ family: 4, options: Uint8Array.of(2, 5, 0, 0), payload: Buffer.from('x') });
  assert.deepEqual(labelPacket(badOpts, keyA), { ok: false, verdict: 'malformed', reason: 'bad-option-length' });
  const big = buildTcpPacket({ family: 4, payload: Buffer.alloc(65535 - 40) });
  assert.deepEqual(labelPacket(big, keyA), { ok: false, verdict: 'malformed', reason: 'too-large' });
  const justFits = buildTcpPacket({ family: 4, payload: Buffer.alloc(65535 - 80) });
  const ok = labelPacket(justFits, keyA);
  assert.ok(ok.ok);
  assert.equal(ok.packet.length, 65535);
  assert.equal(verifyPacket(ok.packet, [keyA]).verdict, 'valid');
  // IPv6's payload length leaves out the 40-byte fixed header: 40 + 65,535 bytes fit.
  const v6JustFits = labelPacket(buildTcpPacket({ family: 6, payload: Buffer.alloc(65535 - 60) }), keyA);
  assert.ok(v6JustFits.ok);
  assert.equal(v6JustFits.packet.length, 65535 + 40);
  assert.equal(Buffer.from(v6JustFits.packet).readUInt16BE(4), 65535, 'IPv6 payload length');
  assert.equal(verifyPacket(v6JustFits.packet, [keyA]).verdict, 'valid');
  const v6Big = buildTcpPacket({ family: 6, payload: Buffer.alloc(65535 - 59) });
  assert.deepEqual(labelPacket(v6Big, keyA), { ok: false, verdict: 'malformed', reason: 'too-large' });
});

function withOption(opt: number[], payload = 'data'): Buffer {
  return buildTcpPacket({ family: 4, options: Uint8Array.from(opt), payload: Buffer.from(payload) });
}

test('verify: every verdict class for the inputs that call for it', () => {
  const labelled = labelPacket(buildTcpPacket({ family: 6, payload: Buffer.from('x') }), keyA);
  assert.ok(labelled.ok);
  assert.deepEqual(verifyPacket(labelled.packet, [keyA]), { verdict: 'valid', keyIndex: 0 });
  assert.deepEqual(verifyPacket(labelled.packet, [keyB]), { verdict: 'invalid', reason: 'mac-mismatch' });
  assert.deepEqual(verifyPacket(labelled.packet, []), { verdict: 'invalid', reason: 'no-keys' });
  assert.deepEqual(verifyPacket(buildTcpPacket({ family: 4 }), [keyA]), { verdict: 'unlabelled', reason: 'no-label' });
  // Kind 253 with another ExID is someone else's, so the packet is unlabelled.
  const other = [253, 40, 0x12, 0x34, ...new Array(36).fill(0)];
  assert.equal(verifyPacket(withOption(other), [keyA]).verdict, 'unlabelled');
  // Kind 254 with our ExID is not ours either.
  assert.equal(verifyPacket(withOption([254, 40, 0x46, 0x77, ...new Array(36).fill(0)]), [keyA]).verdict, 'unlabelled');
  // Our ExID with length 36: malformed.
  assert.deepEqual(verifyPacket(withOption([253, 36, 0x46, 0x77, ...new Array(32).fill(0)]), [keyA]), {
    verdict: 'malformed',
    reason: 'bad-label-length',
  });
  assert.deepEqual(verifyPacket(withOption([1, 1, 30, 0]), [keyA]), { verdict: 'malformed', reason: 'bad-option-length' });
  const dup = buildTcpPacket({ family: 4, options: Uint8Array.from([253, 4, 0x46, 0x77, 253, 4, 0x46, 0x77]) });
  assert.deepEqual(verifyPacket(dup, [keyA]), { verdict: 'malformed', reason: 'duplicate-label' });
  const trunc = labelled.packet.subarray(0, 50);
  assert.deepEqual(verifyPacket(trunc, [keyA]), { verdict: 'malformed', reason: 'truncated-ip' });
  const badDo = Buffer.from(labelled.packet);
  badDo[52] = 0x30;
  assert.deepEqual(verifyPacket(badDo, [keyA]), { verdict: 'malformed', reason: 'bad-data-offset' });
  assert.deepEqual(verifyPacket(buildUdpPacket({ family: 6 }), [keyA]), { verdict: 'skipped', reason: 'not-tcp' });
});

test('verify: several keys at once (rollover) reports which one matched', () => {
  const pkt = buildTcpPacket({ family: 4, payload: Buffer.from('roll') });
  const a = labelPacket(pkt, keyA);
  const b = labelPacket(pkt, keyB);
  assert.ok(a.ok && b.ok);
  assert.deepEqual(verifyPacket(a.packet, [keyB, keyA]), { verdict: 'valid', keyIndex: 1 });
  assert.deepEqual(verifyPacket(b.packet, [keyB, keyA]), { verdict: 'valid', keyIndex: 0 });
});

test('findLabelOption locates the label; a 40-byte label fills the option space', () => {
  const pkt = withOption([...buildLabelOption(Buffer.alloc(32, 7))]);
  const p = parseIpPacket(pkt);
  assert.ok(p.ok && p.tcp);
  assert.deepEqual(findLabelOption(pkt, p.tcp), { found: true, offset: 40 });
  // After other options, our ExID can only fit with a wrong length: found, but malformed.
  const short = withOption([1, 1, 2, 4, 5, 0xb4, 253, 12, 0x46, 0x77, 0, 0, 0, 0, 1, 2, 3, 4]);
  const q = parseIpPacket(short);
  assert.ok(q.ok && q.tcp);
  assert.deepEqual(findLabelOption(short, q.tcp), { found: false, reason: 'bad-label-length', malformed: true });
});

const familyArb = fc.constantFrom<4 | 6>(4, 6);
const segmentArb = fc.record({
  family: familyArb,
  seq: fc.integer({ min: 0, max: 0xffffffff }),
  ack: fc.integer({ min: 0, max: 0xffffffff }),
  flags: fc.integer({ min: 0, max: 255 }),
  options: tcpOptionsArb,
  payload: fc.uint8Array({ maxLength: 1460 }),
});

test('property: label then verify is valid; no other option survives; checksums are correct', () => {
  fc.assert(
    fc.property(segmentArb, (s) => {
      const pkt = buildTcpPacket(s);
      const r = labelPacket(pkt, keyA);
      assert.ok(r.ok);
      const p = parseIpPacket(r.packet);
      assert.ok(p.ok && p.tcp);
      assert.equal(p.tcp.dataOffset, 60);
      assert.equal(r.packet[p.l4Offset + 20], 253);
      assert.equal(p.tcp.seq, s.seq);
      assert.equal(p.tcp.flags, s.flags);
      assert.deepEqual(r.packet.subarray(p.tcp.payloadOffset), Buffer.from(s.payload));
      assert.ok(packetChecksumsOk(r.packet, p.l4Offset));
      assert.deepEqual(verifyPacket(r.packet, [keyB, keyA]), { verdict: 'valid', keyIndex: 1 });
    }),
    { numRuns: 300 },
  );
});

test('property: any single bit flipped in seq, payload or MAC makes it invalid', () => {
  fc.assert(
    fc.property(segmentArb, fc.constantFrom('seq', 'payload', 'mac'), fc.nat(), (s, where, n) => {
      const r = labelPacket(buildTcpPacket(s), keyA);
      assert.ok(r.ok);
      const pkt = r.packet;
      const l4 = s.family === 4 ? 20 : 40;
      let region: [number, number];
      if (where === 'seq') region = [l4 + 4, 4];
      else if (where === 'mac') region = [l4 + 28, 32];
      else region = [l4 + 60, pkt.length - l4 - 60];
      fc.pre(region[1] > 0);
      const bit = n % (region[1] * 8);
      pkt[region[0] + (bit >> 3)]! ^= 1 << (bit & 7);
      assert.deepEqual(verifyPacket(pkt, [keyA]), { verdict: 'invalid', reason: 'mac-mismatch' });
    }),
    { numRuns: 600 },
  );
});

test('property: random and mutated bytes never throw out of label or verify', () => {
  fc.assert(
    fc.property(
      fc.oneof(
        fc.uint8Array({ maxLength: 120 }),
        segmentArb.map((s) => {
          const r = labelPacket(buildTcpPacket(s), keyA);
          return r.ok ? r.packet : new Uint8Array(0);
        }),
      ),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
      (bytes, muts) => {
        const b = Buffer.from(bytes);
        if (b.length) for (const [i, v] of muts) b[i % b.length] = v;
        const v = verifyPacket(b, [keyA]);
        assert.ok(['valid', 'invalid', 'unlabelled', 'malformed', 'skipped'].includes(v.verdict));
        const l = labelPacket(b, keyA);
        if (l.ok) assert.equal(verifyPacket(l.packet, [keyA]).verdict, 'valid');
      },
    ),
    { numRuns: 2000 },
  );
});
