// HMAC-SHA256 per packet: node:crypto createHmac (what src/label/compat.ts uses) against
// OpenSSL's HMAC_CTX reused across packets, called through koffi. createHmac pays a fixed
// ~5 µs per call in Node 20 / OpenSSL 3 (even for 4 bytes); a reused context does not.
// A prototype for src/label/ to adopt (one context per worker thread: not thread-safe).
// Usage: node dist/bench/nfqueue-hmac.js
import koffi, { type LibraryHandle } from 'koffi';
import { createHmac } from 'node:crypto';

class LibcryptoHmac {
  private static lib: LibraryHandle | null = null;
  private readonly ctx: unknown;
  private readonly out = Buffer.alloc(32);
  private readonly outLen = Buffer.alloc(4);
  private readonly init: (ctx: unknown, key: Buffer | null, len: number, md: unknown, impl: null) => number;
  private readonly update: (ctx: unknown, data: Uint8Array, len: number) => number;
  private readonly final: (ctx: unknown, md: Buffer, len: Buffer) => number;

  constructor(key: Buffer) {
    const lib = (LibcryptoHmac.lib ??= koffi.load('libcrypto.so.3'));
    const sha256 = lib.func('void *EVP_sha256()') as () => unknown;
    const ctxNew = lib.func('void *HMAC_CTX_new()') as () => unknown;
    this.init = lib.func('int HMAC_Init_ex(void *ctx, void *key, int len, void *md, void *impl)');
    this.update = lib.func('int HMAC_Update(void *ctx, void *data, size_t len)');
    this.final = lib.func('int HMAC_Final(void *ctx, void *md, void *len)');
    this.ctx = ctxNew();
    if (this.init(this.ctx, key, key.length, sha256(), null) !== 1) throw new Error('HMAC_Init_ex failed');
  }

  /** MAC of a ‖ b; the returned Buffer is reused by the next call. */
  mac(a: Uint8Array, b: Uint8Array): Buffer {
    this.init(this.ctx, null, 0, null, null); // same key: reset to the precomputed state
    this.update(this.ctx, a, a.length);
    this.update(this.ctx, b, b.length);
    this.final(this.ctx, this.out, this.outLen);
    return this.out;
  }
}

function time(name: string, n: number, f: () => unknown): void {
  for (let i = 0; i < 20000; i++) f();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) f();
  console.log(`${name.padEnd(52)} ${(Number(process.hrtime.bigint() - t0) / n).toFixed(0).padStart(6)} ns`);
}

const key = Buffer.alloc(32, 7);
const h = new LibcryptoHmac(key);
for (const size of [0, 536, 1380]) {
  const seq = Buffer.from([1, 2, 3, 4]);
  const payload = Buffer.alloc(size, 0x5a);
  const want = createHmac('sha256', key).update(seq).update(payload).digest();
  if (!h.mac(seq, payload).equals(want)) throw new Error('libcrypto HMAC differs from node:crypto');
  time(`node:crypto createHmac, seq + ${size} B`, 100000, () => createHmac('sha256', key).update(seq).update(payload).digest());
  time(`libcrypto HMAC_CTX via koffi, seq + ${size} B`, 200000, () => h.mac(seq, payload));
}
