// Deterministic test bytes; the Python twin is test/peers/blob.py (same definition).
import { createHash } from 'node:crypto';

/** blob(n, tag) = SHA-256(`${tag}:${n}:${i}`) for i = 0, 1, ... concatenated, cut to n bytes. */
export function blob(n: number, tag = 'blob'): Buffer {
  const out = Buffer.allocUnsafe(Math.ceil(n / 32) * 32);
  for (let i = 0; i * 32 < n; i++) {
    createHash('sha256').update(`${tag}:${n}:${i}`).digest().copy(out, i * 32);
  }
  return out.subarray(0, n);
}

export function sha256hex(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Index of the first differing byte, or -1 when equal (for readable assertion messages). */
export function firstDifference(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}
