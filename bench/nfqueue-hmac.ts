// HMAC-SHA256 per packet, the two engines of src/label/hmac.ts: node:crypto createHmac (the
// fallback) against OpenSSL's HMAC_CTX reused across packets, called through koffi (what
// labelling uses). createHmac pays a fixed ~5 µs per call in Node 20 / OpenSSL 3 (even for
// 4 bytes); a reused context does not.
// Usage: node dist/bench/nfqueue-hmac.js
import { createHmac, createSecretKey } from 'node:crypto';
import { createMacEngine } from '../src/label/hmac.js';

function time(name: string, n: number, f: () => unknown): void {
  for (let i = 0; i < 20000; i++) f();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f();
  console.log(`${name.padEnd(52)} ${(Number(process.hrtime.bigint() - t0) / n).toFixed(0).padStart(6)} ns`);
}

const key = Buffer.alloc(32, 7);
const node = createMacEngine(createSecretKey(key), key, 'node');
const h = createMacEngine(createSecretKey(key), key, 'libcrypto');
if (h.backend !== 'libcrypto') throw new Error('libcrypto.so.3 could not be loaded (or LABELWALL_HMAC=node)');
for (const size of [0, 536, 1380]) {
  const seq = Buffer.from([1, 2, 3, 4]);
  const payload = Buffer.alloc(size, 0x5a);
  const want = createHmac('sha256', key).update(seq).update(payload).digest();
  if (!h.mac(seq, payload).equals(want)) throw new Error('libcrypto HMAC differs from node:crypto');
  time(`node:crypto createHmac, seq + ${size} B`, 100000, () => node.mac(seq, payload));
  time(`libcrypto HMAC_CTX via koffi, seq + ${size} B`, 200000, () => h.mac(seq, payload));
}
