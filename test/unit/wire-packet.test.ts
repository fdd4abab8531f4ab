import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseIpPacket, formatAddress, type ParseResult } from '../../src/wire/packet.js';
import {
  parseTcpOptions,
  checkTcpOptions,
  findExperimentalOption,
  OPT_DUPLICATE,
  OPT_MALFORMED,
  OPT_NOT_FOUND,
} from '../../src/wire/tcpopts.js';
import { buildTcpPacket, buildUdpPacket, typicalSynOptions } from '../../src/wire/build.js';
import { tcpOptionsArb } from './wire-testutil.js';

function reasonOf(r: ParseResult): string {
  return r.ok ? 'ok' : r.reason;
}

test('IPv4 TCP: every field of the view points at the right bytes', () => {
  const payload = Buffer.from('abcdefg');
  const pkt = buildTcpPacket({
    family: 4,
    srcPort: 1234,
    dstPort: 443,
    seq: 0xfffffffe,
    ack: 0x80000001,
    flags: 0x12,
    window: 29200,
    options: typicalSynOptions(),
    payload,
  });
  const r = parseIpPacket(pkt);
  assert.ok(r.ok);
  assert.equal(r.family, 4);
  assert.equal(r.protocol, 6);
  assert.equal(r.ipHeaderLen, 20);
  assert.equal(r.l4Offset, 20);
  assert.equal(r.totalLen, pkt.length);
  assert.equal(formatAddress(r.src), '192.0.2.1');
  assert.equal(formatAddress(r.dst), '192.0.2.2');
  const t = r.tcp!;
  assert.deepEqual(
    [t.srcPort, t.dstPort, t.seq, t.ack, t.flags, t.window, t.dataOffset, t.optionsOffset, t.optionsLen, t.payloadOffset, t.payloadLen],
    [1234, 443, 0xfffffffe, 0x80000001, 0x12, 29200, 40, 40, 20, 60, 7],
  );
  assert.deepEqual(Buffer.from(pkt.subarray(t.payloadOffset, t.payloadOffset + t.payloadLen)), payload);
  // Views, not copies: writing through src changes the packet.
  r.src[0] = 10;
  assert.equal(pkt[12], 10);
});

test('IPv4 with header options: L4 found after IHL', () => {
  const pkt = buildTcpPacket({ family: 4, ipv4Options: Uint8Array.of(0x94, 4, 0, 0, 1, 1, 1, 0), payload: Buffer.from('x') });
  const r = parseIpPacket(pkt);
  assert.ok(r.ok);
  assert.equal(r.ipHeaderLen, 28);
  assert.equal(r.tcp!.offset, 28);
  assert.equal(r.tcp!.payloadLen, 1);
});

test('IPv4 padding after the total length (Ethernet minimum frame) is ignored', () => {
  const pkt = buildTcpPacket({ family: 4, flags: 0x10 });
  const padded = Buffer.concat([pkt, Buffer.alloc(6, 0xee)]);
  const r = parseIpPacket(padded);
  assert.ok(r.ok);
  assert.equal(r.totalLen, 40);
  assert.equal(r.tcp!.payloadLen, 0);
});

test('IPv4 malformed headers are named', () => {
  const pkt = buildTcpPacket({ family: 4, payload: Buffer.from('hello') });
  assert.equal(reasonOf(parseIpPacket(new Uint8Array(0))), 'truncated-ip');
  assert.equal(reasonOf(parseIpPacket(pkt.subarray(0, 19))), 'truncated-ip');
  assert.equal(reasonOf(parseIpPacket(pkt.subarray(0, pkt.length - 1))), 'truncated-ip');
  const v = Buffer.from(pkt);
  v[0] = 0x55;
  assert.equal(reasonOf(parseIpPacket(v)), 'bad-ip-version');
  const ihl = Buffer.from(pkt);
  ihl[0] = 0x44;
  assert.equal(reasonOf(parseIpPacket(ihl)), 'bad-ihl');
  const tl = Buffer.from(pkt);
  tl.writeUInt16BE(12, 2);
  assert.equal(reasonOf(parseIpPacket(tl)), 'bad-total-length');
  const bigIhl = Buffer.from(pkt.subarray(0, 40));
  bigIhl[0] = 0x4f;
  bigIhl.writeUInt16BE(40, 2);
  assert.equal(reasonOf(parseIpPacket(bigIhl)), 'bad-total-length');
});

test('IPv4 fragments (MF or offset) are malformed "fragment"', () => {
  const pkt = buildTcpPacket({ family: 4, payload: Buffer.from('hello') });
  const mf = Buffer.from(pkt);
  mf.writeUInt16BE(0x2000, 6);
  const off = Buffer.from(pkt);
  off.writeUInt16BE(0x0010, 6);
  assert.equal(reasonOf(parseIpPacket(mf)), 'fragment');
  assert.equal(reasonOf(parseIpPacket(off)), 'fragment');
  const df = Buffer.from(pkt);
  df.writeUInt16BE(0x4000, 6);
  assert.equal(reasonOf(parseIpPacket(df)), 'ok');
});

test('TCP header problems: truncated, data offset too small or past the segment', () => {
  const pkt = buildTcpPacket({ family: 4, payload: Buffer.from('hello') });
  const short = Buffer.from(pkt.subarray(0, 35));
  short.writeUInt16BE(35, 2);
  assert.equal(reasonOf(parseIpPacket(short)), 'truncated-tcp');
  const small = Buffer.from(pkt);
  small[32] = 0x40;
  assert.equal(reasonOf(parseIpPacket(small)), 'bad-data-offset');
  const big = Buffer.from(pkt);
  big[32] = 0xf0; // 60 > 25-byte segment
  assert.equal(reasonOf(parseIpPacket(big)), 'bad-data-offset');
});

test('IPv6: hop-by-hop, routing and destination options are skipped to TCP', () => {
  const pkt = buildTcpPacket({
    family: 6,
    ipv6ExtHeaders: [{ type: 0, body: Uint8Array.of(1, 4, 0, 0, 0, 0) }, { type: 43, body: new Uint8Array(14) }, { type: 60 }],
    payload: Buffer.from('v6 data'),
  });
  const r = parseIpPacket(pkt);
  assert.ok(r.ok);
  assert.equal(r.family, 6);
  assert.equal(r.protocol, 6);
  assert.equal(r.l4Offset, 40 + 8 + 16 + 8);
  assert.equal(r.tcp!.payloadLen, 7);
  assert.equal(formatAddress(r.src), '2001:db8::1');
});

test('IPv6 routing headers with segments left: final destination for the pseudo-header', () => {
  const base = buildTcpPacket({
    family: 6,
    ipv6ExtHeaders: [{ type: 43, body: Uint8Array.of(0, 0, 0, 0, 0, 0, ...new Array(32).fill(7)) }],
    payload: Buffer.from('r'),
  });
  const rh = 40;
  const cases: Array<[number, number, number | string]> = [
    [0, 2, rh + 8 + 16],
    [2, 1, rh + 8 + 16],
    [4, 1, rh + 8],
    [3, 1, 24],
    [0, 0, 24],
  ];
  for (const [type, segLeft, want] of cases) {
    const b = Buffer.from(base);
    b[rh + 2] = type;
    b[rh + 3] = segLeft;
    const r = parseIpPacket(b);
    assert.ok(r.ok, `type ${type}`);
    assert.equal(r.pseudoDstOffset, want, `type ${type} segments left ${segLeft}`);
  }
  // A routing header too short to hold the address it promises is malformed.
  const short = buildTcpPacket({ family: 6, ipv6ExtHeaders: [{ type: 43, body: Uint8Array.of(0, 1, 0, 0, 0, 0) }] });
  assert.equal(reasonOf(parseIpPacket(short)), 'truncated-ext-header');
});

test('IPv6: fragment header, truncated extension header, jumbogram, truncated payload', () => {
  const frag = buildTcpPacket({ family: 6, payload: Buffer.from('hello') });
  // Insert a fragment header by rewriting: next header 44, then an 8-byte fragment header saying TCP.
  const withFrag = Buffer.concat([frag.subarray(0, 40), Buffer.from([6, 0, 0, 0, 0, 0, 0, 1]), frag.subarray(40)]);
  withFrag[6] = 44;
  withFrag.writeUInt16BE(withFrag.length - 40, 4);
  assert.equal(reasonOf(parseIpPacket(withFrag)), 'fragment');
  const trunc = Buffer.from(frag.subarray(0, 44));
  trunc[6] = 0;
  trunc.writeUInt16BE(4, 4);
  assert.equal(reasonOf(parseIpPacket(trunc)), 'truncated-ext-header');
  const longExt = Buffer.from(frag);
  longExt[6] = 60;
  longExt[41] = 20; // claims 168 bytes
  assert.equal(reasonOf(parseIpPacket(longExt)), 'truncated-ext-header');
  const jumbo = Buffer.from(frag);
  jumbo.writeUInt16BE(0, 4);
  jumbo[6] = 0;
  assert.equal(reasonOf(parseIpPacket(jumbo)), 'bad-total-length');
  assert.equal(reasonOf(parseIpPacket(frag.subarray(0, frag.length - 2))), 'truncated-ip');
  assert.equal(reasonOf(parseIpPacket(frag.subarray(0, 39))), 'truncated-ip');
});

test('UDP parses with no TCP view; protocol reported', () => {
  for (const family of [4, 6] as const) {
    const r = parseIpPacket(buildUdpPacket({ family, payload: Buffer.from('dns') }));
    assert.ok(r.ok);
    assert.equal(r.protocol, 17);
    assert.equal(r.tcp, undefined);
  }
});

test('TCP options: all common kinds decoded by length', () => {
  const opts = Uint8Array.of(
    2,
    4,
    5,
    0xb4,
    1,
    3,
    3,
    7,
    4,
    2,
    8,
    10,
    0,
    0,
    0,
    1,
    0,
    0,
    0,
    2,
    5,
    10,
    0,
    0,
    0,
    5,
    0,
    0,
    0,
    9,
    30,
    3,
    9,
    0,
    0,
    0,
  );
  const r = parseTcpOptions(opts, 0, opts.length);
  assert.ok(r.ok);
  assert.deepEqual(
    r.options.map((o) => o.name),
    ['mss', 'nop', 'wscale', 'sack-permitted', 'timestamp', 'sack', 'other', 'eol'],
  );
  const [mss, , ws, , ts, sack, other] = r.options;
  assert.equal(mss?.name === 'mss' && mss.mss, 1460);
  assert.equal(ws?.name === 'wscale' && ws.shift, 7);
  assert.deepEqual(ts?.name === 'timestamp' && [ts.tsval, ts.tsecr], [1, 2]);
  assert.deepEqual(sack?.name === 'sack' && sack.blocks, [[5, 9]]);
  assert.equal(other!.length, 3);
  assert.equal(checkTcpOptions(opts, 0, opts.length), null);
});

test('TCP options: malformed lengths are detected', () => {
  const bad: Array<[string, number[]]> = [
    ['zero length', [30, 0, 0, 0]],
    ['length 1', [30, 1, 0, 0]],
    ['no length byte', [1, 1, 1, 2]],
    ['past the end', [30, 9, 0, 0]],
    ['MSS length 5', [2, 5, 0, 0, 0, 1, 1, 1]],
    ['wscale length 4', [3, 4, 0, 0]],
    ['SACK length 6', [5, 6, 0, 0, 0, 0, 1, 1]],
    ['timestamp length 8', [8, 8, 0, 0, 0, 0, 0, 0]],
  ];
  for (const [name, b] of bad) {
    const u = Uint8Array.from(b);
    const r = parseTcpOptions(u, 0, u.length);
    assert.equal(r.ok ? 'ok' : r.reason, 'bad-option-length', name);
    assert.equal(checkTcpOptions(u, 0, u.length), 'bad-option-length', name);
    assert.equal(findExperimentalOption(u, 0, u.length, 253, 0x4677), OPT_MALFORMED, name);
  }
  // Garbage after EOL is padding, not an error.
  const afterEol = Uint8Array.of(0, 30, 0, 0);
  assert.ok(parseTcpOptions(afterEol, 0, 4).ok);
});

test('experimental option search: ExID matters, duplicates flagged', () => {
  const ours = [253, 8, 0x46, 0x77, 0, 0, 0, 0];
  const theirs = [253, 6, 0x12, 0x34, 9, 9];
  const a = Uint8Array.from([1, 1, ...theirs, ...ours]);
  assert.equal(findExperimentalOption(a, 0, a.length, 253, 0x4677), 8);
  const b = Uint8Array.from([...theirs, 1, 1]);
  assert.equal(findExperimentalOption(b, 0, b.length, 253, 0x4677), OPT_NOT_FOUND);
  const c = Uint8Array.from([...ours, ...ours]);
  assert.equal(findExperimentalOption(c, 0, c.length, 253, 0x4677), OPT_DUPLICATE);
  const r = parseTcpOptions(a, 0, a.length);
  assert.ok(r.ok);
  const exps = r.options.filter((o) => o.name === 'experimental');
  assert.deepEqual(
    exps.map((o) => o.name === 'experimental' && o.exid),
    [0x1234, 0x4677],
  );
});

test('property: generated well-formed option lists parse back to the same lengths', () => {
  fc.assert(
    fc.property(tcpOptionsArb, (opts) => {
      const r = parseTcpOptions(opts, 0, opts.length);
      assert.ok(r.ok);
      assert.equal(
        r.options.reduce((s, o) => s + o.length, 0),
        opts.length,
      );
      assert.equal(checkTcpOptions(opts, 0, opts.length), null);
    }),
    { numRuns: 500 },
  );
});

test('property: random bytes never throw out of the parsers', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.constantFrom(0x45, 0x46, 0x4f, 0x60, 0x00, null), (bytes, first) => {
      const b = Buffer.from(bytes);
      if (first !== null && b.length > 0) b[0] = first;
      const r = parseIpPacket(b);
      if (r.ok && r.tcp) {
        assert.ok(r.tcp.payloadOffset + r.tcp.payloadLen <= b.length);
        parseTcpOptions(b, r.tcp.optionsOffset, r.tcp.optionsLen);
      }
      parseTcpOptions(b, 0, b.length);
      checkTcpOptions(b, 0, b.length);
    }),
    { numRuns: 3000 },
  );
});

test('property: mutating a valid packet never throws and any ok result stays within bounds', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(4, 6),
      tcpOptionsArb,
      fc.uint8Array({ maxLength: 64 }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
      fc.nat(),
      (family, options, payload, muts, cut) => {
        const pkt = buildTcpPacket({ family: family as 4 | 6, options, payload });
        for (const [i, v] of muts) pkt[i % pkt.length] = v;
        const b = pkt.subarray(0, pkt.length - (cut % 8));
        const r = parseIpPacket(b);
        if (r.ok) {
          assert.ok(r.totalLen <= b.length);
          if (r.tcp) assert.ok(r.tcp.payloadOffset + r.tcp.payloadLen <= r.totalLen);
        }
      },
    ),
    { numRuns: 2000 },
  );
});

test('formatAddress compresses IPv6 zero runs', () => {
  assert.equal(formatAddress(Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)), '::1');
  assert.equal(formatAddress(Uint8Array.of(0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0)), 'fe80::1:0:0:0');
});
