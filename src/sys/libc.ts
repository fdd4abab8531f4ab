// Every libc call labelwall makes, through koffi (FFI), for x86_64 Linux only: struct layouts
// and syscall numbers below are the x86_64 ABI. One place, so a binding is declared once. Memory handed to the kernel is allocated natively (koffi.alloc) and exposed to
// JS as Buffers over that memory (koffi.view), so addresses are stable and nothing is copied.
import koffi from 'koffi';

export const AF_UNIX = 1;
export const AF_NETLINK = 16;
export const NETLINK_NETFILTER = 12;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_RCVTIMEO = 20; // SO_RCVTIMEO_OLD: struct timeval with 64-bit fields on x86_64
export const SO_SNDBUFFORCE = 32;
export const SO_RCVBUFFORCE = 33;
export const SO_MARK = 36;
export const IPPROTO_IP = 0;
export const IPPROTO_IPV6 = 41;
export const IPPROTO_RAW = 255;
export const IP_PKTINFO = 8;
export const IPV6_PKTINFO = 50;
export const IPV6_HDRINCL = 36;
export const SOL_NETLINK = 270;
export const NETLINK_NO_ENOBUFS = 5;
export const NETLINK_CAP_ACK = 10;
export const NETLINK_EXT_ACK = 11;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const MSG_WAITFORONE = 0x10000;
export const MSG_NOSIGNAL = 0x4000;

export const EINTR = 4;
export const EAGAIN = 11;
export const ENOBUFS = 105;

// struct iovec { void *iov_base; size_t iov_len; }
export const IOVEC_SIZE = 16;
// struct msghdr { void *name; socklen_t namelen; (pad) struct iovec *iov; size_t iovlen;
//                 void *control; size_t controllen; int flags; (pad) }
export const MSGHDR_SIZE = 56;
export const MSGHDR_IOV = 16;
export const MSGHDR_IOVLEN = 24;
export const MSGHDR_FLAGS = 48;
// struct mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; (pad) }
export const MMSGHDR_SIZE = 64;
export const MMSGHDR_LEN = 56;
export const MSGHDR_NAMELEN = 8;
export const MSGHDR_CONTROL = 32;
export const MSGHDR_CONTROLLEN = 40;

/** A native pointer as koffi represents it. */
export type Ptr = bigint;

interface LibcFns {
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Ptr | Buffer, len: number): number;
  setsockopt(fd: number, level: number, name: number, val: Ptr | Buffer, len: number): number;
  getsockopt(fd: number, level: number, name: number, val: Ptr | Buffer, len: Ptr | Buffer): number;
  getsockname(fd: number, addr: Buffer, len: Buffer): number;
  recv(fd: number, buf: Ptr | Buffer, len: number, flags: number): number;
  recvmmsg(fd: number, vec: Ptr, vlen: number, flags: number, timeout: null): number;
  send(fd: number, buf: Ptr | Buffer, len: number, flags: number): number;
  sendmmsg(fd: number, vec: Ptr, vlen: number, flags: number): number;
  sendto(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrLen: number): number;
  close(fd: number): number;
  strerror(errnum: number): string;
  /** syscall(nr, cmd, attr, size): the bpf(2) form (identity/bpf.ts). */
  syscall(nr: number, cmd: number, attr: Ptr, size: number): number;
  mount(src: string, target: string, fstype: string, flags: number, data: null): number;
  umount2(target: string, flags: number): number;
  setpriority(which: number, who: number, prio: number): number;
  flock(fd: number, op: number): number;
}

let fns: LibcFns | null = null;

export function libc(): LibcFns {
  if (fns !== null) return fns;
  const lib = koffi.load('libc.so.6');
  fns = {
    socket: lib.func('int socket(int, int, int)'),
    bind: lib.func('int bind(int, void *, uint32_t)'),
    setsockopt: lib.func('int setsockopt(int, int, int, void *, uint32_t)'),
    getsockopt: lib.func('int getsockopt(int, int, int, void *, void *)'),
    getsockname: lib.func('int getsockname(int, void *, void *)'),
    recv: lib.func('intptr_t recv(int, void *, size_t, int)'),
    recvmmsg: lib.func('int recvmmsg(int, void *, unsigned int, int, void *)'),
    send: lib.func('intptr_t send(int, void *, size_t, int)'),
    sendmmsg: lib.func('int sendmmsg(int, void *, unsigned int, int)'),
    sendto: lib.func('intptr_t sendto(int, void *, size_t, int, void *, uint32_t)'),
    close: lib.func('int close(int)'),
    strerror: lib.func('const char *strerror(int)'),
    syscall: lib.func('long syscall(long, int, void *, uint32_t)'),
    mount: lib.func('int mount(const char *, const char *, const char *, unsigned long, void *)'),
    umount2: lib.func('int umount2(const char *, int)'),
    setpriority: lib.func('int setpriority(int, uint32_t, int)'),
    flock: lib.func('int flock(int, int)'),
  } as LibcFns;
  return fns;
}

export function errno(): number {
  return koffi.errno();
}

export function errnoName(e: number): string {
  for (const [k, v] of Object.entries(koffi.os.errno)) if (v === e) return k;
  return `errno ${e}`;
}

export function describeErrno(e: number): string {
  return `${errnoName(e)} (${libc().strerror(e)})`;
}

/** Native memory with a Buffer view over it; never moved, freed explicitly. */
export interface NativeBuf {
  ptr: Ptr;
  buf: Buffer;
  free(): void;
}

export function nativeAlloc(size: number): NativeBuf {
  const ptr = koffi.alloc('uint8_t', size) as Ptr;
  const buf = Buffer.from(koffi.view(ptr, size));
  buf.fill(0);
  let freed = false;
  return {
    ptr,
    buf,
    free(): void {
      if (!freed) koffi.free(ptr);
      freed = true;
    },
  };
}

export class SysError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super(`${call}: ${describeErrno(errno)}`);
  }
}

function check(call: string, rc: number): number {
  if (rc < 0) throw new SysError(call, errno());
  return rc;
}

/** Opens a NETLINK_NETFILTER socket bound with a kernel-chosen port id. */
export function openNetfilterSocket(): number {
  const c = libc();
  const fd = check('socket(AF_NETLINK)', c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER));
  // struct sockaddr_nl { sa_family_t nl_family; u16 pad; u32 nl_pid; u32 nl_groups; }
  const sa = Buffer.alloc(12);
  sa.writeUInt16LE(AF_NETLINK, 0);
  if (c.bind(fd, sa, 12) < 0) {
    const e = errno();
    c.close(fd);
    throw new SysError('bind(AF_NETLINK)', e);
  }
  return fd;
}

/** The netlink port id the kernel assigned to a bound socket. */
export function netlinkPortId(fd: number): number {
  const sa = Buffer.alloc(12);
  const l = Buffer.alloc(4);
  l.writeUInt32LE(12, 0);
  check('getsockname', libc().getsockname(fd, sa, l));
  return sa.readUInt32LE(4);
}

export function setIntOpt(fd: number, level: number, name: number, value: number, what: string): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value, 0);
  check(`setsockopt(${what})`, libc().setsockopt(fd, level, name, b, 4));
}

export function setRecvTimeout(fd: number, ms: number): void {
  // struct timeval { long tv_sec; long tv_usec; } on x86_64
  const b = Buffer.alloc(16);
  b.writeBigInt64LE(BigInt(Math.floor(ms / 1000)), 0);
  b.writeBigInt64LE(BigInt((ms % 1000) * 1000), 8);
  check('setsockopt(SO_RCVTIMEO)', libc().setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, b, 16));
}

/**
 * A recvmmsg vector of `count` slots, each one iovec over its own `slotSize` bytes of one
 * native block. `bufs[i]` views slot i; after a receive, `msgLen(i)` and `msgFlags(i)` tell
 * what arrived.
 */
export class RecvVector {
  readonly count: number;
  readonly slotSize: number;
  readonly bufs: Buffer[];
  private readonly data: NativeBuf;
  private readonly hdrs: NativeBuf;
  private readonly iovs: NativeBuf;

  constructor(count: number, slotSize: number) {
    this.count = count;
    this.slotSize = slotSize;
    this.data = nativeAlloc(count * slotSize);
    this.hdrs = nativeAlloc(count * MMSGHDR_SIZE);
    this.iovs = nativeAlloc(count * IOVEC_SIZE);
    this.bufs = [];
    for (let i = 0; i < count; i++) {
      const iov = i * IOVEC_SIZE;
      this.iovs.buf.writeBigUInt64LE(this.data.ptr + BigInt(i * slotSize), iov);
      this.iovs.buf.writeBigUInt64LE(BigInt(slotSize), iov + 8);
      const h = i * MMSGHDR_SIZE;
      this.hdrs.buf.writeBigUInt64LE(this.iovs.ptr + BigInt(iov), h + MSGHDR_IOV);
      this.hdrs.buf.writeBigUInt64LE(1n, h + MSGHDR_IOVLEN);
      this.bufs.push(this.data.buf.subarray(i * slotSize, (i + 1) * slotSize));
    }
  }

  /** recvmmsg(fd, vec, count, flags): returns the message count, or -errno. */
  recv(fd: number, flags: number): number {
    const n = libc().recvmmsg(fd, this.hdrs.ptr, this.count, flags, null);
    return n < 0 ? -errno() : n;
  }

  msgLen(i: number): number {
    return this.hdrs.buf.readUInt32LE(i * MMSGHDR_SIZE + MMSGHDR_LEN);
  }

  msgFlags(i: number): number {
    return this.hdrs.buf.readInt32LE(i * MMSGHDR_SIZE + MSGHDR_FLAGS);
  }

  free(): void {
    this.data.free();
    this.hdrs.free();
    this.iovs.free();
  }
}

/** send(fd, buf, len, 0): bytes sent or -errno. */
export function sendPtr(fd: number, ptr: Ptr, len: number): number {
  const n = libc().send(fd, ptr, len, 0);
  return n < 0 ? -errno() : n;
}

/**
 * Sends one datagram on a new AF_UNIX SOCK_DGRAM socket to `addr` (a struct sockaddr_un of
 * `addr.length` bytes) and closes it; Node has no AF_UNIX datagram sockets (sd_notify needs one).
 * Throws SysError.
 */
export function sendUnixDatagram(addr: Buffer, data: Buffer): void {
  const c = libc();
  const fd = check('socket(AF_UNIX, SOCK_DGRAM)', c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  try {
    check('sendto(AF_UNIX)', c.sendto(fd, data, data.length, MSG_NOSIGNAL, addr, addr.length));
  } finally {
    c.close(fd);
  }
}

/** recv(fd, buf, len, flags) into a native buffer: bytes or -errno. */
export function recvPtr(fd: number, ptr: Ptr, len: number, flags: number): number {
  const n = libc().recv(fd, ptr, len, flags);
  return n < 0 ? -errno() : n;
}

export function closeFd(fd: number): void {
  libc().close(fd);
}
