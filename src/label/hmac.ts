// HMAC-SHA256 engines behind LabelKey.mac(). The per-packet cost of node:crypto's createHmac
// (a new object, the key pads hashed again, ~5-6 µs per segment here) was the largest userspace
// cost of labelling; libcrypto's HMAC_CTX, keyed once and reset per message, reaches the same
// result for 2.7-5x less (docs/datapath.md, "koffi or a native addon: measured"). It is called
// through koffi, like the socket calls; node:crypto remains the fallback where libcrypto.so.3
// cannot be loaded, or when LABELWALL_HMAC=node.
import { createHmac, type KeyObject } from 'node:crypto';
import koffi from 'koffi';

export interface MacEngine {
  readonly backend: 'libcrypto' | 'node';
  /** HMAC-SHA256(key, a || b). The returned buffer is reused by the next call: copy it to keep it. */
  mac(a: Uint8Array, b: Uint8Array): Buffer;
}

interface Libcrypto {
  sha256: unknown;
  ctxNew: () => unknown;
  ctxFree: (ctx: unknown) => void;
  init: (ctx: unknown, key: Uint8Array | null, len: number, md: unknown, impl: null) => number;
  update: (ctx: unknown, data: Uint8Array, len: number) => number;
  final: (ctx: unknown, md: Buffer, len: Buffer) => number;
}

let libcrypto: Libcrypto | null | undefined;

/** libcrypto's HMAC functions, loaded once per thread; null when unavailable. */
function loadLibcrypto(): Libcrypto | null {
  if (libcrypto !== undefined) return libcrypto;
  libcrypto = null;
  if (process.env.LABELWALL_HMAC === 'node') return null;
  try {
    const lib = koffi.load('libcrypto.so.3');
    const sha256 = (lib.func('void *EVP_sha256()') as () => unknown)();
    libcrypto = {
      sha256,
      ctxNew: lib.func('void *HMAC_CTX_new()') as () => unknown,
      ctxFree: lib.func('void HMAC_CTX_free(void *ctx)') as (ctx: unknown) => void,
      init: lib.func('int HMAC_Init_ex(void *ctx, void *key, int len, void *md, void *impl)') as Libcrypto['init'],
      update: lib.func('int HMAC_Update(void *ctx, void *data, size_t len)') as Libcrypto['update'],
      final: lib.func('int HMAC_Final(void *ctx, void *md, void *len)') as Libcrypto['final'],
    };
  } catch {
    libcrypto = null;
  }
  return libcrypto;
}

const freeContexts = new FinalizationRegistry<{ lib: Libcrypto; ctx: unknown }>(({ lib, ctx }) => lib.ctxFree(ctx));

class LibcryptoEngine implements MacEngine {
  readonly backend = 'libcrypto' as const;
  private readonly out = Buffer.alloc(32);
  private readonly outLen = Buffer.alloc(4);

  constructor(private readonly lib: Libcrypto, private readonly ctx: unknown) {
    freeContexts.register(this, { lib, ctx });
  }

  mac(a: Uint8Array, b: Uint8Array): Buffer {
    const { lib, ctx } = this;
    // Same key: HMAC_Init_ex with a NULL key resets to the precomputed inner/outer state.
    if (lib.init(ctx, null, 0, null, null) !== 1 || lib.update(ctx, a, a.length) !== 1 || lib.update(ctx, b, b.length) !== 1 || lib.final(ctx, this.out, this.outLen) !== 1) {
      throw new Error('libcrypto HMAC failed');
    }
    return this.out;
  }
}

class NodeEngine implements MacEngine {
  readonly backend = 'node' as const;
  constructor(private readonly key: KeyObject) {}

  mac(a: Uint8Array, b: Uint8Array): Buffer {
    return createHmac('sha256', this.key).update(a).update(b).digest();
  }
}

/**
 * An engine for one key on the calling thread. `secret` is only read here (libcrypto copies the
 * key into its context); the caller clears its copy.
 */
export function createMacEngine(key: KeyObject, secret: Uint8Array, prefer: 'libcrypto' | 'node' = 'libcrypto'): MacEngine {
  const lib = prefer === 'libcrypto' ? loadLibcrypto() : null;
  if (lib) {
    const ctx = lib.ctxNew();
    if (ctx && lib.init(ctx, secret, secret.length, lib.sha256, null) === 1) return new LibcryptoEngine(lib, ctx);
    if (ctx) lib.ctxFree(ctx);
  }
  return new NodeEngine(key);
}
