// Worker: full /proc scan every intervalMs, posted as sorted (inode, pid, fd) triples.
import { parentPort, workerData } from 'node:worker_threads';
import koffi from 'koffi';
import { scanSnapshot } from './socket-index.js';

const { intervalMs } = workerData as { intervalMs: number };

// Nice this thread only (on Linux the nice value is per thread): the scan is background work and
// must not compete with attribution of new flows on a busy host.
try {
  const setpriority = koffi.load('libc.so.6').func('int setpriority(int, uint32_t, int)') as (w: number, who: number, p: number) => number;
  setpriority(0, 0, 19);
} catch {
  // best effort
}

function loop(): void {
  const t0 = performance.now();
  const s = scanSnapshot();
  const ms = performance.now() - t0;
  parentPort?.postMessage({ triples: s.triples, takenAt: s.takenAt, ms }, [s.triples.buffer as ArrayBuffer]);
  setTimeout(loop, intervalMs);
}
loop();
