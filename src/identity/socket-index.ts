// A periodically refreshed inode -> (pid, fd) index of every socket fd on the host, built by a
// worker thread (a full /proc scan takes tens to hundreds of ms with thousands of fds) and
// handed over as one sorted, transferable Float64Array of (inode, pid, fd) triples.
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { statSync } from 'node:fs';
import type { FdRef } from './procfs.js';
import { addProcess, listPids, scanAllSockets, socketFds } from './procfs.js';

/** Sorted triples -> binary search. */
export class SocketIndexSnapshot {
  constructor(
    readonly triples: Float64Array,
    readonly takenAt: number,
  ) {}

  static fromMap(m: Map<number, FdRef[]>, takenAt = Date.now()): SocketIndexSnapshot {
    let n = 0;
    for (const l of m.values()) n += l.length;
    // Sort row numbers by inode (pid, fd as tie-breakers) without allocating a tuple per row.
    const ino = new Float64Array(n);
    const pid = new Float64Array(n);
    const fd = new Float64Array(n);
    let i = 0;
    for (const [k, l] of m) {
      for (const r of l) {
        ino[i] = k;
        pid[i] = r.pid;
        fd[i] = r.fd;
        i++;
      }
    }
    const order = new Uint32Array(n);
    for (let j = 0; j < n; j++) order[j] = j;
    order.sort((a, b) => ino[a]! - ino[b]! || pid[a]! - pid[b]! || fd[a]! - fd[b]!);
    const t = new Float64Array(n * 3);
    for (let j = 0; j < n; j++) {
      const r = order[j]!;
      t[j * 3] = ino[r]!;
      t[j * 3 + 1] = pid[r]!;
      t[j * 3 + 2] = fd[r]!;
    }
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

/**
 * Repeated scans that re-read only processes that are new or whose number of open fds changed
 * (stat of /proc/pid/fd reports it as the size on Linux >= 6.2). An fd closed and another opened
 * in its place between two passes goes unseen until the next full pass (every `fullEvery`).
 */
export class IncrementalScanner {
  private procs = new Map<number, { count: number; fds: Map<number, number> }>();
  private passes = 0;
  /** Whether this kernel reports fd counts as the size of /proc/pid/fd (Linux >= 6.2). */
  readonly countsFds: boolean;
  constructor(readonly fullEvery = 30) {
    let ok = false;
    try {
      ok = statSync('/proc/self/fd').size > 0;
    } catch {
      // no /proc: every pass finds nothing anyway
    }
    this.countsFds = ok;
  }

  private last: SocketIndexSnapshot | undefined;

  /** One pass. `changed` is false when no process was added, removed or re-read. */
  pass(forceFull = false): { snapshot: SocketIndexSnapshot; rescanned: number; full: boolean; changed: boolean } {
    const start = Date.now();
    const full = forceFull || !this.countsFds || this.passes % this.fullEvery === 0;
    this.passes++;
    const next = new Map<number, { count: number; fds: Map<number, number> }>();
    let rescanned = 0;
    for (const pid of listPids()) {
      let count: number;
      try {
        count = statSync(`/proc/${pid}/fd`).size;
      } catch {
        continue; // gone
      }
      const prev = this.procs.get(pid);
      let entry = prev;
      if (full || !prev || prev.count !== count) {
        const fds = socketFds(pid);
        if (!fds) continue;
        entry = { count, fds };
        rescanned++;
      }
      next.set(pid, entry!);
    }
    let removed = 0;
    for (const pid of this.procs.keys()) if (!next.has(pid)) removed++;
    this.procs = next;
    if (this.last && rescanned === 0 && removed === 0) {
      return { snapshot: this.last, rescanned, full, changed: false };
    }
    const idx = new Map<number, FdRef[]>();
    for (const [pid, e] of next) addProcess(idx, pid, e.fds);
    this.last = SocketIndexSnapshot.fromMap(idx, start);
    return { snapshot: this.last, rescanned, full, changed: true };
  }
}

/**
 * Keeps a snapshot fresh from a worker thread; the thread never keeps the process alive.
 * Snapshots arrive on a MessagePort that is read synchronously when `snapshot` is read, so the
 * index also works on a thread whose event loop never runs (an NFQUEUE worker blocked in its
 * receive loop). At most one snapshot is in flight: the scanner posts the next one only after
 * this side has taken the last (shared flag), so nothing piles up while nobody reads.
 */
export class BackgroundSocketIndex {
  private current: SocketIndexSnapshot | undefined;
  private readonly worker: Worker;
  private readonly port: MessagePort;
  /** [0] = 1 while a posted snapshot has not been taken. */
  private readonly inFlight: Int32Array;
  /** Full scans completed and the duration of the last one (ms). */
  private scansDone = 0;
  private lastMs = 0;

  constructor(intervalMs: number) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.inFlight = new Int32Array(new SharedArrayBuffer(4));
    this.worker = new Worker(new URL('./socket-index-worker.js', import.meta.url), {
      workerData: { intervalMs, port: port2, inFlight: this.inFlight.buffer },
      transferList: [port2],
    });
    this.worker.unref();
    this.worker.on('error', () => {
      // Scanning is best effort; attribution falls back to synchronous scans.
    });
  }

  private poll(): void {
    let got = false;
    for (let m = receiveMessageOnPort(this.port); m !== undefined; m = receiveMessageOnPort(this.port)) {
      const d = m.message as { triples: Float64Array; takenAt: number; ms: number };
      if (!this.current || d.takenAt >= this.current.takenAt) this.current = new SocketIndexSnapshot(d.triples, d.takenAt);
      this.scansDone++;
      this.lastMs = d.ms;
      got = true;
    }
    if (got) Atomics.store(this.inFlight, 0, 0);
  }

  get snapshot(): SocketIndexSnapshot | undefined {
    this.poll();
    return this.current;
  }

  get scans(): number {
    this.poll();
    return this.scansDone;
  }

  get lastScanMs(): number {
    this.poll();
    return this.lastMs;
  }

  /** Replaces the snapshot with a fresher one taken on the caller's thread. */
  offer(s: SocketIndexSnapshot): void {
    if (!this.current || s.takenAt >= this.current.takenAt) this.current = s;
  }

  async close(): Promise<void> {
    await this.worker.terminate();
    this.port.close();
  }
}
