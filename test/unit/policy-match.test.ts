import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { cidrContains, matchCidrs, matchPorts, parseCidr, parsePortRange, type Cidr } from '../../src/util/match.js';
import { parseIp, bytesToIp } from '../../src/util/ip.js';

function cidr(s: string): Cidr {
  const r = parseCidr(s);
  if (!r.ok) assert.fail(r.reason);
  return r.value;
}

/** Reference: compare the first `prefix` bits one bit at a time. */
function refContains(net: Uint8Array, prefix: number, addr: Uint8Array): boolean {
  if (net.length !== addr.length) return false;
  for (let bit = 0; bit < prefix; bit++) {
    const byte = bit >> 3;
    const m = 0x80 >> (bit & 7);
    if ((net[byte]! & m) !== (addr[byte]! & m)) return false;
  }
  return true;
}

function maskedText(bytes: Uint8Array, prefix: number): string {
  const b = Uint8Array.from(bytes);
  for (let bit = prefix; bit < b.length * 8; bit++) b[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return `${bytesToIp(b)}/${prefix}`;
}

test('CIDR parse examples', () => {
  assert.equal(cidr('10.0.0.0/8').text, '10.0.0.0/8');
  assert.equal(cidr('192.168.1.7').prefix, 32);
  assert.equal(cidr('2001:DB8::/32').text, '2001:db8::/32');
  assert.equal(cidr('::/0').prefix, 0);
  for (const bad of ['10.0.0.0/33', '10.1/16', '1.2.3.4/8', 'fe80::/129', 'x', '10.0.0.0/', '10.0.0.0/-1', '']) {
    assert.equal(parseCidr(bad).ok, false, bad);
  }
});

test('CIDR containment examples', () => {
  const ip = (s: string): Uint8Array => parseIp(s)!;
  assert.ok(cidrContains(cidr('10.0.0.0/8'), ip('10.255.1.2')));
  assert.ok(!cidrContains(cidr('10.0.0.0/8'), ip('11.0.0.0')));
  assert.ok(cidrContains(cidr('10.1.0.0/23'), ip('10.1.1.255')));
  assert.ok(!cidrContains(cidr('10.1.0.0/23'), ip('10.1.2.0')));
  assert.ok(cidrContains(cidr('0.0.0.0/0'), ip('1.2.3.4')));
  assert.ok(!cidrContains(cidr('0.0.0.0/0'), ip('::1')), 'families do not mix');
  assert.ok(cidrContains(cidr('10.0.0.0/8'), ip('::ffff:10.2.3.4')), 'v4-mapped v6 matches v4 prefix');
  assert.ok(cidrContains(cidr('fd00::/8'), ip('fd12::1')));
  assert.ok(!cidrContains(cidr('fd00::/8'), ip('fe80::1')));
  assert.ok(matchCidrs([], ip('1.1.1.1')), 'empty list = any');
  assert.ok(!matchCidrs([cidr('10.0.0.0/8')], ip('1.1.1.1')));
});

test('property: containment agrees with a bitwise reference (IPv4 and IPv6)', () => {
  const arb = fc.oneof(
    fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 32 }), fc.uint8Array({ minLength: 4, maxLength: 4 })),
    fc.tuple(
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.integer({ min: 0, max: 128 }),
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
    ),
  );
  fc.assert(
    fc.property(arb, ([net, prefix, addr]) => {
      const c = cidr(maskedText(net, prefix));
      assert.equal(c.prefix, prefix);
      assert.equal(cidrContains(c, addr), refContains(c.network, prefix, addr));
      // The network address itself is always inside.
      assert.ok(cidrContains(c, net));
    }),
    { numRuns: 2000 },
  );
});

test('property: an address with host bits set is rejected with a correct suggestion', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 31 }), (b, prefix) => {
      const text = `${bytesToIp(b)}/${prefix}`;
      const r = parseCidr(text);
      const canonical = maskedText(b, prefix);
      if (canonical === text) assert.ok(r.ok);
      else {
        assert.ok(!r.ok);
        assert.ok(r.reason.includes(`did you mean "${canonical}"`), r.reason);
      }
    }),
  );
});

test('port range parse', () => {
  assert.deepEqual(parsePortRange('22'), { ok: true, value: { lo: 22, hi: 22 } });
  assert.deepEqual(parsePortRange(443), { ok: true, value: { lo: 443, hi: 443 } });
  assert.deepEqual(parsePortRange('8000-9000'), { ok: true, value: { lo: 8000, hi: 9000 } });
  for (const bad of ['80-70', '0', '65536', 'a', '1-', '-5', '1.5', '']) assert.equal(parsePortRange(bad).ok, false, bad);
});

test('property: port ranges match exactly lo..hi', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }), (a, b, p) => {
      const r = parsePortRange(`${a}-${b}`);
      if (a > b) {
        assert.equal(r.ok, false);
        return;
      }
      assert.ok(r.ok);
      assert.equal(matchPorts([r.value], p), p >= a && p <= b);
      assert.ok(matchPorts([], p));
    }),
  );
});
