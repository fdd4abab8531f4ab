// Queue worker thread: one netlink socket bound to one NFQUEUE queue. Loop: recvmmsg up to
// `batchSize` messages → QueueCore (parse → handler → verdict bytes appended to one send
// buffer; queue-core.ts) → one send() per batch. The system calls are all here; blocking
// calls happen here, never on the main thread's event loop.
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { EAGAIN, EINTR, ENOBUFS, MSG_TRUNC, MSG_WAITFORONE, RecvVector, nativeAlloc, sendPtr } from '../sys/libc.js';
import type { NlWriter } from './netlink.js';
import { MAX_VERDICT_PAYLOAD } from './nfqueue-proto.js';
import { NfqSocket, NfqueueError } from './nfqueue-socket.js';
import { QueueCore } from './queue-core.js';
import { RawTransmitter } from './raw-transmit.js';
import type { HandlerContext, HandlerModule, PacketHandler } from './types.js';
import * as S from './worker-shared.js';
import { DECISION_BUCKETS, histogramSlots, observe } from './histogram.js';

const init = workerData as S.WorkerInit;
let beforeTransmit: () => void = () => {};
const port = parentPort!;
const stats = new Float64Array(init.stats);
const control = new Int32Array(init.control);

/** Send buffer: a send happens when the next verdict would not fit (about 1 MiB per send at
 * most), far below the forced socket send buffer, which bounds one netlink message batch. */
const SEND_CHUNK = (1 << 20) + 70000;
const SND_BUF = 8 << 20;

function post(m: S.WorkerToMain): void {
  port.postMessage(m);
}

interface Loaded {
  mod: HandlerModule;
  handler: PacketHandler;
  ctx: HandlerContext;
  sab: SharedArrayBuffer;
  histograms: Record<string, readonly number[]>;
  histSab: SharedArrayBuffer;
}

async function loadHandler(): Promise<Loaded> {
  const spec = init.handlerModule.startsWith('file:') ? init.handlerModule : pathToFileURL(init.handlerModule).href;
  const mod = (await import(spec)) as HandlerModule;
  if (!Array.isArray(mod.counterNames) || typeof mod.createHandler !== 'function')
    throw new Error(`${spec}: a handler module exports counterNames (string[]) and createHandler()`);
  const sab = new SharedArrayBuffer(8 * Math.max(1, mod.counterNames.length));
  const histograms: Record<string, readonly number[]> = { ...(mod.histograms ?? {}) };
  const total = Object.values(histograms).reduce((n, b) => n + histogramSlots(b), 0);
  const histSab = new SharedArrayBuffer(8 * Math.max(1, total));
  const histMem = new Float64Array(histSab);
  const views: HandlerContext['histograms'] = {};
  let off = 0;
  for (const [name, bounds] of Object.entries(histograms)) {
    views[name] = { mem: histMem, off, bounds };
    off += histogramSlots(bounds);
  }
  const ctx: HandlerContext = {
    counters: new Float64Array(sab, 0, mod.counterNames.length),
    workerIndex: init.workerIndex,
    queueNum: init.queueNum,
    post: (msg: unknown) => post({ kind: 'post', msg }),
    scratch: Buffer.alloc(65536),
    failOpen: init.failOpen,
    histograms: views,
  };
  // The transmitter flushes the verdicts decided before it sends; the core exists only later.
  if (init.transmit) {
    const tx = new RawTransmitter(() => beforeTransmit());
    try {
      tx.open();
    } catch (e) {
      tx.close();
      throw new Error(`raw socket for the segments the handler sends: ${(e as Error).message}`);
    }
    ctx.transmit = tx;
  }
  const handler = await mod.createHandler(init.handlerData, ctx);
  if (typeof handler !== 'function') throw new Error(`${spec}: createHandler() must return a function`);
  return { mod, handler, ctx, sab, histograms, histSab };
}

async function main(): Promise<void> {
  let loaded: Awaited<ReturnType<typeof loadHandler>>;
  try {
    loaded = await loadHandler();
  } catch (e) {
    post({ kind: 'error', message: `handler module: ${(e as Error).stack ?? String(e)}` });
    init.port.close();
    return;
  }
  let sock: NfqSocket;
  try {
    sock = NfqSocket.open({
      queueNum: init.queueNum,
      copyRange: init.copyRange,
      maxLen: init.maxLen,
      failOpen: init.failOpen,
      gso: init.gso,
      uidGid: init.uidGid,
      rcvBufBytes: init.rcvBufBytes,
      sndBufBytes: SND_BUF,
      recvTimeoutMs: 200,
    });
  } catch (e) {
    post({ kind: 'error', message: (e as Error).message, errno: e instanceof NfqueueError ? e.errno : undefined });
    init.port.close();
    return;
  }
  post({
    kind: 'ready',
    counterNames: [...loaded.mod.counterNames],
    handlerCounters: loaded.sab,
    portId: sock.portId,
    histograms: loaded.histograms,
    handlerHistograms: loaded.histSab,
  });
  try {
    run(sock, loaded.handler, loaded.mod);
  } finally {
    (loaded.ctx.transmit as RawTransmitter | undefined)?.close();
    sock.unbindNoWait(init.queueNum);
    sock.close();
    init.port.close();
    post({ kind: 'stopped' });
  }
}

function run(sock: NfqSocket, handler: PacketHandler, mod: HandlerModule): void {
  const fd = sock.fd;
  // Slot: the largest packet message (copy range + attribute headers), 4-aligned.
  const slot = (Math.min(init.copyRange, MAX_VERDICT_PAYLOAD) + 1024 + 3) & ~3;
  const rv = new RecvVector(init.batchSize, slot);
  const sendMem = nativeAlloc(SEND_CHUNK);

  let sends = 0;
  let sysErrors = 0;
  const flush = (w: NlWriter): void => {
    let tries = 0;
    for (;;) {
      const n = sendPtr(fd, sendMem.ptr, w.off);
      if (n >= 0) break;
      if ((-n === EINTR || -n === ENOBUFS || -n === EAGAIN) && ++tries < 5) continue;
      // Verdicts lost: those packets stay queued (the core stops batching).
      sysErrors++;
      core.sendFailed();
      break;
    }
    sends++;
    w.reset();
  };
  const core = new QueueCore(
    { queueNum: init.queueNum, failOpen: init.failOpen, batchVerdicts: init.batchVerdicts },
    handler,
    sendMem.buf,
    flush,
  );
  beforeTransmit = () => core.finish();
  const c = core.counters;
  const ec = core.enc.counters;

  let batches = 0,
    enobufs = 0;
  // Not the current value: a message posted between 'ready' and this point (the main thread
  // answers 'ready' at once) must be read on the first pass, not at the next post.
  let msgSeq = Atomics.load(control, S.C_MSG_SEQ) - 1;

  const publish = (): void => {
    stats[S.S_RECEIVED] = c.received;
    stats[S.S_VERDICTS] = ec.verdicts;
    stats[S.S_BATCHES] = batches;
    stats[S.S_SENDS] = sends;
    stats[S.S_BATCH_VERDICT_MSGS] = ec.batchVerdictMsgs;
    stats[S.S_PAYLOAD_VERDICTS] = ec.payloadVerdicts;
    stats[S.S_ENOBUFS] = enobufs;
    stats[S.S_KERNEL_ERRORS] = c.kernelErrors;
    stats[S.S_LAST_KERNEL_ERRNO] = c.lastKernelErrno;
    stats[S.S_HANDLER_ERRORS] = c.handlerErrors;
    stats[S.S_MALFORMED] = c.malformed;
    stats[S.S_TRUNCATED] = c.truncated;
    stats[S.S_SYS_ERRORS] = sysErrors;
  };

  while (Atomics.load(control, S.C_STOP) === 0) {
    // The heartbeat: a loop stuck in a handler (or a system call) stops updating it.
    stats[S.S_HEARTBEAT_MS] = Date.now();
    const seqNow = Atomics.load(control, S.C_MSG_SEQ);
    if (seqNow !== msgSeq) {
      msgSeq = seqNow;
      for (let m = receiveMessageOnPort(init.port); m !== undefined; m = receiveMessageOnPort(init.port)) {
        if (S.isPing(m.message)) {
          post({ kind: 'pong', seq: m.message.seq });
          continue;
        }
        try {
          mod.onMessage?.(m.message);
        } catch (e) {
          post({ kind: 'post', msg: { kind: 'onMessage-error', error: String(e) } });
        }
      }
    }
    const n = rv.recv(fd, MSG_WAITFORONE);
    if (n < 0) {
      const e = -n;
      if (e === EAGAIN || e === EINTR) continue; // SO_RCVTIMEO: look at the stop flag
      if (e === ENOBUFS) {
        // The socket overran: the kernel dropped packets (or let them through with fail-open).
        enobufs++;
      } else {
        sysErrors++;
      }
      publish();
      continue;
    }
    batches++;
    // Timed per batch, not per packet: two clock reads for up to batchSize packets.
    const t0 = performance.now();
    for (let i = 0; i < n; i++) core.datagram(rv.bufs[i]!, rv.msgLen(i), (rv.msgFlags(i) & MSG_TRUNC) !== 0);
    core.finish();
    observe(stats, S.S_DECISION_HIST, DECISION_BUCKETS, (performance.now() - t0) / 1000);
    publish();
  }
  publish();
  rv.free();
  sendMem.free();
}

main().catch((e) => {
  post({ kind: 'error', message: `worker: ${(e as Error).stack ?? String(e)}` });
});
