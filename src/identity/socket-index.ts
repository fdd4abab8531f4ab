// A periodically refreshed inode -> (pid, fd) index of every socket fd on the host, built by a
// worker thread (a full /proc scan takes tens to hundreds of ms with thousands of fds) and
// handed over as one sorted, transferable Float64Array of (inode, pid, fd) triples.
import { Worker } from 'node:worker_threads';
import type { FdRef } from './procfs.js';
import { scanAllSockets } from './procfs.js';

/** Sorted triples -> binary search. */
export class SocketIndexSnapshot {
  constructor(
    readonly triples: Float64Array,
    readonly takenAt: number,
  ) {}

  static fromMap(m: Map<number, FdRef[]>, takenAt = Date.now()): SocketIndexSnapshot {
    let n = 0;
    for (const l of m.values()) n += l.length;
    const rows: [number, number, number][] = [];
    for (const [ino, l] of m) for (const r of l) rows.push([ino, r.pid, r.fd]);
    rows.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
    const t = new Float64Array(n * 3);
    rows.forEach((r, i) => t.set(r, i * 3));
    return new SocketIndexSnapshot(t, takenAt);
  }

  get size(): number {
    return this.triples.length / 3;
  }

  lookup(inode: number): FdRef[] {
    const t = this.triples;
    let lo = 0;
    let hi = t.length / 3;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (t[mid * 3]! < inode) lo = mid + 1;
      else hi = mid;
    }
    const out: FdRef[] = [];
    for (let i = lo; i < t.length / 3 && t[i * 3] === inode; i++) out.push({ pid: t[i * 3 + 1]!, fd: t[i * 3 + 2]! });
    return out;
  }
}

/** Synchronous full scan, as a snapshot. */
export function scanSnapshot(): SocketIndexSnapshot {
  const start = Date.now(); // sockets created after this may be missing
  return SocketIndexSnapshot.fromMap(scanAllSockets(), start);
}

/** Keeps a snapshot fresh from a worker thread; the thread never keeps the process alive. */
export class BackgroundSocketIndex {
  snapshot: SocketIndexSnapshot | undefined;
  private readonly worker: Worker;
  /** Full scans completed and the duration of the last one (ms). */
  scans = 0;
  lastScanMs = 0;

  constructor(intervalMs: number) {
    this.worker = new Worker(new URL('./socket-index-worker.js', import.meta.url), { workerData: { intervalMs } });
    this.worker.unref();
    this.worker.on('message', (m: { triples: Float64Array; takenAt: number; ms: number }) => {
      this.snapshot = new SocketIndexSnapshot(m.triples, m.takenAt);
      this.scans++;
      this.lastScanMs = m.ms;
    });
    this.worker.on('error', () => {
      // Scanning is best effort; attribution falls back to synchronous scans.
    });
  }

  /** Replaces the snapshot with a fresher one taken on the caller's thread. */
  offer(s: SocketIndexSnapshot): void {
    if (!this.snapshot || s.takenAt >= this.snapshot.takenAt) this.snapshot = s;
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
