// HMAC-SHA256 engines behind LabelKey.mac(). The per-packet cost of node:crypto's createHmac
// (a new object, the key pads hashed again, ~5-6 µs per segment here) was the largest userspace
// cost of labelling; libcrypto's HMAC_CTX, keyed once and reset per message, reaches the same
// result for 2.7-5x less (docs/datapath.md, "koffi or a native addon: measured"). It is called
// through koffi (src/sys/libcrypto.ts), like the socket calls; node:crypto remains the
// fallback where libcrypto.so.3 cannot be loaded, or when LABELWALL_HMAC=node.
import { createHmac, type KeyObject } from 'node:crypto';
import { loadLibcrypto, type Libcrypto } from '../sys/libcrypto.js';

export interface MacEngine {
  readonly backend: 'libcrypto' | 'node';
  /** HMAC-SHA256(key, a || b). The returned buffer is reused by the next call: copy it to keep it. */
  mac(a: Uint8Array, b: Uint8Array): Buffer;
}

let libcrypto: Libcrypto | null | undefined;

/** libcrypto's HMAC functions for this thread, unless LABELWALL_HMAC=node; null when unavailable. */
function engineLibcrypto(): Libcrypto | null {
  if (libcrypto === undefined) libcrypto = process.env.LABELWALL_HMAC === 'node' ? null : loadLibcrypto();
  return libcrypto;
}

/**
 * HMAC-SHA256(key, a || b) on `ctx` into `out`: keyed anew when `key` is given, else reset to
 * the key it holds (HMAC_Init_ex with a NULL key keeps the precomputed inner/outer state).
 */
function libcryptoMac(
  lib: Libcrypto,
  ctx: unknown,
  key: Uint8Array | null,
  a: Uint8Array,
  b: Uint8Array,
  out: Buffer,
  outLen: Buffer,
): Buffer {
  if (
    lib.init(ctx, key, key?.length ?? 0, key ? lib.sha256 : null, null) !== 1 ||
    lib.update(ctx, a, a.length) !== 1 ||
    lib.update(ctx, b, b.length) !== 1 ||
    lib.final(ctx, out, outLen) !== 1
  ) {
    throw new Error('libcrypto HMAC failed');
  }
  return out;
}

const freeContexts = new FinalizationRegistry<{ lib: Libcrypto; ctx: unknown }>(({ lib, ctx }) => lib.ctxFree(ctx));

class LibcryptoEngine implements MacEngine {
  readonly backend = 'libcrypto' as const;
  private readonly out = Buffer.alloc(32);
  private readonly outLen = Buffer.alloc(4);

  constructor(
    private readonly lib: Libcrypto,
    private readonly ctx: unknown,
  ) {
    freeContexts.register(this, { lib, ctx });
  }

  mac(a: Uint8Array, b: Uint8Array): Buffer {
    return libcryptoMac(this.lib, this.ctx, null, a, b, this.out, this.outLen);
  }
}

class NodeEngine implements MacEngine {
  readonly backend = 'node' as const;
  constructor(private readonly key: KeyObject) {}

  mac(a: Uint8Array, b: Uint8Array): Buffer {
    return createHmac('sha256', this.key).update(a).update(b).digest();
  }
}

let onceCtx: unknown;
const onceOut = Buffer.alloc(32);
const onceLen = Buffer.alloc(4);

/**
 * HMAC-SHA256(key, a || b) for a key used once: one scratch context per thread, keyed anew per
 * call, so nothing is allocated or kept per key. The result is reused by the next call.
 */
export function macOnce(key: Uint8Array, a: Uint8Array, b: Uint8Array): Buffer {
  const lib = engineLibcrypto();
  if (lib && (onceCtx ??= lib.ctxNew())) return libcryptoMac(lib, onceCtx, key, a, b, onceOut, onceLen);
  createHmac('sha256', key).update(a).update(b).digest().copy(onceOut);
  return onceOut;
}

/**
 * An engine for one key on the calling thread. `secret` is only read here (libcrypto copies the
 * key into its context); the caller clears its copy.
 */
export function createMacEngine(key: KeyObject, secret: Uint8Array, prefer: 'libcrypto' | 'node' = 'libcrypto'): MacEngine {
  const lib = prefer === 'libcrypto' ? engineLibcrypto() : null;
  if (lib) {
    const ctx = lib.ctxNew();
    if (ctx && lib.init(ctx, secret, secret.length, lib.sha256, null) === 1) return new LibcryptoEngine(lib, ctx);
    if (ctx) lib.ctxFree(ctx);
  }
  return new NodeEngine(key);
}
