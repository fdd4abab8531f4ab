// Stand-alone queue runner: starts queues with a handler module in the current network
// namespace and speaks line-JSON on stdio. Used by the e2e tests and benchmarks, which run it
// under `ip netns exec`. stdin: `stats`, `post <json>`, `stop`. stdout: one JSON object per line.
//   node dist/test/helpers/queue-runner.js '{"queues":[0],"handlerModule":"file:///…","handlerData":null,"failOpen":false}'
import { createInterface } from 'node:readline';
import { PassThrough } from 'node:stream';
import { startQueues } from '../../src/datapath/queue.js';
import type { StartOptions } from '../../src/datapath/types.js';

function out(o: unknown): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

async function main(): Promise<void> {
  const opts = JSON.parse(process.argv[2] ?? '{}') as StartOptions;
  let set: Awaited<ReturnType<typeof startQueues>>;
  try {
    set = await startQueues(opts);
  } catch (e) {
    out({ event: 'error', message: (e as Error).message, errno: (e as { errno?: number }).errno });
    process.exitCode = 1;
    return;
  }
  set.on('message', (i: number, msg: unknown) => out({ event: 'message', worker: i, msg }));
  set.on('workerError', (i: number, e: Error) => out({ event: 'workerError', worker: i, message: e.message }));
  out({ event: 'ready', queues: set.queues });
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await set.stop();
    out({ event: 'stopped', stats: set.stats() });
    rl.close();
  };
  // LW_RUNNER_NO_STDIN=1: run until SIGTERM/SIGINT (for shell scripts without a stdin pipe).
  const rl = createInterface({ input: process.env.LW_RUNNER_NO_STDIN === '1' ? new PassThrough() : process.stdin });
  rl.on('line', (line) => {
    const l = line.trim();
    if (l === 'stats') out({ event: 'stats', stats: set.stats() });
    else if (l === 'stop') void stop();
    else if (l.startsWith('post ')) set.post(JSON.parse(l.slice(5)));
  });
  rl.on('close', () => void stop());
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
}

void main();
