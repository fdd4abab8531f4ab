// One netlink socket bound to one NFQUEUE queue: open, configure with acknowledged requests,
// unbind, close. Used by queue workers; also usable on its own (tests, diagnostics).
import { readFileSync } from 'node:fs';
import { NLMSG_ERROR, NlWriter, parseNlError, readNlHeader } from './netlink.js';
import {
  CONFIG_MSG_MAX,
  type ConfigRequest,
  NFQA_CFG_F_FAIL_OPEN,
  NFQA_CFG_F_GSO,
  NFQA_CFG_F_UID_GID,
  NFQNL_CFG_CMD_BIND,
  NFQNL_CFG_CMD_UNBIND,
  NFQNL_COPY_PACKET,
  NFQNL_MAX_COPY_RANGE,
  writeConfig,
} from './nfqueue-proto.js';
import {
  EAGAIN,
  EINTR,
  NETLINK_CAP_ACK,
  type NativeBuf,
  SOL_NETLINK,
  SOL_SOCKET,
  SO_RCVBUFFORCE,
  SO_SNDBUFFORCE,
  SysError,
  closeFd,
  describeErrno,
  nativeAlloc,
  netlinkPortId,
  openNetfilterSocket,
  recvPtr,
  sendPtr,
  setIntOpt,
  setRecvTimeout,
} from '../sys/libc.js';

export interface QueueConfig {
  queueNum: number;
  copyRange: number;
  maxLen: number;
  failOpen: boolean;
  gso: boolean;
  uidGid: boolean;
  rcvBufBytes: number;
  sndBufBytes: number;
  recvTimeoutMs: number;
}

export class NfqueueError extends Error {
  constructor(
    message: string,
    readonly errno: number,
  ) {
    super(message);
  }
}

/** A row of /proc/net/netfilter/nfnetlink_queue (this network namespace). */
export interface KernelQueueRow {
  queueNum: number;
  portId: number;
  queueTotal: number;
  copyMode: number;
  copyRange: number;
  queueDropped: number;
  userDropped: number;
  idSequence: number;
}

export function readKernelQueues(): KernelQueueRow[] {
  let text: string;
  try {
    text = readFileSync('/proc/net/netfilter/nfnetlink_queue', 'utf8');
  } catch {
    return [];
  }
  const rows: KernelQueueRow[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length < 8 || f.some((x) => !Number.isFinite(x))) continue;
    rows.push({
      queueNum: f[0]!,
      portId: f[1]!,
      queueTotal: f[2]!,
      copyMode: f[3]!,
      copyRange: f[4]!,
      queueDropped: f[5]!,
      userDropped: f[6]!,
      idSequence: f[7]!,
    });
  }
  return rows;
}

export class NfqSocket {
  readonly fd: number;
  readonly portId: number;
  private readonly ctl: NativeBuf;
  private readonly ctlWriter: NlWriter;
  private readonly ackBuf: NativeBuf;
  private seq = 1;
  private bound = false;

  private constructor(fd: number) {
    this.fd = fd;
    this.portId = netlinkPortId(fd);
    this.ctl = nativeAlloc(256);
    this.ctlWriter = new NlWriter(this.ctl.buf);
    this.ackBuf = nativeAlloc(70000);
  }

  /** Opens a socket, sizes its buffers and binds it to cfg.queueNum. Throws NfqueueError. */
  static open(cfg: QueueConfig): NfqSocket {
    let fd: number;
    try {
      fd = openNetfilterSocket();
    } catch (e) {
      const errno = e instanceof SysError ? e.errno : 0;
      throw new NfqueueError(`cannot open netfilter netlink socket: ${(e as Error).message}`, errno);
    }
    const s = new NfqSocket(fd);
    try {
      setIntOpt(fd, SOL_SOCKET, SO_RCVBUFFORCE, cfg.rcvBufBytes, 'SO_RCVBUFFORCE');
      setIntOpt(fd, SOL_SOCKET, SO_SNDBUFFORCE, cfg.sndBufBytes, 'SO_SNDBUFFORCE');
      // Error acks then quote only the header of our message, not a 64 KiB payload verdict.
      setIntOpt(fd, SOL_NETLINK, NETLINK_CAP_ACK, 1, 'NETLINK_CAP_ACK');
      setRecvTimeout(fd, cfg.recvTimeoutMs);
      let flags = 0;
      if (cfg.failOpen) flags |= NFQA_CFG_F_FAIL_OPEN;
      if (cfg.gso) flags |= NFQA_CFG_F_GSO;
      if (cfg.uidGid) flags |= NFQA_CFG_F_UID_GID;
      // One message: bind, copy mode, queue length and flags take effect together, so no
      // packet is queued in the default copy-none mode between steps.
      s.request(
        cfg.queueNum,
        {
          cmd: NFQNL_CFG_CMD_BIND,
          copyMode: NFQNL_COPY_PACKET,
          copyRange: Math.min(cfg.copyRange, NFQNL_MAX_COPY_RANGE),
          maxLen: cfg.maxLen,
          flags,
          mask: NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO | NFQA_CFG_F_UID_GID,
        },
        'bind',
      );
      s.bound = true;
    } catch (e) {
      s.close();
      if (e instanceof NfqueueError) throw e;
      const errno = e instanceof SysError ? e.errno : 0;
      const hint = errno === EPERM ? ' — NFQUEUE needs CAP_NET_ADMIN in this network namespace (run as root)' : '';
      throw new NfqueueError(`${(e as Error).message}${hint}`, errno);
    }
    return s;
  }

  /** Sends one config request with NLM_F_ACK and waits for the kernel's answer. */
  request(queueNum: number, req: ConfigRequest, what: string, timeoutMs = 3000): void {
    const w = this.ctlWriter;
    w.reset();
    const seq = this.seq++;
    writeConfig(w, queueNum, req, seq, true);
    if (w.off > CONFIG_MSG_MAX) throw new Error('config message overflow');
    const n = sendPtr(this.fd, this.ctl.ptr, w.off);
    if (n < 0) throw new NfqueueError(`queue ${queueNum} ${what}: send: ${describeErrno(-n)}`, -n);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = recvPtr(this.fd, this.ackBuf.ptr, this.ackBuf.buf.length, 0);
      if (r < 0) {
        if ((-r === EAGAIN || -r === EINTR) && Date.now() < deadline) continue;
        throw new NfqueueError(`queue ${queueNum} ${what}: no answer from the kernel: ${describeErrno(-r)}`, -r);
      }
      // Packets may already be arriving (e.g. on a later request); skip anything but our ack.
      let off = 0;
      while (off < r) {
        const h = readNlHeader(this.ackBuf.buf, off, r);
        if (!h.ok) break;
        off = h.next;
        if (h.msg.type !== NLMSG_ERROR) continue;
        const pe = parseNlError(this.ackBuf.buf, h.msg);
        if (!pe.ok || pe.err.origSeq !== seq) continue;
        if (pe.err.errno === 0) return;
        throw new NfqueueError(explainConfigError(queueNum, what, pe.err.errno, this.portId), pe.err.errno);
      }
    }
  }

  /** Unbinds the queue (the kernel drops packets still queued) — without waiting for the ack. */
  unbindNoWait(queueNum: number): void {
    if (!this.bound) return;
    const w = this.ctlWriter;
    w.reset();
    writeConfig(w, queueNum, { cmd: NFQNL_CFG_CMD_UNBIND }, this.seq++, false);
    sendPtr(this.fd, this.ctl.ptr, w.off);
    this.bound = false;
  }

  close(): void {
    closeFd(this.fd);
    this.ctl.free();
    this.ackBuf.free();
  }
}

const EPERM = 1;
function explainConfigError(queueNum: number, what: string, errno: number, ourPort: number): string {
  const base = `queue ${queueNum} ${what} refused by the kernel: ${describeErrno(errno)}`;
  if (errno === EPERM) {
    const row = readKernelQueues().find((r) => r.queueNum === queueNum);
    if (row && row.portId !== ourPort)
      return `${base} — queue ${queueNum} is already bound by another netlink socket (port id ${row.portId}); is another labelwall or NFQUEUE program running?`;
    return `${base} — binding a queue needs CAP_NET_ADMIN in this network namespace (run as root)`;
  }
  if (errno === 95 /* EOPNOTSUPP */) return `${base} — this kernel does not support a requested queue flag`;
  return base;
}
