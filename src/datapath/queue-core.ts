// The pure core of a queue worker: received netlink bytes in, verdict bytes out. It parses
// each message into the reused packet view, calls the handler, checks its decision and has the
// VerdictEncoder write the verdicts; it makes no system call (the worker's loop receives, and
// sends in the `flush` callback), so unit tests feed it synthetic bytes.
import { NLMSG_ERROR, NlWriter, parseNlError, readNlHeader } from './netlink.js';
import {
  MAX_VERDICT_PAYLOAD,
  NF_ACCEPT,
  NF_DROP,
  NF_REPEAT,
  T_PACKET,
  newAttrTable,
  newQueuedPacket,
  parsePacket,
} from './nfqueue-proto.js';
import type { PacketHandler, QueuedPacket, VerdictDecision } from './types.js';
import { VerdictEncoder } from './verdict-encoder.js';

export interface QueueCoreOptions {
  queueNum: number;
  /** The verdict of a packet the handler could not judge: accept when true, else drop. */
  failOpen: boolean;
  /** Coalesce runs of equal plain verdicts into NFQNL_MSG_VERDICT_BATCH. */
  batchVerdicts: boolean;
}

/** What the core counted (cumulative); the encoder counts verdicts (QueueCore.enc.counters). */
export interface CoreCounters {
  /** Packet messages seen. */
  received: number;
  /** Handler threw or returned an invalid decision (packet got the fail-mode verdict). */
  handlerErrors: number;
  /** Messages that did not parse (packet got the fail-mode verdict when its id was readable). */
  malformed: number;
  /** Datagrams cut by the receive slot size (MSG_TRUNC). */
  truncated: number;
  /** NLMSG_ERROR messages with errno != 0, and the last such errno. */
  kernelErrors: number;
  lastKernelErrno: number;
}

export class QueueCore {
  readonly enc: VerdictEncoder;
  readonly counters: CoreCounters = { received: 0, handlerErrors: 0, malformed: 0, truncated: 0, kernelErrors: 0, lastKernelErrno: 0 };
  private readonly failVerdict: number;
  private readonly table = newAttrTable();
  private readonly pkt: QueuedPacket = newQueuedPacket();

  /**
   * @param sendBuf where verdict messages are written
   * @param flush sends sendBuf[0, w.off) and resets the writer; called when the next verdict
   *   would not fit and at the end of each batch (finish). On a failed send it must call
   *   sendFailed().
   */
  constructor(
    opts: QueueCoreOptions,
    private readonly handler: PacketHandler,
    sendBuf: Buffer,
    flush: (w: NlWriter) => void,
  ) {
    this.failVerdict = opts.failOpen ? NF_ACCEPT : NF_DROP;
    this.enc = new VerdictEncoder(new NlWriter(sendBuf), opts.queueNum, opts.batchVerdicts, flush);
  }

  /** One received datagram, buf[0, len): `truncated` when the kernel flagged MSG_TRUNC. */
  datagram(buf: Buffer, len: number, truncated: boolean): void {
    const c = this.counters;
    const enc = this.enc;
    if (truncated) {
      c.truncated++;
      len = Math.min(len, buf.length);
    }
    const pp = this.pkt;
    let off = 0;
    while (off < len) {
      const h = readNlHeader(buf, off, len);
      if (!h.ok) {
        // The rest of the datagram is unreadable: a packet in it stays queued, so no later
        // batch verdict may sweep it up.
        c.malformed++;
        enc.disableBatching();
        break;
      }
      off = h.next;
      const msg = h.msg;
      if (msg.type === NLMSG_ERROR) {
        const pe = parseNlError(buf, msg);
        if (pe.ok && pe.err.errno !== 0) {
          c.kernelErrors++;
          c.lastKernelErrno = pe.err.errno;
        }
        continue;
      }
      if (msg.type !== T_PACKET) continue;
      c.received++;
      if (parsePacket(buf, msg, this.table, pp) !== null) {
        c.malformed++;
        if (pp.id === -1) enc.disableBatching();
        else enc.plain(pp.id, this.failVerdict, -1);
        continue;
      }
      let d: VerdictDecision;
      try {
        d = this.handler(pp);
      } catch {
        c.handlerErrors++;
        enc.plain(pp.id, this.failVerdict, -1);
        continue;
      }
      if (!apply(enc, pp.id, d)) {
        c.handlerErrors++;
        enc.plain(pp.id, this.failVerdict, -1);
      }
    }
  }

  /** End of a receive batch: writes the open run and flushes what is written. */
  finish(): void {
    this.enc.finish();
  }

  /** A send failed: those packets stay queued; never let a later batch verdict sweep them. */
  sendFailed(): void {
    this.enc.disableBatching();
  }
}

/** Encodes a handler decision; false when it is invalid (then nothing was written). */
function apply(enc: VerdictEncoder, id: number, d: VerdictDecision): boolean {
  if (d === null || typeof d !== 'object') return false;
  let v: number;
  switch (d.verdict) {
    case 'accept':
      v = NF_ACCEPT;
      break;
    case 'drop':
      v = NF_DROP;
      break;
    case 'repeat':
      v = NF_REPEAT;
      break;
    default:
      return false;
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
