// Worker: an incremental /proc scan every intervalMs (a full one every 30th), posted as sorted
// (inode, pid, fd) triples.
import { parentPort, workerData } from 'node:worker_threads';
import koffi from 'koffi';
import { IncrementalScanner } from './socket-index.js';

const { intervalMs } = workerData as { intervalMs: number };

// Nice this thread only (on Linux the nice value is per thread): the scan is background work and
// must not compete with attribution of new flows on a busy host.
try {
  const setpriority = koffi.load('libc.so.6').func('int setpriority(int, uint32_t, int)') as (w: number, who: number, p: number) => number;
  setpriority(0, 0, 19);
} catch {
  // best effort
}

const scanner = new IncrementalScanner();

function loop(): void {
  const t0 = performance.now();
  const { snapshot: s, rescanned, full, changed } = scanner.pass();
  const ms = performance.now() - t0;
  // Copy: the scanner keeps its snapshot to hand out again when nothing changed.
  if (changed) {
    const triples = s.triples.slice();
    parentPort?.postMessage({ triples, takenAt: s.takenAt, ms, rescanned, full }, [triples.buffer]);
  }
  setTimeout(loop, intervalMs);
}
loop();
