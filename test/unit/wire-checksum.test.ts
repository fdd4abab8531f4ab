import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  foldSum,
  ipv4HeaderChecksum,
  ipv4HeaderChecksumOk,
  onesSum,
  tcpChecksumV4,
  tcpChecksumV6,
  finishChecksum,
} from '../../src/wire/checksum.js';
import { hex, naiveChecksum, packetChecksumsOk } from './wire-testutil.js';

test('IPv4 header checksum: the classic worked example (b861)', () => {
  const h = hex('4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7');
  assert.equal(ipv4HeaderChecksum(h, 0, 20), 0xb861);
  h.writeUInt16BE(0xb861, 10);
  assert.ok(ipv4HeaderChecksumOk(h, 0, 20));
  h[8] = 0x3f;
  assert.ok(!ipv4HeaderChecksumOk(h, 0, 20));
});

test('onesSum agrees with a naive 16-bit implementation for any bytes, offset and length', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3000 }), fc.nat(), fc.nat(), (bytes, a, b) => {
      const off = bytes.length ? a % bytes.length : 0;
      const len = bytes.length - off ? b % (bytes.length - off + 1) : 0;
      assert.equal(finishChecksum(onesSum(bytes, off, len)), naiveChecksum(bytes.subarray(off, off + len)));
    }),
    { numRuns: 500 },
  );
});

test('onesSum agrees with the naive sum at every alignment of the underlying memory', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 2000 }),
      fc.integer({ min: 0, max: 7 }),
      fc.nat(),
      fc.nat(),
      (bytes, shift, a, b) => {
        // Place the bytes at an arbitrary offset inside a larger ArrayBuffer.
        const backing = new Uint8Array(bytes.length + 8);
        backing.set(bytes, shift);
        const view = backing.subarray(shift, shift + bytes.length);
        const off = a % view.length;
        const len = b % (view.length - off + 1);
        assert.equal(finishChecksum(onesSum(view, off, len)), naiveChecksum(view.subarray(off, off + len)));
      },
    ),
    { numRuns: 1000 },
  );
});

test('foldSum folds sums far above 32 bits', () => {
  // 0xffff * 2^20 words of 0xffffffff: the result of end-around carry stays 0xffff.
  assert.equal(foldSum(0xffffffff * 1_000_000), 0xffff);
  assert.equal(foldSum(0x1_0000), 1);
  assert.equal(foldSum(0), 0);
});

test('TCP checksum known answers (vectors cross-checked with scapy)', () => {
  // IPv4 and IPv6 labelled segments built by scapy with the checksum fields it computed: eb3e and 13ce.
  const v4 = hex(
    '45000055123440004006a46bc0000201c00002029c4000500102030400000000f018ffffeb3e0000fd28467700000000342af37e4381e2af45eaba41b660d215d9d67a23ca62f6ad641c6b9172754aa868656c6c6f',
  );
  const v6 = hex(
    '600000000041064020010db800000000000000000000000120010db80000000000000000000000029c4000500102030400000000f018ffff13ce0000fd28467700000000342af37e4381e2af45eaba41b660d215d9d67a23ca62f6ad641c6b9172754aa868656c6c6f',
  );
  assert.equal(tcpChecksumV4(v4, 0, 20, v4.length - 20), 0xeb3e);
  assert.equal(ipv4HeaderChecksum(v4, 0, 20), 0xa46b);
  assert.equal(tcpChecksumV6(v6, 0, 40, v6.length - 40), 0x13ce);
  assert.ok(packetChecksumsOk(v4, 20));
  assert.ok(packetChecksumsOk(v6, 40));
});

test('TCP checksum of odd-length segments pads the last byte with zero', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 20, maxLength: 200 }), fc.boolean(), (seg, v6) => {
      const ipLen = v6 ? 40 : 20;
      const pkt = new Uint8Array(ipLen + seg.length);
      pkt[0] = v6 ? 0x60 : 0x45;
      for (let i = 8; i < ipLen; i++) pkt[i] = (i * 37) & 0xff;
      if (v6) {
        pkt[4] = seg.length >> 8;
        pkt[5] = seg.length & 0xff;
      } else {
        pkt[2] = pkt.length >> 8;
        pkt[3] = pkt.length & 0xff;
      }
      pkt.set(seg, ipLen);
      const cs = v6 ? tcpChecksumV6(pkt, 0, ipLen, seg.length) : tcpChecksumV4(pkt, 0, ipLen, seg.length);
      pkt[ipLen + 16] = cs >> 8;
      pkt[ipLen + 17] = cs & 0xff;
      if (!v6) {
        const h = ipv4HeaderChecksum(pkt, 0, 20);
        pkt[10] = h >> 8;
        pkt[11] = h & 0xff;
      }
      assert.ok(packetChecksumsOk(pkt, ipLen));
    }),
    { numRuns: 300 },
  );
});
