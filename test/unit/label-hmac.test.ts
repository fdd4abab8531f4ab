import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, createSecretKey } from 'node:crypto';
import fc from 'fast-check';
import { createMacEngine } from '../../src/label/hmac.js';
import { LabelKey } from '../../src/label/keys.js';
import { computeMac, PAPER_TEST_KEY } from '../../src/label/compat.js';

test('the libcrypto engine is used on this machine (libssl3 is a setup dependency)', () => {
  const k = LabelKey.fromBytes(Buffer.alloc(32, 9), 'k');
  assert.equal(k.macBackend, process.env.LABELWALL_HMAC === 'node' ? 'node' : 'libcrypto');
});

test('property: libcrypto and node:crypto engines give the HMAC-SHA256 of a || b, for any key and data', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 100 }),
      fc.uint8Array({ maxLength: 8 }),
      fc.uint8Array({ maxLength: 3000 }),
      (key, a, b) => {
        const ko = createSecretKey(Buffer.from(key));
        const want = createHmac('sha256', Buffer.from(key)).update(a).update(b).digest();
        const lib = createMacEngine(ko, key, 'libcrypto');
        const node = createMacEngine(ko, key, 'node');
        assert.ok(lib.mac(a, b).equals(want));
        assert.ok(node.mac(a, b).equals(want));
        // The context is reset between messages: a second message gives its own MAC.
        assert.ok(lib.mac(b, a).equals(createHmac('sha256', Buffer.from(key)).update(b).update(a).digest()));
      },
    ),
    { numRuns: 300 },
  );
});

test('computeMac returns a copy: a later MAC does not change an earlier result', () => {
  const k = LabelKey.fromBytes(PAPER_TEST_KEY, 'paper');
  const first = computeMac(k, Uint8Array.of(0, 0, 0, 1), Buffer.from('one'));
  const copy = Buffer.from(first);
  computeMac(k, Uint8Array.of(0, 0, 0, 2), Buffer.from('two'));
  assert.ok(first.equals(copy));
});
