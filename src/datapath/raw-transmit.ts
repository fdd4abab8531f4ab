// Sends packets a handler built itself (the agent's GSO path: the segments it cut from one
// super-packet) as complete IP packets through raw sockets: one sendmmsg per call, so one
// system call per super-packet. Raw IP sockets (IPPROTO_RAW: the header is ours) go through
// the host's stack like the original would have: routing, the rest of mangle/nat/filter
// OUTPUT, conntrack, POSTROUTING, the qdisc. The socket's mark (SO_MARK) carries the original
// packet's mark with labelwall's "done" bit, so the rule that queued the original skips them;
// IP_PKTINFO / IPV6_PKTINFO pin them to the original's output interface.
import {
  AF_INET,
  AF_INET6,
  EAGAIN,
  EINTR,
  IOVEC_SIZE,
  IPPROTO_IP,
  IPPROTO_IPV6,
  IPPROTO_RAW,
  IPV6_HDRINCL,
  IPV6_PKTINFO,
  IP_PKTINFO,
  MMSGHDR_SIZE,
  MSGHDR_CONTROL,
  MSGHDR_CONTROLLEN,
  MSGHDR_IOV,
  MSGHDR_IOVLEN,
  MSGHDR_NAMELEN,
  type NativeBuf,
  SOCK_CLOEXEC,
  SOCK_RAW,
  SOL_SOCKET,
  SO_MARK,
  SO_SNDBUFFORCE,
  SysError,
  closeFd,
  errno,
  libc,
  nativeAlloc,
  setIntOpt,
} from '../sys/libc.js';

/** What a handler sees of the transmitter (datapath/types.ts, HandlerContext.transmit). */
export interface RawTransmit {
  /** Slot i holds packet i of the next send (native memory; write a whole IP packet from byte 0). */
  readonly slots: readonly Buffer[];
  /** Bytes of slot i to send. */
  readonly lens: Uint32Array;
  readonly slotSize: number;
  /**
   * Sends packets 0..count-1 in this order, after every verdict the worker has decided so far
   * (so nothing of a flow overtakes what was queued before it). `dst` is the destination
   * address (4 or 16 bytes), `ifindex` the output interface (0: route freely), `mark` the skb
   * mark they leave with. Returns how many the kernel took; the others failed (a rule that drops
   * them: EPERM, a full qdisc: ENOBUFS) and are skipped: TCP retransmits, as for the original.
   */
  send(count: number, family: 4 | 6, dst: Uint8Array, ifindex: number, mark: number): number;
}

/** Segments of one 64 KiB super-packet at the smallest segment size the agent cuts (see agent/segment-size.ts). */
export const TRANSMIT_SLOTS = 192;
/** A 9000-byte jumbo frame and some room. */
export const TRANSMIT_SLOT_SIZE = 9216;
const SNDBUF = 8 << 20;
// struct sockaddr_in is 16 bytes, sockaddr_in6 28; cmsg: 16-byte header + in_pktinfo (12) or in6_pktinfo (20), 8-aligned.
const NAME_SIZE = 28;
const CMSG_SPACE_V4 = 16 + 16;
const CMSG_SPACE_V6 = 16 + 24;
const CMSG_LEN_V4 = 16 + 12;
const CMSG_LEN_V6 = 16 + 20;

export class RawTransmitter implements RawTransmit {
  readonly slots: Buffer[] = [];
  readonly lens: Uint32Array;
  readonly slotSize: number;
  private readonly count: number;
  private readonly data: NativeBuf;
  private readonly hdrs: NativeBuf;
  private readonly iovs: NativeBuf;
  private readonly name: NativeBuf;
  private readonly cmsg: NativeBuf;
  private readonly fd: [number, number] = [-1, -1];
  private readonly mark: [number, number] = [-1, -1];
  private family: 0 | 4 | 6 = 0;

  /** @param beforeSend called first in every send: the worker flushes its pending verdicts. */
  constructor(
    private readonly beforeSend: () => void,
    count = TRANSMIT_SLOTS,
    slotSize = TRANSMIT_SLOT_SIZE,
  ) {
    this.count = count;
    this.slotSize = slotSize;
    this.lens = new Uint32Array(count);
    this.data = nativeAlloc(count * slotSize);
    this.hdrs = nativeAlloc(count * MMSGHDR_SIZE);
    this.iovs = nativeAlloc(count * IOVEC_SIZE);
    this.name = nativeAlloc(NAME_SIZE);
    this.cmsg = nativeAlloc(CMSG_SPACE_V6);
    for (let i = 0; i < count; i++) {
      const iov = i * IOVEC_SIZE;
      this.iovs.buf.writeBigUInt64LE(this.data.ptr + BigInt(i * slotSize), iov);
      const h = i * MMSGHDR_SIZE;
      this.hdrs.buf.writeBigUInt64LE(this.name.ptr, h);
      this.hdrs.buf.writeBigUInt64LE(this.iovs.ptr + BigInt(iov), h + MSGHDR_IOV);
      this.hdrs.buf.writeBigUInt64LE(1n, h + MSGHDR_IOVLEN);
      this.hdrs.buf.writeBigUInt64LE(this.cmsg.ptr, h + MSGHDR_CONTROL);
      this.slots.push(this.data.buf.subarray(i * slotSize, (i + 1) * slotSize));
    }
  }

  /**
   * Opens the IPv4 raw socket now, so that a missing CAP_NET_RAW stops the start with its reason
   * instead of failing every super-packet later (IPv6's opens on first use: a host may have none).
   */
  open(): void {
    this.socketFor(4);
  }

  /** The raw socket of a family, opened on first use (CAP_NET_RAW; SO_MARK needs CAP_NET_ADMIN). */
  private socketFor(family: 4 | 6): number {
    const k = family === 4 ? 0 : 1;
    if (this.fd[k]! >= 0) return this.fd[k]!;
    const fd = libc().socket(family === 4 ? AF_INET : AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    if (fd < 0) throw new SysError(`socket(${family === 4 ? 'AF_INET' : 'AF_INET6'}, SOCK_RAW, IPPROTO_RAW)`, errno());
    try {
      if (family === 6) setIntOpt(fd, IPPROTO_IPV6, IPV6_HDRINCL, 1, 'IPV6_HDRINCL');
      setIntOpt(fd, SOL_SOCKET, SO_SNDBUFFORCE, SNDBUF, 'SO_SNDBUFFORCE');
    } catch (e) {
      closeFd(fd);
      throw e;
    }
    this.fd[k] = fd;
    return fd;
  }

  /** Writes the destination and the output interface every message of this send points at. */
  private address(family: 4 | 6, dst: Uint8Array, ifindex: number): void {
    const n = this.name.buf;
    const c = this.cmsg.buf;
    n.fill(0);
    c.fill(0);
    if (family === 4) {
      n.writeUInt16LE(AF_INET, 0);
      n.set(dst.subarray(0, 4), 4);
      c.writeBigUInt64LE(BigInt(CMSG_LEN_V4), 0);
      c.writeInt32LE(IPPROTO_IP, 8);
      c.writeInt32LE(IP_PKTINFO, 12);
      c.writeInt32LE(ifindex, 16); // in_pktinfo.ipi_ifindex; spec_dst and addr stay 0
    } else {
      n.writeUInt16LE(AF_INET6, 0);
      n.set(dst.subarray(0, 16), 8);
      // A link-local destination needs its interface as the scope.
      if (dst[0] === 0xfe && (dst[1]! & 0xc0) === 0x80) n.writeUInt32LE(ifindex, 24);
      c.writeBigUInt64LE(BigInt(CMSG_LEN_V6), 0);
      c.writeInt32LE(IPPROTO_IPV6, 8);
      c.writeInt32LE(IPV6_PKTINFO, 12);
      c.writeInt32LE(ifindex, 32); // in6_pktinfo: ipi6_addr (16 bytes, zero: the header's source), ipi6_ifindex
    }
    if (this.family !== family) {
      const nameLen = family === 4 ? 16 : 28;
      const ctlLen = BigInt(ifindex > 0 ? (family === 4 ? CMSG_SPACE_V4 : CMSG_SPACE_V6) : 0);
      for (let i = 0; i < this.count; i++) {
        this.hdrs.buf.writeUInt32LE(nameLen, i * MMSGHDR_SIZE + MSGHDR_NAMELEN);
        this.hdrs.buf.writeBigUInt64LE(ctlLen, i * MMSGHDR_SIZE + MSGHDR_CONTROLLEN);
      }
      this.family = ifindex > 0 ? family : 0; // without an interface, write the lengths again next time
    }
  }

  send(count: number, family: 4 | 6, dst: Uint8Array, ifindex: number, mark: number): number {
    if (count <= 0) return 0;
    if (count > this.count) throw new RangeError(`${count} packets, at most ${this.count} per send`);
    this.beforeSend();
    const fd = this.socketFor(family);
    const k = family === 4 ? 0 : 1;
    if (this.mark[k] !== mark) {
      setIntOpt(fd, SOL_SOCKET, SO_MARK, mark | 0, 'SO_MARK');
      this.mark[k] = mark;
    }
    this.address(family, dst, ifindex);
    const iov = this.iovs.buf;
    for (let i = 0; i < count; i++) iov.writeUInt32LE(this.lens[i]!, i * IOVEC_SIZE + 8); // iov_len's low half (the high half stays 0)
    const c = libc();
    let done = 0;
    let sent = 0;
    let retries = 0;
    while (done < count) {
      const n = c.sendmmsg(fd, this.hdrs.ptr + BigInt(done * MMSGHDR_SIZE), count - done, 0);
      if (n > 0) {
        done += n;
        sent += n;
        continue;
      }
      const e = n < 0 ? errno() : EAGAIN;
      if ((e === EINTR || e === EAGAIN) && ++retries < 8) continue;
      // This packet failed (a DROP rule: EPERM; a full device queue: ENOBUFS): skip it, send the rest.
      done++;
    }
    return sent;
  }

  close(): void {
    for (const k of [0, 1] as const) {
      if (this.fd[k]! >= 0) closeFd(this.fd[k]!);
      this.fd[k] = -1;
    }
    this.data.free();
    this.hdrs.free();
    this.iovs.free();
    this.name.free();
    this.cmsg.free();
  }
}
