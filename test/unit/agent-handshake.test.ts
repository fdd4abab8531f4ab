import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildTcpPacket, fixChecksums, typicalSynOptions } from '../../src/wire/build.js';
import { parseIpPacket } from '../../src/wire/packet.js';
import { parseTcpOptions } from '../../src/wire/tcpopts.js';
import { l4ChecksumOk, pseudoHeaderSumV4, pseudoHeaderSumV6 } from '../../src/wire/checksum.js';
import { TCP_ACK, TCP_SYN } from '../../src/wire/tcp.js';
import { clampMss, rewriteInboundSyn } from '../../src/agent/handshake.js';
import { compat, labelPacket, PAPER_TEST_KEY, verifyPacket } from '../../src/label/compat.js';
import { LabelKey } from '../../src/label/keys.js';
import { v1 } from '../../src/label/v1.js';

const scratch = Buffer.alloc(65536);

function checksumOk(pkt: Buffer): boolean {
  const p = parseIpPacket(pkt);
  assert.ok(p.ok && p.tcp);
  const l4Len = p.totalLen - p.l4Offset;
  const pseudo = p.family === 4 ? pseudoHeaderSumV4(pkt, 12, 16, 6, l4Len) : pseudoHeaderSumV6(pkt, 8, p.pseudoDstOffset, 6, l4Len);
  return l4ChecksumOk(pkt, p.l4Offset, l4Len, pseudo);
}

function options(pkt: Buffer) {
  const p = parseIpPacket(pkt);
  assert.ok(p.ok && p.tcp);
  const r = parseTcpOptions(pkt, p.tcp.optionsOffset, p.tcp.optionsLen);
  assert.ok(r.ok);
  return r.options.filter((o) => o.kind !== 1 && o.kind !== 0);
}

test('clampMss: 1500-byte MTU gives 1420 for IPv4 and 1400 for IPv6', () => {
  assert.equal(clampMss(1460, 1500, 20, compat.handshake.mssClamp), 1420);
  assert.equal(clampMss(1440, 1500, 40, compat.handshake.mssClamp), 1400);
  // A jumbo peer cannot push us past our own MTU.
  assert.equal(clampMss(8960, 1500, 20, compat.handshake.mssClamp), 1420);
  // A small peer MSS is lowered by the label too.
  assert.equal(clampMss(536, 1500, 20, compat.handshake.mssClamp), 496);
  assert.equal(clampMss(100, 1500, 20, compat.handshake.mssClamp), 88);
  // The floor never raises a peer's MSS: a peer that asks for 60 gets at most 60.
  assert.equal(clampMss(60, 1500, 20, compat.handshake.mssClamp), 60);
  assert.equal(clampMss(60, 1500, 20, v1.handshake.mssClamp), 60);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 68, max: 65535 }), (peer, mtu) => {
      assert.ok(clampMss(peer, mtu, 20, 20) <= peer);
    }),
  );
});

test('a SYN that arrives with a wrong checksum is left as it came (the stack drops it), not given a correct one', () => {
  const syn = buildTcpPacket({ family: 4, flags: TCP_SYN, options: typicalSynOptions() });
  const bad = Buffer.from(syn);
  bad[bad.length - 1]! ^= 0x10; // a bit flipped on the way: the checksum no longer matches
  assert.ok(!checksumOk(bad));
  assert.deepEqual(rewriteInboundSyn(v1, bad, 1500, scratch), { kind: 'unchanged', reason: 'bad-checksum' });
  // Control: the intact SYN is rewritten; a locally made one (checksum not filled in yet) too.
  assert.equal(rewriteInboundSyn(v1, syn, 1500, scratch).kind, 'rewritten');
  const r = rewriteInboundSyn(v1, bad, 1500, scratch, true);
  assert.equal(r.kind, 'rewritten');
  assert.ok(r.kind === 'rewritten' && checksumOk(r.packet));
});

test('IPv6 SYN with a routing header: the rewritten checksum uses the final destination', () => {
  const final = Buffer.from('20010db8000000000000000000000099', 'hex');
  const rh = Buffer.concat([Buffer.from([0, 1, 0, 0, 0, 0]), final]); // type 0, 1 segment left, then the address
  const syn = buildTcpPacket({ family: 6, flags: TCP_SYN, options: typicalSynOptions(), ipv6ExtHeaders: [{ type: 43, body: rh }] });
  fixChecksums(syn);
  const p = parseIpPacket(syn);
  assert.ok(p.ok && p.pseudoDstOffset !== 24, 'the control: the final destination is not the header one');
  assert.ok(checksumOk(syn));
  const r = rewriteInboundSyn(v1, syn, 1500, scratch);
  assert.equal(r.kind, 'rewritten');
  assert.ok(r.kind === 'rewritten' && checksumOk(r.packet));
});

for (const family of [4, 6] as const) {
  test(`inbound SYN (IPv${family}): window scale, SACK-permitted, timestamps erased; MSS clamped; checksum correct`, () => {
    const syn = buildTcpPacket({ family, flags: TCP_SYN, seq: 1000, options: typicalSynOptions(77, 0) });
    const r = rewriteInboundSyn(compat, syn, 1500, scratch);
    assert.equal(r.kind, 'rewritten');
    if (r.kind !== 'rewritten') return;
    assert.equal(r.packet.length, syn.length, 'lengths stay: erased options become NOPs');
    assert.equal(r.mssBefore, 1460);
    assert.equal(r.mssAfter, family === 4 ? 1420 : 1400);
    assert.equal(r.erased, 3);
    const opts = options(r.packet);
    assert.deepEqual(
      opts.map((o) => o.kind),
      [2],
    );
    assert.ok(checksumOk(r.packet));
    // Everything but options and checksum is untouched.
    const p = parseIpPacket(r.packet);
    assert.ok(p.ok && p.tcp);
    assert.equal(p.tcp.seq, 1000);
    assert.equal(p.tcp.flags, TCP_SYN);
  });
}

test('inbound SYN-ACK keeps a valid label of a protected peer', () => {
  const key = LabelKey.fromBytes(PAPER_TEST_KEY, 'paper');
  const synack = buildTcpPacket({ family: 4, flags: TCP_SYN | TCP_ACK, seq: 5, ack: 9, options: typicalSynOptions() });
  const labelled = labelPacket(synack, key);
  assert.ok(labelled.ok);
  const r = rewriteInboundSyn(compat, labelled.packet, 1500, scratch);
  // Only the label is there: nothing to erase, no MSS to clamp.
  assert.equal(r.kind, 'unchanged');
  assert.equal(verifyPacket(labelled.packet, [key]).verdict, 'valid');
});

test('non-SYN segments and non-TCP are left alone', () => {
  const ack = buildTcpPacket({ family: 4, flags: TCP_ACK, options: Uint8Array.of(1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2) });
  assert.deepEqual(rewriteInboundSyn(compat, ack, 1500, scratch), { kind: 'unchanged', reason: 'not-syn' });
});

test('a SYN with a broken option list is reported malformed, not rewritten', () => {
  const syn = buildTcpPacket({ family: 4, flags: TCP_SYN, options: Uint8Array.of(2, 4, 5, 0xb4, 3, 9, 7, 0) });
  assert.equal(rewriteInboundSyn(compat, syn, 1500, scratch).kind, 'malformed');
});

test('property: random SYN option bytes never throw; a rewrite always has a correct checksum and only MSS/label/NOP', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 0, maxLength: 40 }),
      fc.constantFrom(4 as const, 6 as const),
      fc.integer({ min: 576, max: 9000 }),
      (opts, family, mtu) => {
        const syn = buildTcpPacket({ family, flags: TCP_SYN, options: opts });
        const r = rewriteInboundSyn(compat, syn, mtu, scratch);
        if (r.kind === 'rewritten') {
          assert.ok(checksumOk(Buffer.from(r.packet)));
          for (const o of options(Buffer.from(r.packet))) assert.ok(o.kind === 2 || o.kind === 253, `kind ${o.kind} left`);
        }
      },
    ),
    { numRuns: 2000 },
  );
});
