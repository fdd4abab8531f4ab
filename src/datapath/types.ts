// The contract between the NFQUEUE datapath and packet handlers (agent, verifier, tests).
//
// A handler module is an ES module, loaded by file URL inside each queue worker thread:
//
//   export const counterNames: readonly string[];
//   export function createHandler(data: unknown, ctx: HandlerContext): PacketHandler;
//   export function onMessage?(msg: unknown): void;   // optional: messages from QueueSet.post()
//   export const histograms?: Record<string, readonly number[]>;  // optional: latency histograms
//                                                    // (name -> bucket bounds, histogram.ts)
//
// createHandler runs once per worker (one worker per queue number); the handler it returns is
// called once per queued packet, synchronously, on that worker's thread. Speed notes:
// - The QueuedPacket object and its payload view are reused for the next packet: copy what
//   you need to keep. The payload points into the receive buffer; do not write to it.
// - Return a shared constant (ACCEPT, DROP) or reuse one decision object where you can;
//   a replacement payload is copied into the send buffer right after the call, so a handler
//   may build every new packet in the same scratch buffer (ctx.scratch).
// - A thrown exception or an invalid decision gives the packet the fail-mode verdict
//   (accept with failOpen, else drop) and counts `handlerErrors`; the worker carries on.

import type { RawTransmit } from './raw-transmit.js';
import type { HistogramSnapshot } from './histogram.js';

export interface QueuedPacket {
  /** Kernel packet id (serial within the queue); -1 while unread (an unparseable message). */
  id: number;
  /** nfgen family: 2 = IPv4, 10 = IPv6 (NFPROTO_*). */
  family: number;
  /** Queue number the message names (nfgenmsg res_id). */
  queueNum: number;
  /** Link-layer protocol, e.g. 0x0800 IPv4, 0x86dd IPv6. */
  hwProtocol: number;
  /** Netfilter hook: 0 PREROUTING, 1 INPUT, 2 FORWARD, 3 OUTPUT, 4 POSTROUTING. */
  hook: number;
  mark: number;
  /** Interface indexes, 0 when not known at this hook. */
  indev: number;
  outdev: number;
  physindev: number;
  physoutdev: number;
  /** Network-layer packet (IP header first). View into the receive buffer, valid only during the call; empty if not copied. */
  payload: Buffer;
  /** Original length (NFQA_CAP_LEN) when the payload was truncated by copy range, else payload length. */
  capLen: number;
  /** NFQA_SKB_INFO bits (gso and csumNotReady below are two of them). */
  skbInfo: number;
  /** True when the kernel handed over a GSO super-packet (only with the gso option). */
  gso: boolean;
  /** True when the checksum is partial (offloaded, CHECKSUM_PARTIAL); only with the gso option. */
  csumNotReady: boolean;
  /** Socket owner, -1 when absent (needs the uidGid option and a locally generated packet with a full socket). */
  uid: number;
  gid: number;
}

export type Verdict = 'accept' | 'drop' | 'repeat';

export interface VerdictDecision {
  verdict: Verdict;
  /** New skb mark (u32). */
  mark?: number;
  /**
   * Replacement packet: complete IP packet with correct IP/TCP/UDP checksums, 20..65,531
   * bytes. Only bytes [0, payloadLength ?? payload.length) are used.
   */
  payload?: Uint8Array;
  payloadLength?: number;
}

export const ACCEPT: VerdictDecision = Object.freeze({ verdict: 'accept' });
export const DROP: VerdictDecision = Object.freeze({ verdict: 'drop' });

export interface HandlerContext {
  /** One slot per name in counterNames, this worker's own; read (racily, as numbers) by the main thread. */
  counters: Float64Array;
  workerIndex: number;
  queueNum: number;
  /** Sends a rare event (log line, alert) to the main thread: QueueSet 'message' event. */
  post(msg: unknown): void;
  /** 65,536-byte buffer the handler may use to build replacement payloads (see above). */
  scratch: Buffer;
  /** Whether the queue was set up fail-open (the verdict the worker gives on handler errors). */
  failOpen: boolean;
  /**
   * Present on queues started with `transmit`: sends packets the handler built (segments of a GSO
   * super-packet) through raw IP sockets, after the verdicts decided so far (raw-transmit.ts).
   */
  transmit?: RawTransmit;
  /**
   * The module's histograms (its `histograms` export): name -> [memory, offset]; record with
   * histogram.ts observe(mem, off, bounds, seconds). Read by the main thread for /metrics.
   */
  histograms: Record<string, { mem: Float64Array; off: number; bounds: readonly number[] }>;
}

export type PacketHandler = (p: QueuedPacket) => VerdictDecision;

export interface HandlerModule {
  counterNames: readonly string[];
  createHandler(data: unknown, ctx: HandlerContext): PacketHandler | Promise<PacketHandler>;
  onMessage?(msg: unknown): void;
  histograms?: Record<string, readonly number[]>;
}

export interface StartOptions {
  /** Queue numbers; one worker thread (and netlink socket) per queue. */
  queues: number[];
  /** Absolute file URL (or path) of the handler module. */
  handlerModule: string;
  /** Structured-cloneable data passed to createHandler in every worker. */
  handlerData: unknown;
  /** Bytes of each packet to copy to userspace (default and max 65,531). */
  copyRange?: number;
  /** Kernel queue length (default 8192). */
  maxLen?: number;
  /** Kernel lets packets through when the queue is full; handler errors accept. Default false. */
  failOpen: boolean;
  /** Take GSO super-packets unsegmented (NFQA_CFG_F_GSO). Default false. */
  gso?: boolean;
  /** Give handlers a raw transmitter (HandlerContext.transmit): sending packets they build. Default false. */
  transmit?: boolean;
  /** Ask for socket uid/gid (NFQA_CFG_F_UID_GID). Default false. */
  uidGid?: boolean;
  /** Receive buffer forced with SO_RCVBUFFORCE (default 16 MiB). */
  rcvBufBytes?: number;
  /** Messages per recvmmsg (1..64, default 64). */
  batchSize?: number;
  /** Coalesce runs of equal plain verdicts into NFQNL_MSG_VERDICT_BATCH (default true; false for measurement and tests). */
  batchVerdicts?: boolean;
}

/** Per-worker datapath counters (cumulative). */
export interface WorkerStats {
  queueNum: number;
  received: number;
  verdicts: number;
  /** recvmmsg calls that returned packets. */
  batches: number;
  sends: number;
  /** NFQNL_MSG_VERDICT_BATCH messages sent (each covering ≥ 2 packets). */
  batchVerdictMsgs: number;
  /** Verdicts carrying a replacement payload. */
  payloadVerdicts: number;
  /** Receive overruns reported by the kernel (ENOBUFS: packets dropped at the socket). */
  enobufs: number;
  /** Errors the kernel sent back (NLMSG_ERROR with errno != 0), e.g. ENOENT for an unknown id. */
  kernelErrors: number;
  /** Last errno seen in kernelErrors. */
  lastKernelErrno: number;
  /** Handler threw or returned an invalid decision (packet got the fail-mode verdict). */
  handlerErrors: number;
  /** Messages that did not parse (packet got the fail-mode verdict when its id was readable). */
  malformed: number;
  /** Messages cut by the receive slot size (MSG_TRUNC). */
  truncated: number;
  /** Failed syscalls other than timeouts (recv, send). */
  sysErrors: number;
  handler: Record<string, number>;
  /** False once the worker thread failed or exited (its queue is unbound). */
  up: boolean;
  /** Wall-clock ms of the worker loop's last pass (0 before the first). */
  heartbeatMs: number;
  /** Time each receive batch took to decide (seconds). */
  decisionBatch: HistogramSnapshot;
  /** The handler module's histograms by name. */
  histograms: Record<string, HistogramSnapshot>;
}

export interface QueueStats {
  workers: WorkerStats[];
  /** From /proc/net/netfilter/nfnetlink_queue of this network namespace, per queue number. */
  kernel: Record<number, { queueTotal: number; queueDropped: number; userDropped: number; idSequence: number }>;
}

/**
 * Each counter name's slot in `HandlerContext.counters`: its index in the handler's list,
 * computed once at load so the per-packet path indexes without a lookup by string.
 */
export function counterSlots<const N extends readonly string[]>(names: N): { readonly [K in N[number]]: number } {
  return Object.freeze(Object.fromEntries(names.map((n, i) => [n, i]))) as { readonly [K in N[number]]: number };
}
