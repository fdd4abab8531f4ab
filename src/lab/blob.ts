// Deterministic test bytes; the Python twin is lab/peers/blob.py (same definition).
import { createHash } from 'node:crypto';

/** blob(n, tag) = the first n bytes of SHAKE-256(`${tag}:${n}`). Pseudo-random, fast (100 MB in ~0.5 s). */
export function blob(n: number, tag = 'blob'): Buffer {
  if (n === 0) return Buffer.alloc(0);
  return createHash('shake256', { outputLength: n }).update(`${tag}:${n}`).digest();
}

export function sha256hex(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Index of the first differing byte, or -1 when equal (for readable assertion messages). */
export function firstDifference(a: Buffer, b: Buffer): number {
  if (a.equals(b)) return -1;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}
