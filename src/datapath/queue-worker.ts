// Queue worker thread: one netlink socket bound to one NFQUEUE queue. Loop: recvmmsg up to
// `batchSize` messages → parse → handler → verdict bytes appended to one send buffer → one
// send() per batch. Blocking calls happen here, never on the main thread's event loop.
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { NLMSG_ERROR, NlWriter, parseNlError, readNlHeader } from './netlink.js';
import {
  MAX_VERDICT_PAYLOAD,
  NFQA_SKB_CSUMNOTREADY,
  NFQA_SKB_GSO,
  NF_ACCEPT,
  NF_DROP,
  NF_REPEAT,
  T_PACKET,
  newAttrTable,
  newParsedPacket,
  parsePacket,
} from './nfqueue-proto.js';
import { EAGAIN, EINTR, ENOBUFS, MSG_TRUNC, MSG_WAITFORONE, RecvVector, nativeAlloc, sendPtr } from './libc.js';
import { NfqSocket, NfqueueError } from './nfqueue-socket.js';
import type { HandlerContext, HandlerModule, PacketHandler, QueuedPacket, VerdictDecision } from './types.js';
import * as S from './worker-shared.js';
import { VerdictEncoder } from './verdict-encoder.js';

const init = workerData as S.WorkerInit;
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

async function loadHandler(): Promise<{ mod: HandlerModule; handler: PacketHandler; ctx: HandlerContext; sab: SharedArrayBuffer }> {
  const spec = init.handlerModule.startsWith('file:') ? init.handlerModule : pathToFileURL(init.handlerModule).href;
  const mod = (await import(spec)) as HandlerModule;
  if (!Array.isArray(mod.counterNames) || typeof mod.createHandler !== 'function')
    throw new Error(`${spec}: a handler module exports counterNames (string[]) and createHandler()`);
  const sab = new SharedArrayBuffer(8 * Math.max(1, mod.counterNames.length));
  const ctx: HandlerContext = {
    counters: new Float64Array(sab, 0, mod.counterNames.length),
    workerIndex: init.workerIndex,
    queueNum: init.queueNum,
    post: (msg: unknown) => post({ type: 'post', msg }),
    scratch: Buffer.alloc(65536),
    failOpen: init.failOpen,
  };
  const handler = await mod.createHandler(init.handlerData, ctx);
  if (typeof handler !== 'function') throw new Error(`${spec}: createHandler() must return a function`);
  return { mod, handler, ctx, sab };
}

async function main(): Promise<void> {
  let loaded;
  try {
    loaded = await loadHandler();
  } catch (e) {
    post({ type: 'error', message: `handler module: ${(e as Error).stack ?? String(e)}` });
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
    post({ type: 'error', message: (e as Error).message, errno: e instanceof NfqueueError ? e.errno : undefined });
    init.port.close();
    return;
  }
  post({ type: 'ready', counterNames: [...loaded.mod.counterNames], handlerCounters: loaded.sab, portId: sock.portId });
  try {
    run(sock, loaded.handler, loaded.mod);
  } finally {
    sock.unbindNoWait(init.queueNum);
    sock.close();
    init.port.close();
    post({ type: 'stopped' });
  }
}

function run(sock: NfqSocket, handler: PacketHandler, mod: HandlerModule): void {
  const fd = sock.fd;
  const failVerdict = init.failOpen ? NF_ACCEPT : NF_DROP;
  // Slot: the largest packet message (copy range + attribute headers), 4-aligned.
  const slot = (Math.min(init.copyRange, MAX_VERDICT_PAYLOAD) + 1024 + 3) & ~3;
  const rv = new RecvVector(init.batchSize, slot);
  const sendMem = nativeAlloc(SEND_CHUNK);
  const writer = new NlWriter(sendMem.buf);
  const table = newAttrTable();
  const pp = newParsedPacket();
  const qp: QueuedPacket = {
    id: 0, family: 0, hwProtocol: 0, hook: 0, mark: 0, indev: 0, outdev: 0,
    payload: pp.payload, gso: false, csumNotReady: false, uid: undefined, gid: undefined,
  };

  let sends = 0;
  let sysErrors = 0;
  const flush = (w: NlWriter): void => {
    let tries = 0;
    for (;;) {
      const n = sendPtr(fd, sendMem.ptr, w.off);
      if (n >= 0) break;
      if ((-n === EINTR || -n === ENOBUFS || -n === EAGAIN) && ++tries < 5) continue;
      // Verdicts lost: those packets stay queued; never let a later batch verdict sweep them.
      sysErrors++;
      enc.disableBatching();
      break;
    }
    sends++;
    w.reset();
  };
  const enc = new VerdictEncoder(writer, init.queueNum, init.batchVerdicts, flush);

  let received = 0, batches = 0, enobufs = 0, kernelErrors = 0, lastKernelErrno = 0;
  let handlerErrors = 0, malformed = 0, truncated = 0;
  // Not the current value: a message posted between 'ready' and this point (the main thread
  // answers 'ready' at once) must be read on the first pass, not at the next post.
  let msgSeq = Atomics.load(control, S.C_MSG_SEQ) - 1;

  const publish = (): void => {
    stats[S.S_RECEIVED] = received;
    stats[S.S_VERDICTS] = enc.counters.verdicts;
    stats[S.S_BATCHES] = batches;
    stats[S.S_SENDS] = sends;
    stats[S.S_BATCH_VERDICT_MSGS] = enc.counters.batchVerdictMsgs;
    stats[S.S_PAYLOAD_VERDICTS] = enc.counters.payloadVerdicts;
    stats[S.S_ENOBUFS] = enobufs;
    stats[S.S_KERNEL_ERRORS] = kernelErrors;
    stats[S.S_LAST_KERNEL_ERRNO] = lastKernelErrno;
    stats[S.S_HANDLER_ERRORS] = handlerErrors;
    stats[S.S_MALFORMED] = malformed;
    stats[S.S_TRUNCATED] = truncated;
    stats[S.S_SYS_ERRORS] = sysErrors;
  };

  while (Atomics.load(control, S.C_STOP) === 0) {
    const seqNow = Atomics.load(control, S.C_MSG_SEQ);
    if (seqNow !== msgSeq) {
      msgSeq = seqNow;
      for (let m = receiveMessageOnPort(init.port); m !== undefined; m = receiveMessageOnPort(init.port)) {
        try {
          mod.onMessage?.(m.message);
        } catch (e) {
          post({ type: 'post', msg: { kind: 'onMessage-error', error: String(e) } });
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
    for (let i = 0; i < n; i++) {
      const buf = rv.bufs[i];
      let len = rv.msgLen(i);
      if (rv.msgFlags(i) & MSG_TRUNC) {
        truncated++;
        len = Math.min(len, buf.length);
      }
      let off = 0;
      while (off < len) {
        const h = readNlHeader(buf, off, len);
        if (!h.ok) {
          malformed++;
          enc.disableBatching();
          break;
        }
        off = h.next;
        const msg = h.msg;
        if (msg.type === NLMSG_ERROR) {
          const pe = parseNlError(buf, msg);
          if (pe.ok && pe.err.errno !== 0) {
            kernelErrors++;
            lastKernelErrno = pe.err.errno;
          }
          continue;
        }
        if (msg.type !== T_PACKET) continue;
        received++;
        const perr = parsePacket(buf, msg, table, pp);
        if (perr !== null) {
          malformed++;
          if (pp.id === -1) enc.disableBatching();
          else enc.plain(pp.id, failVerdict, -1);
          continue;
        }
        qp.id = pp.id;
        qp.family = pp.family;
        qp.hwProtocol = pp.hwProtocol;
        qp.hook = pp.hook;
        qp.mark = pp.mark;
        qp.indev = pp.indev;
        qp.outdev = pp.outdev;
        qp.payload = pp.payload;
        qp.gso = (pp.skbInfo & NFQA_SKB_GSO) !== 0;
        qp.csumNotReady = (pp.skbInfo & NFQA_SKB_CSUMNOTREADY) !== 0;
        qp.uid = pp.uid >= 0 ? pp.uid : undefined;
        qp.gid = pp.gid >= 0 ? pp.gid : undefined;
        let d: VerdictDecision;
        try {
          d = handler(qp);
        } catch {
          handlerErrors++;
          enc.plain(pp.id, failVerdict, -1);
          continue;
        }
        if (!apply(enc, pp.id, d)) {
          handlerErrors++;
          enc.plain(pp.id, failVerdict, -1);
        }
      }
    }
    enc.finish();
    publish();
  }
  publish();
  rv.free();
  sendMem.free();
}

/** Encodes a handler decision; false when it is invalid (then nothing was written). */
function apply(enc: VerdictEncoder, id: number, d: VerdictDecision): boolean {
  if (d === null || typeof d !== 'object') return false;
  let v: number;
  switch (d.verdict) {
    case 'accept': v = NF_ACCEPT; break;
    case 'drop': v = NF_DROP; break;
    case 'repeat': v = NF_REPEAT; break;
    default: return false;
  }
  let mark = -1;
  if (d.mark !== undefined) {
    if (!Number.isInteger(d.mark) || d.mark < 0 || d.mark > 0xffffffff) return false;
    mark = d.mark;
  }
  if (d.payload === undefined) {
    enc.plain(id, v, mark);
    return true;
  }
  if (!(d.payload instanceof Uint8Array)) return false;
  const len = d.payloadLength ?? d.payload.length;
  if (!Number.isInteger(len) || len < 20 || len > MAX_VERDICT_PAYLOAD || len > d.payload.length) return false;
  enc.withPayload(id, v, mark, d.payload, len);
  return true;
}


main().catch((e) => {
  post({ type: 'error', message: `worker: ${(e as Error).stack ?? String(e)}` });
});
