// Worker: full /proc socket scan every intervalMs, posted as sorted (inode, pid, fd) triples.
import { parentPort, workerData } from 'node:worker_threads';
import { scanSnapshot } from './socket-index.js';

const { intervalMs } = workerData as { intervalMs: number };

function loop(): void {
  const t0 = performance.now();
  const s = scanSnapshot();
  const ms = performance.now() - t0;
  parentPort?.postMessage({ triples: s.triples, takenAt: s.takenAt, ms }, [s.triples.buffer as ArrayBuffer]);
  setTimeout(loop, intervalMs);
}
loop();
