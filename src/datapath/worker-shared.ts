// What the main thread and queue workers share: the workerData shape, the layout of the
// shared counter array, and the messages they exchange.
import type { MessagePort } from 'node:worker_threads';
import type { QueueConfig } from './nfqueue-socket.js';
import { DECISION_BUCKETS, histogramSlots } from './histogram.js';

/** Slots of the per-worker Float64Array of datapath counters. */
export const S_RECEIVED = 0;
export const S_VERDICTS = 1;
export const S_BATCHES = 2;
export const S_SENDS = 3;
export const S_BATCH_VERDICT_MSGS = 4;
export const S_PAYLOAD_VERDICTS = 5;
export const S_ENOBUFS = 6;
export const S_KERNEL_ERRORS = 7;
export const S_LAST_KERNEL_ERRNO = 8;
export const S_HANDLER_ERRORS = 9;
export const S_MALFORMED = 10;
export const S_TRUNCATED = 11;
export const S_SYS_ERRORS = 12;
/** Wall-clock ms of the worker loop's last pass (at least every 200 ms while it is healthy). */
export const S_HEARTBEAT_MS = 13;
/** Histogram of the time one receive batch took to decide (histogram.ts, DECISION_BUCKETS). */
export const S_DECISION_HIST = 14;
export const STAT_SLOTS = S_DECISION_HIST + histogramSlots(DECISION_BUCKETS);

/** Int32 slots of the control array shared by all workers. */
export const C_STOP = 0;
/** Bumped by the main thread after posting on a worker's message port: poll it. */
export const C_MSG_SEQ = 1;
export const CONTROL_SLOTS = 2;

/** What a worker is started with: its queue's socket settings plus the handler and shared memory. */
export interface WorkerInit extends Pick<QueueConfig, 'queueNum' | 'copyRange' | 'maxLen' | 'failOpen' | 'gso' | 'uidGid' | 'rcvBufBytes'> {
  workerIndex: number;
  handlerModule: string;
  handlerData: unknown;
  batchSize: number;
  batchVerdicts: boolean;
  /** Give the handler a raw transmitter (HandlerContext.transmit). */
  transmit: boolean;
  control: SharedArrayBuffer;
  stats: SharedArrayBuffer;
  /** Port for main → worker handler messages (polled synchronously between batches). */
  port: MessagePort;
}

export type WorkerToMain =
  | {
      kind: 'ready';
      counterNames: string[];
      handlerCounters: SharedArrayBuffer;
      portId: number;
      /** The handler module's histograms (name -> bounds), laid out one after the other in handlerHistograms. */
      histograms: Record<string, readonly number[]>;
      handlerHistograms: SharedArrayBuffer;
    }
  | { kind: 'error'; message: string; errno?: number }
  | { kind: 'post'; msg: unknown }
  | { kind: 'stopped' }
  | { kind: 'pong'; seq: number };

/** Main → worker: answered with a pong from the worker's loop itself (QueueSet.ping), never given to the handler. */
export interface PingMessage {
  kind: 'labelwall-queue-ping';
  seq: number;
}

export function isPing(m: unknown): m is PingMessage {
  return typeof m === 'object' && m !== null && (m as { kind?: unknown }).kind === 'labelwall-queue-ping';
}
