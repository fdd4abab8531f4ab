// Turns a receive batch's decisions into verdict messages in one send buffer, coalescing
// runs of equal plain verdicts into NFQNL_MSG_VERDICT_BATCH. Pure apart from the `flush`
// callback the caller supplies (which performs the send).
//
// Why coalescing is correct: the kernel applies a batch verdict to every packet still in
// its queue whose id is not after maxId. The kernel adds a packet to its queue only after
// delivering it to our socket, in id order, so every queued id ≤ maxId is one we have
// received. Packets are answered in receive order and the kernel processes the messages of
// one send in order, so when a run's batch message is processed, every earlier packet was
// already answered by an earlier message. The one hazard is a packet we could not answer
// (a failed send, an unreadable id): a later batch would then sweep it up with the run's
// verdict. `disableBatching()` is called in those cases and stays off for the socket's life.
import type { NlWriter } from './netlink.js';
import { VERDICT_BATCH_MSG_SIZE, verdictMsgSize, writeVerdict, writeVerdictBatch } from './nfqueue-proto.js';

export interface EncoderCounters {
  verdicts: number;
  batchVerdictMsgs: number;
  payloadVerdicts: number;
}

export class VerdictEncoder {
  readonly w: NlWriter;
  private batching: boolean;
  private runVerdict = -1;
  private runMark = -1;
  private runCount = 0;
  private runLastId = 0;
  readonly counters: EncoderCounters = { verdicts: 0, batchVerdictMsgs: 0, payloadVerdicts: 0 };

  /**
   * @param flush sends w.buf[0, w.off) and must leave the writer reset; called when the next
   *   message would not fit and at end of batch.
   */
  constructor(
    w: NlWriter,
    private readonly queueNum: number,
    batching: boolean,
    private readonly flushFn: (w: NlWriter) => void,
  ) {
    this.w = w;
    this.batching = batching;
  }

  disableBatching(): void {
    this.closeRun();
    this.batching = false;
  }

  /** A verdict without new bytes; `mark` < 0 leaves the mark unchanged. */
  plain(id: number, verdict: number, mark: number): void {
    this.counters.verdicts++;
    if (this.batching) {
      if (this.runCount > 0 && this.runVerdict === verdict && this.runMark === mark) {
        this.runCount++;
        this.runLastId = id;
        return;
      }
      this.closeRun();
      this.runVerdict = verdict;
      this.runMark = mark;
      this.runCount = 1;
      this.runLastId = id;
      return;
    }
    this.room(verdictMsgSize(mark >= 0, -1));
    writeVerdict(this.w, this.queueNum, id, verdict, mark, null);
  }

  /** A verdict with replacement bytes (never batched: a batch verdict cannot carry bytes). */
  withPayload(id: number, verdict: number, mark: number, payload: Uint8Array, len: number): void {
    this.closeRun();
    this.counters.verdicts++;
    this.counters.payloadVerdicts++;
    this.room(verdictMsgSize(mark >= 0, len));
    writeVerdict(this.w, this.queueNum, id, verdict, mark, payload, len);
  }

  /** Writes any open run and hands the buffer to flush (if not empty). */
  finish(): void {
    this.closeRun();
    if (this.w.off > 0) this.flushFn(this.w);
  }

  private closeRun(): void {
    if (this.runCount === 0) return;
    if (this.runCount === 1) {
      this.room(verdictMsgSize(this.runMark >= 0, -1));
      writeVerdict(this.w, this.queueNum, this.runLastId, this.runVerdict, this.runMark, null);
    } else {
      this.room(VERDICT_BATCH_MSG_SIZE);
      writeVerdictBatch(this.w, this.queueNum, this.runLastId, this.runVerdict, this.runMark);
      this.counters.batchVerdictMsgs++;
    }
    this.runCount = 0;
  }

  private room(n: number): void {
    if (this.w.remaining() < n) {
      this.flushFn(this.w);
      if (this.w.remaining() < n) throw new RangeError(`verdict of ${n} bytes does not fit the send buffer`);
    }
  }
}
