// Worker: an incremental /proc scan every intervalMs (a full one every 30th), posted as sorted
// (inode, pid, fd) triples.
import { workerData, type MessagePort } from 'node:worker_threads';
import { libc } from '../sys/libc.js';
import { IncrementalScanner } from './socket-index.js';

const { intervalMs, port, inFlight } = workerData as { intervalMs: number; port: MessagePort; inFlight: SharedArrayBuffer };
const flag = new Int32Array(inFlight);
port.unref();

// Nice this thread only (on Linux the nice value is per thread): the scan is background work and
// must not compete with attribution of new flows on a busy host.
try {
  libc().setpriority(0, 0, 19);
} catch {
  // best effort
}

const scanner = new IncrementalScanner();
/** A changed snapshot that could not be posted yet (the last one was not taken). */
let pending = false;

function loop(): void {
  const t0 = performance.now();
  const { snapshot: s, rescanned, full, changed } = scanner.pass();
  const ms = performance.now() - t0;
  // Copy: the scanner keeps its snapshot to hand out again when nothing changed.
  // Post only when the reader took the previous one: a reader that never reads (no new flows)
  // must not accumulate snapshots.
  if (changed || pending) {
    if (Atomics.load(flag, 0) === 0) {
      const triples = s.triples.slice();
      Atomics.store(flag, 0, 1);
      port.postMessage({ triples, takenAt: s.takenAt, ms, rescanned, full }, [triples.buffer]);
      pending = false;
    } else pending = true;
  }
  setTimeout(loop, intervalMs);
}
loop();
