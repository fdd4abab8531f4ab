// The v1 profile against known-answer vectors computed by an independent Python script
// (test/vectors/v1/make-vectors.py, stdlib only), plus property tests of what the MAC covers.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { any } from '../../src/label/any.js';
import { compat, LABEL_LENGTH, PAPER_TEST_KEY } from '../../src/label/compat.js';
import { LabelKey } from '../../src/label/keys.js';
import { labelWith, NAT_DST, NAT_PORTS, NAT_SRC, type PacketContext, verifyWith } from '../../src/label/profile.js';
import { getProfile, profileNames } from '../../src/label/registry.js';
import { EPOCH_MS, epochOf, resolveEpoch, tagKey, v1 } from '../../src/label/v1.js';
import { buildTcpPacket, buildUdpPacket, fixChecksums, typicalSynOptions } from '../../src/wire/build.js';
import { parseIpPacket } from '../../src/wire/packet.js';
import { TCP_ACK, TCP_PSH, TCP_SYN } from '../../src/wire/tcp.js';
import { parseTcpOptions } from '../../src/wire/tcpopts.js';
import { hex, packetChecksumsOk, tcpOptionsArb } from './wire-testutil.js';

interface Vector {
  name: string;
  family: 4 | 6;
  key: string;
  keyId: number;
  tag: number;
  nat: number;
  timeMs: number;
  epoch: number;
  input: string;
  expected: string;
  option: string;
  kTag: string;
  m: string;
  mac: string;
  compact: boolean;
  trimmed: ('sack-trimmed' | 'options-removed')[];
}

const vectorFile = new URL('../../../test/vectors/v1/vectors.json', import.meta.url);
const vectors = (JSON.parse(readFileSync(vectorFile, 'utf8')) as { vectors: Vector[] }).vectors;
const vecKey = (v: Vector): LabelKey => LabelKey.fromBytes(hex(v.key), v.name, false, v.keyId);
const vec = (name: string): Vector => vectors.find((v) => v.name === name)!;

const keyA = LabelKey.fromBytes(Buffer.alloc(32, 0xa5), 'A', false, 0);
const keyB = LabelKey.fromBytes(Buffer.alloc(32, 0x5a), 'B', false, 3);
const T = 1_764_633_607_000;

function l4(pkt: Uint8Array): number {
  const p = parseIpPacket(pkt);
  assert.ok(p.ok);
  return p.l4Offset;
}

/** Absolute offset of our option in a labelled packet. */
function labelAt(pkt: Uint8Array): number {
  const p = parseIpPacket(pkt);
  assert.ok(p.ok && p.tcp);
  const f = v1.findOption(pkt, p.tcp);
  assert.ok(f.found);
  return f.offset;
}

test('registry: v1 and any registered beside compat', () => {
  assert.deepEqual(profileNames(), ['compat', 'v1', 'any']);
  assert.equal(getProfile('v1'), v1);
  assert.equal(getProfile('any'), any);
  assert.equal(v1.optionKind, 253);
  assert.equal(v1.optionLength, 20);
  assert.equal(v1.overhead, 20);
  assert.deepEqual(v1.handshake, { eraseOutbound: false, eraseInbound: false, mssClamp: 20 });
});

test('vectors: the file covers what it must', () => {
  assert.ok(vectors.length >= 12);
  assert.ok(vectors.some((v) => v.family === 4) && vectors.some((v) => v.family === 6));
  assert.ok(vectors.some((v) => v.compact && v.trimmed.length === 0));
  assert.ok(vectors.some((v) => v.trimmed.join() === 'sack-trimmed'));
  assert.ok(vectors.some((v) => v.trimmed.join() === 'options-removed'));
  assert.ok(vectors.some((v) => v.trimmed.join() === 'sack-trimmed,options-removed'));
  assert.ok(vectors.some((v) => v.keyId === 7));
  // Urgent pointer and byte 12's low bits (reserved, AE) are covered as sent.
  const urgentAndLowBits = (v: Vector): boolean => {
    const pkt = hex(v.input);
    const t = l4(pkt);
    return (pkt[t + 12]! & 0x0f) !== 0 && pkt.readUInt16BE(t + 18) !== 0;
  };
  assert.ok(vectors.some(urgentAndLowBits));
  assert.ok(vectors.some((v) => v.nat === 7));
  assert.ok(vectors.some((v) => v.keyId !== 0 && v.tag !== 0));
  assert.ok(vectors.some((v) => v.name.includes('routing')));
});

for (const v of vectors) {
  test(`vector ${v.name}: label() gives the expected packet byte for byte`, () => {
    const key = vecKey(v);
    const ctx: PacketContext = { timeMs: v.timeMs, tag: v.tag, nat: v.nat };
    const r = labelWith(v1, hex(v.input), key, undefined, ctx);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.packet.toString('hex'), v.expected);
    assert.equal(r.compact, v.compact);
    assert.equal(r.sackTrimmed === true, v.trimmed.includes('sack-trimmed'));
    assert.equal(r.optionsRemoved === true, v.trimmed.includes('options-removed'));
    assert.equal(r.packet.subarray(labelAt(r.packet), labelAt(r.packet) + (v.compact ? 16 : 20)).toString('hex'), v.option);
    if (!v.name.includes('routing')) assert.ok(packetChecksumsOk(r.packet, l4(r.packet)));
    // In place: `out` is the packet's own (larger) memory.
    const mem = Buffer.alloc(hex(v.input).length + v1.overhead);
    hex(v.input).copy(mem);
    const p = parseIpPacket(mem.subarray(0, hex(v.input).length));
    assert.ok(p.ok);
    const r2 = v1.label(mem.subarray(0, hex(v.input).length), p, key, mem, ctx);
    assert.ok(r2.ok);
    assert.equal(r2.packet.buffer, mem.buffer);
    assert.equal(r2.packet.toString('hex'), v.expected);
  });

  test(`vector ${v.name}: verify() accepts it and names key id, tag, NAT flags`, () => {
    // A decoy key with another id first: the label's key id picks the right one.
    const r = verifyWith(v1, hex(v.expected), [keyB, vecKey(v)], { timeMs: v.timeMs, allowNat: v.nat });
    assert.deepEqual(r, { verdict: 'valid', keyIndex: 1, profile: 'v1', keyId: v.keyId, tag: v.tag, nat: v.nat, compact: v.compact });
    const ra = verifyWith(any, hex(v.expected), [vecKey(v)], { timeMs: v.timeMs, allowNat: v.nat });
    assert.equal(ra.verdict, 'valid');
    assert.equal(ra.profile, 'v1');
  });

  test(`vector ${v.name}: K_tag and M as the script computed them`, () => {
    assert.equal(epochOf(v.timeMs), v.epoch);
    const kTag = LabelKey.fromBytes(hex(v.kTag), 'kTag', false, v.keyId);
    const m = hex(v.m);
    // Our derived key MACs M like the script's K_tag (the secret itself never leaves LabelKey).
    assert.equal(
      tagKey(vecKey(v), v.tag)
        .mac(m, Buffer.alloc(0))
        .subarray(0, v.mac.length / 2)
        .toString('hex'),
      v.mac,
    );
    assert.equal(
      kTag
        .mac(m, Buffer.alloc(0))
        .subarray(0, v.mac.length / 2)
        .toString('hex'),
      v.mac,
    );
  });
}

test('compat is unaffected: the paper vector through the registry, byte for byte', () => {
  const expected4 =
    '45000055123440004006a46bc0000201c00002029c4000500102030400000000f018ffffeb3e0000' +
    'fd28467700000000342af37e4381e2af45eaba41b660d215d9d67a23ca62f6ad641c6b9172754aa8' +
    '68656c6c6f';
  const paperKey = LabelKey.fromBytes(PAPER_TEST_KEY, 'paper');
  const input = buildTcpPacket({ family: 4, seq: 0x01020304, options: typicalSynOptions(), payload: Buffer.from('hello') });
  const r = labelWith(getProfile('compat'), input, paperKey);
  assert.ok(r.ok);
  assert.equal(r.packet.toString('hex'), expected4);
  assert.deepEqual(verifyWith(compat, hex(expected4), [paperKey]), { verdict: 'valid', keyIndex: 0 });
  // 'any' judges it as compat; v1 alone says it is another profile's label.
  assert.deepEqual(verifyWith(any, hex(expected4), [paperKey]), { verdict: 'valid', keyIndex: 0, profile: 'compat' });
  assert.deepEqual(verifyWith(v1, hex(expected4), [paperKey]), { verdict: 'invalid', reason: 'other-profile', profile: 'v1' });
  // compat sees a v1 label as a malformed one of its own (its rule: length must be 40).
  assert.equal(verifyWith(compat, hex(vectors[0]!.expected), [paperKey]).verdict, 'malformed');
});

test('any: cannot label; unlabelled and malformed as v1 says', () => {
  const pkt = buildTcpPacket({ family: 4, options: typicalSynOptions(), flags: TCP_SYN });
  assert.deepEqual(labelWith(any, pkt, keyA), { ok: false, verdict: 'skipped', reason: 'label-needs-a-profile' });
  assert.deepEqual(verifyWith(any, pkt, [keyA]), { verdict: 'unlabelled', reason: 'no-label' });
});

// ---- generated segments ----------------------------------------------------------------------

interface Seg {
  family: 4 | 6;
  flags: number;
  options: Uint8Array;
  payload: Uint8Array;
  seq: number;
  ack: number;
  tag: number;
}
const segArb: fc.Arbitrary<Seg> = fc.record({
  family: fc.constantFrom<4 | 6>(4, 6),
  flags: fc.constantFrom(TCP_SYN, TCP_SYN | TCP_ACK, TCP_ACK, TCP_ACK | TCP_PSH, 0x11, 0x14, 0x04),
  options: tcpOptionsArb,
  payload: fc.uint8Array({ maxLength: 64 }),
  seq: fc.integer({ min: 0, max: 0xffffffff }),
  ack: fc.integer({ min: 0, max: 0xffffffff }),
  tag: fc.integer({ min: 0, max: 0xffff }),
});

/** A labelled packet for the segment, or null when v1 cannot label it (no room even after removals). */
function labelled(s: Seg, key = keyA, nat = 0, timeMs = T): Buffer | null {
  const pkt = buildTcpPacket({ family: s.family, flags: s.flags, options: s.options, payload: s.payload, seq: s.seq, ack: s.ack });
  const r = labelWith(v1, pkt, key, undefined, { timeMs, tag: s.tag, nat });
  if (!r.ok) {
    assert.equal(r.reason, 'no-room-for-label');
    return null;
  }
  return r.packet;
}

/** The bytes the MAC covers, as absolute offsets of a labelled packet (label MAC included; NOPs, MSS, padding not). */
function coveredOffsets(pkt: Buffer): number[] {
  const p = parseIpPacket(pkt);
  assert.ok(p.ok && p.tcp);
  const t = p.tcp;
  const alen = p.family === 4 ? 4 : 16;
  const out: number[] = [];
  for (let i = 0; i < alen; i++) out.push(p.srcOffset + i, p.dstOffset + i);
  for (let i = 0; i < 20; i++) if (i !== 16 && i !== 17) out.push(t.offset + i);
  const opts = parseTcpOptions(pkt, t.optionsOffset, t.optionsLen);
  assert.ok(opts.ok);
  for (const o of opts.options) {
    if (o.name === 'nop' || o.name === 'eol') continue;
    // MSS is not covered at all: a middlebox may clamp it, and turning its kind into EOL just removes it.
    if (o.name === 'mss') continue;
    for (let i = 0; i < o.length; i++) out.push(o.offset + i);
  }
  for (let i = 0; i < t.payloadLen; i++) out.push(t.payloadOffset + i);
  return out;
}

test('property: labelled segments verify; any change to a covered byte is not valid', () => {
  fc.assert(
    fc.property(segArb, fc.nat(), fc.integer({ min: 0, max: 7 }), (s, pick, bit) => {
      const pkt = labelled(s);
      fc.pre(pkt !== null);
      const ctx = { timeMs: T };
      assert.equal(verifyWith(v1, pkt!, [keyA], ctx).verdict, 'valid');
      const covered = coveredOffsets(pkt!);
      const at = covered[pick % covered.length]!;
      const bad = Buffer.from(pkt!);
      bad[at]! ^= 1 << bit;
      fixChecksums(bad); // the checksum is not what refuses it
      const r = verifyWith(v1, bad, [keyA], ctx);
      assert.notEqual(r.verdict, 'valid', `byte ${at} bit ${bit}`);
    }),
    { numRuns: 1500 },
  );
});

test('property: the label carries the tag and the MAC under another tag or key is refused', () => {
  fc.assert(
    fc.property(segArb, (s) => {
      const pkt = labelled(s);
      fc.pre(pkt !== null);
      const r = verifyWith(v1, pkt!, [keyA], { timeMs: T });
      assert.equal(r.tag, s.tag);
      assert.equal(r.keyId, 0);
      // Same key id, another secret: mac-mismatch.
      const other = LabelKey.fromBytes(Buffer.alloc(32, 0x33), 'other', false, 0);
      assert.deepEqual(verifyWith(v1, pkt!, [other], { timeMs: T }).reason, 'mac-mismatch');
    }),
    { numRuns: 300 },
  );
});

test('property: an MSS value rewritten by a middlebox keeps the label valid', () => {
  fc.assert(
    fc.property(segArb, fc.integer({ min: 0, max: 0xffff }), (s, mss) => {
      fc.pre(s.options.length <= 36);
      const opts = Buffer.concat([Buffer.from([2, 4, 0x05, 0xb4]), s.options]);
      const pkt = labelled({ ...s, options: opts });
      fc.pre(pkt !== null);
      const p = parseIpPacket(pkt!);
      assert.ok(p.ok && p.tcp);
      const list = parseTcpOptions(pkt!, p.tcp.optionsOffset, p.tcp.optionsLen);
      assert.ok(list.ok);
      const m = list.options.find((o) => o.name === 'mss');
      fc.pre(m !== undefined);
      pkt!.writeUInt16BE(mss, m!.offset + 2);
      fixChecksums(pkt!);
      assert.equal(verifyWith(v1, pkt!, [keyA], { timeMs: T }).verdict, 'valid');
    }),
    { numRuns: 500 },
  );
});

test('property: NOPs inserted, removed or moved within the same header length keep the label valid', () => {
  fc.assert(
    fc.property(segArb, fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 12, maxLength: 12 }), (s, nopPlan) => {
      const pkt = labelled(s);
      fc.pre(pkt !== null);
      const p = parseIpPacket(pkt!);
      assert.ok(p.ok && p.tcp);
      const t = p.tcp;
      const list = parseTcpOptions(pkt!, t.optionsOffset, t.optionsLen);
      assert.ok(list.ok);
      const real = list.options.filter((o) => o.name !== 'nop' && o.name !== 'eol');
      // Re-lay the same options with a new NOP pattern, within the same options length, EOL-padded.
      const area = Buffer.alloc(t.optionsLen);
      let w = 0;
      let spare = t.optionsLen - real.reduce((a, o) => a + o.length, 0);
      real.forEach((o, i) => {
        const nops = Math.min(nopPlan[i % nopPlan.length]!, spare);
        area.fill(1, w, w + nops);
        w += nops;
        spare -= nops;
        pkt!.copy(area, w, o.offset, o.offset + o.length);
        w += o.length;
      });
      area.copy(pkt!, t.optionsOffset);
      fixChecksums(pkt!);
      assert.equal(verifyWith(v1, pkt!, [keyA], { timeMs: T }).verdict, 'valid');
    }),
    { numRuns: 500 },
  );
});

test("property: labelling in place (the GSO path's send slots) gives the same bytes as labelling into other memory", () => {
  // Headers that shrink matter most: NOPs dropped, options removed (the payload moves back).
  const removable = fc.constantFrom(
    Uint8Array.of(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1),
    Uint8Array.of(1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7, 30, 28, 0x20, 0x0f, ...new Array<number>(24).fill(7)),
    Uint8Array.of(1, 1, 5, 34, ...new Array<number>(32).fill(3)),
  );
  fc.assert(
    fc.property(segArb, fc.option(removable), (s, opts) => {
      const seg = { ...s, options: opts ?? s.options, flags: opts ? TCP_ACK : s.flags };
      const pkt = buildTcpPacket({ family: seg.family, flags: seg.flags, options: seg.options, payload: seg.payload, seq: seg.seq });
      const ctx = { timeMs: T, tag: seg.tag };
      const apart = labelWith(v1, pkt, keyA, undefined, ctx);
      const mem = Buffer.alloc(pkt.length + v1.overhead, 0xee);
      pkt.copy(mem);
      const view = mem.subarray(0, pkt.length);
      const p = parseIpPacket(view);
      assert.ok(p.ok);
      const inPlace = v1.label(view, p, keyA, mem, ctx);
      assert.equal(inPlace.ok, apart.ok);
      if (apart.ok && inPlace.ok) {
        assert.equal(inPlace.packet.buffer, mem.buffer);
        assert.equal(inPlace.packet.toString('hex'), apart.packet.toString('hex'));
      }
    }),
    { numRuns: 1000 },
  );
});

/** An IPv4 or IPv6 TCP packet whose IP header is right (lengths, protocol 6) and whose TCP header and options are random bytes. */
const randomTcpArb = fc
  .record({
    family: fc.constantFrom<4 | 6>(4, 6),
    // data offset 0-15 (most of them lie) and the option bytes: random, or made of the bytes that matter.
    dataOffset: fc.integer({ min: 0, max: 15 }),
    options: fc.oneof(
      fc.uint8Array({ maxLength: 40 }),
      fc
        .array(fc.constantFrom(0, 1, 2, 4, 5, 8, 253, 0x46, 0x77, 0x40, 0x47, 16, 20, 40, 255), { maxLength: 40 })
        .map((a) => Uint8Array.from(a)),
    ),
    tcpRest: fc.uint8Array({ minLength: 20, maxLength: 20 }),
    payload: fc.uint8Array({ maxLength: 48 }),
  })
  .map(({ family, dataOffset, options, tcpRest, payload }) => {
    const tcp = Buffer.concat([tcpRest, options, payload]);
    tcp[12] = (dataOffset << 4) | (tcp[12]! & 0x0f);
    const pkt = buildTcpPacket({ family, flags: TCP_ACK });
    const l4At = family === 4 ? 20 : 40;
    const out = Buffer.concat([pkt.subarray(0, l4At), tcp]);
    if (family === 4) out.writeUInt16BE(out.length, 2);
    else out.writeUInt16BE(tcp.length, 4);
    return out;
  });

test('property: random bytes and random damage never throw', () => {
  const reached = new Map<string, number>();
  fc.assert(
    fc.property(randomTcpArb, (bytes) => {
      const r = verifyWith(v1, bytes, [keyA], { timeMs: T });
      reached.set(`${r.verdict}/${r.reason ?? ''}`, (reached.get(`${r.verdict}/${r.reason ?? ''}`) ?? 0) + 1);
      verifyWith(any, bytes, [keyA], { timeMs: T });
      verifyWith(compat, bytes, [keyA], { timeMs: T });
      labelWith(v1, bytes, keyA, undefined, { timeMs: T });
    }),
    { numRuns: 5000 },
  );
  // The control: the inputs get past the IP header to the option walker and the label checks.
  for (const want of ['malformed/bad-data-offset', 'malformed/bad-option-length', 'unlabelled/no-label'])
    assert.ok((reached.get(want) ?? 0) > 0, `${want} never reached: ${JSON.stringify([...reached])}`);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      verifyWith(v1, bytes, [keyA], { timeMs: T });
      labelWith(v1, bytes, keyA, undefined, { timeMs: T });
    }),
    { numRuns: 1000 },
  );
  fc.assert(
    fc.property(segArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), (s, edits) => {
      const pkt = labelled(s);
      fc.pre(pkt !== null);
      for (const [at, b] of edits) pkt![at % pkt!.length] = b;
      verifyWith(v1, pkt!, [keyA, keyB], { timeMs: T, allowNat: 7 });
      verifyWith(any, pkt!, [keyA, keyB], { timeMs: T });
      labelWith(v1, pkt!, keyB, undefined, { timeMs: T, tag: 9, nat: 7 });
    }),
    { numRuns: 1500 },
  );
});

// ---- the rules one by one --------------------------------------------------------------------

const data: Seg = {
  family: 4,
  flags: TCP_ACK | TCP_PSH,
  options: Uint8Array.of(1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2),
  payload: Buffer.from('data'),
  seq: 5,
  ack: 6,
  tag: 300,
};

test('epoch window: default [now-2, now+1] epochs, edges included; configurable', () => {
  const e = epochOf(T);
  const pkt = labelled(data, keyA, 0, T)!;
  const at = (nowE: number, ctx: PacketContext = {}) => verifyWith(v1, pkt, [keyA], { ...ctx, timeMs: nowE * EPOCH_MS + 5000 });
  assert.equal(at(e).verdict, 'valid');
  assert.equal(at(e + 2).verdict, 'valid'); // labelled 2 epochs (32-48 s) ago
  assert.deepEqual(at(e + 3).reason, 'stale-epoch');
  assert.equal(at(e - 1).verdict, 'valid'); // the labeller's clock is one epoch ahead
  assert.deepEqual(at(e - 2).reason, 'stale-epoch');
  assert.equal(at(e + 3, { epochBefore: 3 }).verdict, 'valid');
  assert.equal(at(e + 1, { epochBefore: 0 }).reason, 'stale-epoch');
  assert.equal(at(e - 1, { epochAfter: 0 }).reason, 'stale-epoch');
  // 256 epochs later the low byte matches again, but the full E does not: the MAC refuses it.
  assert.equal(at(e + 256).reason, 'mac-mismatch');
  // Across the low byte's wrap.
  assert.equal(resolveEpoch(0xff, 0x1_01, 2, 1), 0xff);
  assert.equal(resolveEpoch(0x00, 0x0_ff, 2, 1), 0x1_00);
  assert.equal(resolveEpoch(0x10, 0x0_ff, 2, 1), -1);
  assert.equal(verifyWith(v1, labelled(data, keyA, 0, 0xff * EPOCH_MS)!, [keyA], { timeMs: 0x101 * EPOCH_MS }).verdict, 'valid');
});

test('key ids: the key named by the label is used; none with that id is unknown-key', () => {
  const pkt = labelled(data, keyB)!; // key id 3
  assert.deepEqual(verifyWith(v1, pkt, [keyA], { timeMs: T }), {
    verdict: 'invalid',
    reason: 'unknown-key',
    profile: 'v1',
    keyId: 3,
    tag: 300,
    nat: 0,
    compact: false,
  });
  assert.equal(verifyWith(v1, pkt, [keyA, keyB], { timeMs: T }).keyIndex, 1);
  assert.equal(verifyWith(v1, pkt, [], { timeMs: T }).reason, 'no-keys');
  // The same secret under another id is another key: its label names id 0, not 3.
  assert.equal(verifyWith(v1, pkt, [keyB.withKeyId(0)], { timeMs: T }).reason, 'unknown-key');
  // Two keys under one id (a tool given -k a -k b): both are tried, in order, and only those.
  const sameId = LabelKey.fromBytes(Buffer.alloc(32, 0x77), 'C', false, 3);
  assert.equal(verifyWith(v1, pkt, [keyA, sameId, keyB], { timeMs: T }).keyIndex, 2);
  assert.equal(verifyWith(v1, pkt, [keyA, sameId], { timeMs: T }).reason, 'mac-mismatch');
});

test('NAT modes: refused unless allowed; with S and P, a rewritten source address and port stay valid', () => {
  const pkt = labelled(data, keyA, NAT_SRC | NAT_PORTS)!;
  assert.deepEqual(verifyWith(v1, pkt, [keyA], { timeMs: T }).reason, 'nat-mode-denied');
  assert.deepEqual(verifyWith(v1, pkt, [keyA], { timeMs: T, allowNat: NAT_SRC }).reason, 'nat-mode-denied');
  assert.equal(verifyWith(v1, pkt, [keyA], { timeMs: T, allowNat: NAT_SRC | NAT_PORTS }).verdict, 'valid');
  // A MASQUERADE on the way: new source address and port.
  const nat = Buffer.from(pkt);
  nat.set([203, 0, 113, 9], 12);
  nat.writeUInt16BE(61000, l4(nat));
  fixChecksums(nat);
  assert.equal(verifyWith(v1, nat, [keyA], { timeMs: T, allowNat: 7 }).verdict, 'valid');
  // ...but not the destination, nor the destination port.
  const d = Buffer.from(nat);
  d.writeUInt16BE(81, l4(d) + 2);
  fixChecksums(d);
  assert.equal(verifyWith(v1, d, [keyA], { timeMs: T, allowNat: 7 }).reason, 'mac-mismatch');
  // Strict labels: a source rewrite is a mismatch.
  const strict = labelled(data)!;
  strict.set([203, 0, 113, 9], 12);
  fixChecksums(strict);
  assert.equal(verifyWith(v1, strict, [keyA], { timeMs: T, allowNat: 7 }).reason, 'mac-mismatch');
  // D alone leaves the ports in.
  const dOnly = labelled(data, keyA, NAT_DST)!;
  const r = verifyWith(v1, dOnly, [keyA], { timeMs: T, allowNat: NAT_DST });
  assert.equal(r.nat, NAT_DST);
  assert.equal(r.verdict, 'valid');
});

test('malformed: compact on a SYN, two labels, version bits, bad length, broken options', () => {
  const compactPkt = hex(vec('ipv4-ack-mptcp-compact').expected);
  const syn = Buffer.from(compactPkt);
  syn[l4(syn) + 13]! |= TCP_SYN;
  fixChecksums(syn);
  assert.deepEqual(verifyWith(v1, syn, [keyA]), { verdict: 'malformed', reason: 'compact-on-syn' });
  assert.deepEqual(verifyWith(any, syn, [keyA]), { verdict: 'malformed', reason: 'compact-on-syn' });
  // Version bits 00, 10, 11.
  const full = hex(vec('ipv4-data-ts').expected);
  for (const bits of [0x00, 0x80, 0xc0]) {
    const b = Buffer.from(full);
    const at = labelAt(b);
    b[at + 4] = bits | (b[at + 4]! & 0x3f);
    assert.deepEqual(verifyWith(v1, b, [keyA]), { verdict: 'malformed', reason: 'bad-label-version' });
  }
  // Two labels: the label twice (the second in place of the timestamps' room, header length kept).
  const two = Buffer.from(full);
  const at = labelAt(two);
  const lbl = Buffer.from(two.subarray(at, at + 20));
  const p = parseIpPacket(two);
  assert.ok(p.ok && p.tcp);
  const doubled = buildTcpPacket({ family: 4, flags: TCP_ACK, options: Buffer.concat([lbl, lbl]), payload: Buffer.from('x') });
  assert.deepEqual(verifyWith(v1, doubled, [keyA]), { verdict: 'malformed', reason: 'duplicate-label' });
  // A compact and a full label (a compat label beside a v1 one would need 56 bytes).
  const compactLbl = compactPkt.subarray(labelAt(compactPkt), labelAt(compactPkt) + 16);
  const mixed = buildTcpPacket({ family: 4, flags: TCP_ACK, options: Buffer.concat([compactLbl, lbl]) });
  assert.deepEqual(verifyWith(v1, mixed, [keyA]), { verdict: 'malformed', reason: 'duplicate-label' });
  // Our ExID with a length no profile has (24), and a broken option list.
  const odd = buildTcpPacket({
    family: 4,
    flags: TCP_ACK,
    options: Buffer.concat([Buffer.from([253, 24, 0x46, 0x77, 0x40]), Buffer.alloc(19)]),
  });
  assert.deepEqual(verifyWith(v1, odd, [keyA]), { verdict: 'malformed', reason: 'bad-label-length' });
  const broken = buildTcpPacket({ family: 4, flags: TCP_ACK, options: Uint8Array.of(8, 10, 0, 0) });
  assert.deepEqual(verifyWith(v1, broken, [keyA]), { verdict: 'malformed', reason: 'bad-option-length' });
  assert.deepEqual(labelWith(v1, broken, keyA), { ok: false, verdict: 'malformed', reason: 'bad-option-length' });
  // Someone else's experiment on kind 253 is not a label.
  const theirs = buildTcpPacket({ family: 4, flags: TCP_ACK, options: Uint8Array.of(253, 4, 0x12, 0x34) });
  assert.deepEqual(verifyWith(v1, theirs, [keyA]), { verdict: 'unlabelled', reason: 'no-label' });
});

test('label(): too-large only past the IP length field (IPv4 65,535 bytes, IPv6 40 + 65,535)', () => {
  // No options: the label is the full 20 bytes, the header 40.
  for (const family of [4, 6] as const) {
    const max = family === 4 ? 65535 : 65535 + 40;
    const payloadFits = max - (family === 4 ? 20 : 40) - 40;
    const fits = labelWith(v1, buildTcpPacket({ family, flags: TCP_ACK, payload: Buffer.alloc(payloadFits) }), keyA, undefined, {
      timeMs: T,
    });
    assert.ok(fits.ok, `IPv${family}`);
    assert.equal(fits.packet.length, max);
    assert.ok(packetChecksumsOk(fits.packet, l4(fits.packet)));
    assert.equal(verifyWith(v1, fits.packet, [keyA], { timeMs: T }).verdict, 'valid');
    const big = buildTcpPacket({ family, flags: TCP_ACK, payload: Buffer.alloc(payloadFits + 1) });
    assert.deepEqual(labelWith(v1, big, keyA, undefined, { timeMs: T }), { ok: false, verdict: 'malformed', reason: 'too-large' });
  }
});

test('label(): SYN never compact; what cannot fit is skipped; an existing label is replaced; tags and NAT bits on the wire', () => {
  // A SYN whose options leave 12 bytes: the full label cannot fit and compact is not allowed,
  // so the unknown option goes (options-removed) and the label is full.
  const synOpts = Buffer.concat([typicalSynOptions(), Buffer.from([200, 8, 1, 2, 3, 4, 5, 6])]);
  const r = labelWith(v1, buildTcpPacket({ family: 4, flags: TCP_SYN, options: synOpts }), keyA, undefined, { timeMs: T });
  assert.ok(r.ok);
  assert.equal(r.compact, false);
  assert.equal(r.optionsRemoved, true);
  assert.equal(r.sackTrimmed, false);
  assert.equal(verifyWith(v1, r.packet, [keyA], { timeMs: T }).verdict, 'valid');
  // Timestamps are never removed: four of them (40 bytes) leave no room.
  const ts = Buffer.from([8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
  const full = buildTcpPacket({ family: 4, flags: TCP_ACK, options: Buffer.concat([ts, ts, ts, ts]) });
  assert.deepEqual(labelWith(v1, full, keyA), { ok: false, verdict: 'skipped', reason: 'no-room-for-label' });
  // Relabelling replaces our label (v1 or compat) instead of adding a second.
  const once = labelled(data)!;
  const twice = labelWith(v1, once, keyB, undefined, { timeMs: T, tag: 7, nat: NAT_DST });
  assert.ok(twice.ok);
  assert.deepEqual(verifyWith(v1, twice.packet, [keyB], { timeMs: T, allowNat: NAT_DST }), {
    verdict: 'valid',
    keyIndex: 0,
    profile: 'v1',
    keyId: 3,
    tag: 7,
    nat: NAT_DST,
    compact: false,
  });
  assert.equal(twice.packet.length, once.length);
  const fromCompat = labelWith(compat, buildTcpPacket({ family: 6, flags: TCP_ACK }), keyA);
  assert.ok(fromCompat.ok);
  const relabelled = labelWith(v1, fromCompat.packet, keyA, undefined, { timeMs: T });
  assert.ok(relabelled.ok);
  assert.equal(relabelled.packet.length, fromCompat.packet.length - LABEL_LENGTH + 20);
  assert.equal(verifyWith(v1, relabelled.packet, [keyA], { timeMs: T }).verdict, 'valid');
  // Byte 4: 01 S D P keyid.
  const b = labelled(data, keyB, NAT_SRC | NAT_DST | NAT_PORTS)!;
  assert.equal(b[labelAt(b) + 4], 0x40 | 0x38 | 3);
  assert.equal(b.readUInt16BE(labelAt(b) + 6), 300);
  assert.equal(b[labelAt(b) + 5], epochOf(T) & 0xff);
  // UDP is not for v1 to label or judge.
  const udp = buildUdpPacket({ family: 4, payload: Buffer.from('q') });
  assert.deepEqual(labelWith(v1, udp, keyA), { ok: false, verdict: 'skipped', reason: 'not-tcp' });
  assert.deepEqual(verifyWith(v1, udp, [keyA]), { verdict: 'skipped', reason: 'not-tcp' });
});

test('label(): without ctx.timeMs the clock now is the epoch', () => {
  const before = epochOf(Date.now());
  const pkt = buildTcpPacket({ family: 6, flags: TCP_ACK, payload: Buffer.from('now') });
  const r = labelWith(v1, pkt, keyA);
  assert.ok(r.ok);
  const e8 = r.packet[labelAt(r.packet) + 5]!;
  assert.ok(e8 === (before & 0xff) || e8 === ((before + 1) & 0xff));
  assert.equal(verifyWith(v1, r.packet, [keyA]).verdict, 'valid');
});

test('verify(): a tag no valid label has shown yet is checked without a cached key, and gives the same verdicts', () => {
  const bytes = Buffer.alloc(32, 0x3c);
  const seg = buildTcpPacket({ family: 4, flags: TCP_ACK | TCP_PSH, payload: Buffer.from('tags') });
  for (const tag of [0, 1, 300, 65535]) {
    // A fresh key object per tag: nothing derived under it yet.
    const r = labelWith(v1, seg, LabelKey.fromBytes(bytes, 'sender', false, 2), undefined, { timeMs: T, tag });
    assert.ok(r.ok);
    const verifierKey = LabelKey.fromBytes(bytes, 'verifier', false, 2);
    const forged = Buffer.from(r.packet);
    forged[labelAt(forged) + 19]! ^= 1;
    assert.deepEqual(
      [verifyWith(v1, forged, [verifierKey], { timeMs: T }).reason, verifyWith(v1, r.packet, [verifierKey], { timeMs: T }).verdict],
      ['mac-mismatch', 'valid'],
    );
    // Once proven, the cached key gives the same answers.
    assert.equal(verifyWith(v1, r.packet, [verifierKey], { timeMs: T }).verdict, 'valid');
    assert.equal(verifyWith(v1, forged, [verifierKey], { timeMs: T }).reason, 'mac-mismatch');
  }
});

test('LabelKey.macDerived(info, a, b) is derive(info).mac(a, b)', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 16, maxLength: 64 }),
      fc.uint8Array({ maxLength: 40 }),
      fc.uint8Array({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 300 }),
      (k, info, a, b) => {
        const key = LabelKey.fromBytes(k);
        assert.equal(key.macDerived(info, a, b).toString('hex'), key.derive(info).mac(a, b).toString('hex'));
      },
    ),
    { numRuns: 300 },
  );
});

test('known weakness of the normative M (kept to the spec, docs/label-v1.md): an option can be moved into the payload when the payload is kind × 256 bytes long', () => {
  // M holds the canonical options, then the payload length, then the payload, and nothing says
  // where the options end. The last option X (kind K, length L) followed by length K·256 reads
  // the same as no X followed by length K·256 + L and a payload that starts with X's value and
  // the old length. An on-path attacker can so replace the timestamps with NOPs and prepend 10
  // bytes to a 2,048-byte payload under the same MAC.
  const ts = Uint8Array.of(1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7);
  const payload = Buffer.alloc(8 * 256, 0x61);
  const r = labelWith(v1, buildTcpPacket({ family: 4, flags: TCP_ACK | TCP_PSH, options: ts, payload }), keyA, undefined, { timeMs: T });
  assert.ok(r.ok);
  const pkt = r.packet;
  const p = parseIpPacket(pkt);
  assert.ok(p.ok && p.tcp);
  const tsAt = p.tcp.optionsOffset + 20 + 2; // after the label and its NOP NOP
  assert.deepEqual([pkt[tsAt], pkt[tsAt + 1]], [8, 10]);
  const moved = Buffer.concat([pkt.subarray(tsAt + 2, tsAt + 10), Uint8Array.of(0x08, 0x00)]);
  const forged = Buffer.concat([pkt.subarray(0, p.tcp.payloadOffset), moved, payload]);
  forged.fill(1, tsAt, tsAt + 10); // the timestamps become NOPs: same data offset
  forged.writeUInt16BE(forged.length, 2); // IPv4 total length: 10 bytes more
  fixChecksums(forged);
  assert.equal(
    verifyWith(v1, forged, [keyA], { timeMs: T }).verdict,
    'valid',
    'if this fails, M now delimits the options: update docs/label-v1.md',
  );
  // The control: any other payload length, or any other moved bytes, is refused.
  const other = Buffer.from(forged);
  other[p.tcp.payloadOffset]! ^= 1;
  fixChecksums(other);
  assert.equal(verifyWith(v1, other, [keyA], { timeMs: T }).reason, 'mac-mismatch');
});
