// Main-thread side of the NFQUEUE datapath: starts one worker per queue, collects counters,
// relays messages, stops them. Nothing here blocks the event loop.
import { EventEmitter } from 'node:events';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { NFQNL_MAX_COPY_RANGE } from './nfqueue-proto.js';
import { readKernelQueues } from './nfqueue-socket.js';
import type { QueueStats, StartOptions, WorkerStats } from './types.js';
import * as S from './worker-shared.js';
import { DECISION_BUCKETS, histogramSlots, readHistogram, type HistogramSnapshot } from './histogram.js';

export type { QueueStats, StartOptions, WorkerStats } from './types.js';

const WORKER_URL = new URL('./queue-worker.js', import.meta.url);

export class QueueStartError extends Error {
  constructor(
    message: string,
    readonly queueNum: number,
    readonly errno: number | undefined,
  ) {
    super(message);
  }
}

interface WorkerSlot {
  index: number;
  queueNum: number;
  worker: Worker;
  stats: Float64Array;
  counterNames: string[];
  handlerCounters: Float64Array;
  histograms: Record<string, readonly number[]>;
  handlerHistograms: Float64Array;
  port: MessagePort;
  exited: Promise<number>;
  /** False once the worker failed or exited. */
  up: boolean;
}

/**
 * Events: 'message' (workerIndex: number, msg: unknown) — a handler's ctx.post();
 * 'workerError' (workerIndex: number, err: Error) — a worker failed after start (its queue
 * is unbound: with fail-closed the queue's traffic stops).
 */
export class QueueSet extends EventEmitter {
  private readonly control: Int32Array;
  private stopping: Promise<void> | null = null;
  private pingSeq = 0;

  /** @internal */
  constructor(
    private readonly slots: WorkerSlot[],
    controlSab: SharedArrayBuffer,
  ) {
    super();
    this.control = new Int32Array(controlSab);
  }

  get queues(): number[] {
    return this.slots.map((s) => s.queueNum);
  }

  /** Sends a message to every worker's handler module (its optional onMessage export). */
  post(msg: unknown): void {
    for (const s of this.slots) s.port.postMessage(msg);
    Atomics.add(this.control, S.C_MSG_SEQ, 1);
  }

  /**
   * Resolves once every worker has answered a ping from its receive loop (between batches, at
   * least every 200 ms): the loops run and read their messages. Rejects after `timeoutMs`.
   */
  ping(timeoutMs = 5000): Promise<void> {
    const seq = ++this.pingSeq;
    const waits = this.slots.map(
      (s) =>
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => {
            s.worker.off('message', onMsg);
            reject(new Error(`queue ${s.queueNum}: worker did not answer within ${timeoutMs} ms`));
          }, timeoutMs);
          const onMsg = (m: S.WorkerToMain): void => {
            if (m.kind !== 'pong' || m.seq !== seq) return;
            clearTimeout(timer);
            s.worker.off('message', onMsg);
            resolve();
          };
          s.worker.on('message', onMsg);
        }),
    );
    this.post({ kind: 'labelwall-queue-ping', seq } satisfies S.PingMessage);
    return Promise.all(waits).then(() => undefined);
  }

  stats(): QueueStats {
    const workers: WorkerStats[] = this.slots.map((s) => {
      const st = s.stats;
      const handler: Record<string, number> = {};
      s.counterNames.forEach((n, i) => {
        handler[n] = s.handlerCounters[i]!;
      });
      const histograms: Record<string, HistogramSnapshot> = {};
      let off = 0;
      for (const [name, bounds] of Object.entries(s.histograms)) {
        histograms[name] = readHistogram(s.handlerHistograms, off, bounds);
        off += histogramSlots(bounds);
      }
      return {
        queueNum: s.queueNum,
        received: st[S.S_RECEIVED]!,
        verdicts: st[S.S_VERDICTS]!,
        batches: st[S.S_BATCHES]!,
        sends: st[S.S_SENDS]!,
        batchVerdictMsgs: st[S.S_BATCH_VERDICT_MSGS]!,
        payloadVerdicts: st[S.S_PAYLOAD_VERDICTS]!,
        enobufs: st[S.S_ENOBUFS]!,
        kernelErrors: st[S.S_KERNEL_ERRORS]!,
        lastKernelErrno: st[S.S_LAST_KERNEL_ERRNO]!,
        handlerErrors: st[S.S_HANDLER_ERRORS]!,
        malformed: st[S.S_MALFORMED]!,
        truncated: st[S.S_TRUNCATED]!,
        sysErrors: st[S.S_SYS_ERRORS]!,
        handler,
        up: s.up,
        heartbeatMs: st[S.S_HEARTBEAT_MS]!,
        decisionBatch: readHistogram(st, S.S_DECISION_HIST, DECISION_BUCKETS),
        histograms,
      };
    });
    const kernel: QueueStats['kernel'] = {};
    const mine = new Set(this.queues);
    for (const r of readKernelQueues()) {
      if (mine.has(r.queueNum))
        kernel[r.queueNum] = {
          queueTotal: r.queueTotal,
          queueDropped: r.queueDropped,
          userDropped: r.userDropped,
          idSequence: r.idSequence,
        };
    }
    return { workers, kernel };
  }

  /** Sets the stop flag; workers notice within their 200 ms receive timeout, unbind and close. */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    Atomics.store(this.control, S.C_STOP, 1);
    this.stopping = (async () => {
      await Promise.all(
        this.slots.map(async (s) => {
          const timer = setTimeout(() => void s.worker.terminate(), 5000);
          await s.exited;
          clearTimeout(timer);
          s.port.close();
        }),
      );
    })();
    return this.stopping;
  }
}

function normalise(opts: StartOptions): Required<Omit<StartOptions, 'handlerData'>> & { handlerData: unknown } {
  if (opts.queues.length === 0) throw new TypeError('startQueues: at least one queue number');
  for (const q of opts.queues) if (!Number.isInteger(q) || q < 0 || q > 65535) throw new TypeError(`startQueues: bad queue number ${q}`);
  if (new Set(opts.queues).size !== opts.queues.length) throw new TypeError('startQueues: duplicate queue numbers');
  const batchSize = opts.batchSize ?? 64;
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 1024) throw new TypeError('startQueues: batchSize 1..1024');
  return {
    queues: opts.queues,
    handlerModule: opts.handlerModule,
    handlerData: opts.handlerData,
    copyRange: Math.min(opts.copyRange ?? NFQNL_MAX_COPY_RANGE, NFQNL_MAX_COPY_RANGE),
    maxLen: opts.maxLen ?? 8192,
    failOpen: opts.failOpen,
    gso: opts.gso ?? false,
    uidGid: opts.uidGid ?? false,
    rcvBufBytes: opts.rcvBufBytes ?? 16 << 20,
    batchSize,
    batchVerdicts: opts.batchVerdicts ?? true,
    transmit: opts.transmit ?? false,
  };
}

/**
 * Starts one worker per queue number, each binding its queue (with acknowledged config
 * requests). Resolves when every queue is bound; rejects with QueueStartError (e.g. EPERM:
 * not root, or the queue is held by another process) after stopping any worker that started.
 */
export async function startQueues(opts: StartOptions): Promise<QueueSet> {
  const o = normalise(opts);
  const controlSab = new SharedArrayBuffer(4 * S.CONTROL_SLOTS);
  const control = new Int32Array(controlSab);
  const pending = o.queues.map((queueNum, index) => {
    const statsSab = new SharedArrayBuffer(8 * S.STAT_SLOTS);
    const { port1, port2 } = new MessageChannel();
    const init: S.WorkerInit = {
      workerIndex: index,
      queueNum,
      handlerModule: o.handlerModule,
      handlerData: o.handlerData,
      copyRange: o.copyRange,
      maxLen: o.maxLen,
      failOpen: o.failOpen,
      gso: o.gso,
      uidGid: o.uidGid,
      rcvBufBytes: o.rcvBufBytes,
      batchSize: o.batchSize,
      batchVerdicts: o.batchVerdicts,
      transmit: o.transmit,
      control: controlSab,
      stats: statsSab,
      port: port2,
    };
    const worker = new Worker(WORKER_URL, { workerData: init, transferList: [port2] });
    const exited = new Promise<number>((res) => worker.once('exit', res));
    const ready = new Promise<WorkerSlot>((resolve, reject) => {
      const onMsg = (m: S.WorkerToMain): void => {
        if (m.kind === 'ready') {
          resolve({
            index,
            queueNum,
            worker,
            stats: new Float64Array(statsSab),
            counterNames: m.counterNames,
            handlerCounters: new Float64Array(m.handlerCounters, 0, m.counterNames.length),
            histograms: m.histograms,
            handlerHistograms: new Float64Array(m.handlerHistograms),
            port: port1,
            exited,
            up: true,
          });
        } else if (m.kind === 'error') {
          reject(new QueueStartError(`queue ${queueNum}: ${m.message}`, queueNum, m.errno));
        }
      };
      worker.on('message', onMsg);
      worker.once('error', (e) => reject(new QueueStartError(`queue ${queueNum}: worker failed: ${e.message}`, queueNum, undefined)));
      void exited.then((code) =>
        reject(new QueueStartError(`queue ${queueNum}: worker exited (${code}) before the queue was bound`, queueNum, undefined)),
      );
    });
    return { worker, exited, ready, port1 };
  });
  const results = await Promise.allSettled(pending.map((p) => p.ready));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    Atomics.store(control, S.C_STOP, 1);
    await Promise.all(
      pending.map(async (p) => {
        const t = setTimeout(() => void p.worker.terminate(), 5000);
        await p.exited;
        clearTimeout(t);
        p.port1.close();
      }),
    );
    throw failed.reason;
  }
  const slots = results.map((r) => (r as PromiseFulfilledResult<WorkerSlot>).value);
  const set = new QueueSet(slots, controlSab);
  for (const s of slots) {
    void s.exited.then(() => {
      s.up = false;
    });
    s.worker.on('message', (m: S.WorkerToMain) => {
      if (m.kind === 'post') set.emit('message', s.index, m.msg);
      else if (m.kind === 'error') {
        s.up = false;
        set.emit('workerError', s.index, new Error(`queue ${s.queueNum}: ${m.message}`));
      }
    });
    s.worker.on('error', (e) => {
      s.up = false;
      set.emit('workerError', s.index, e);
    });
  }
  return set;
}
