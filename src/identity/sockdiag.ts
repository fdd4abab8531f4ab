// sock_diag queries over a NETLINK_SOCK_DIAG socket (socket calls through src/sys/libc).
// Synchronous: the kernel answers a sock_diag request inside send(), so the recv never waits
// for anything but the copy; dumps continue inside recv().
import { AF_NETLINK, SOCK_RAW, SOCK_CLOEXEC, libc, errno, describeErrno, setRecvTimeout } from '../sys/libc.js';
import {
  ALL_STATES,
  IPPROTO_RAW,
  IPPROTO_TCP,
  IPPROTO_UDP,
  INET_DIAG_INFO_EXT,
  NETLINK_SOCK_DIAG,
  buildDiagRequest,
  parseDiagReply,
  type DiagRequest,
  type DiagSocket,
} from './sockdiag-proto.js';

export type { DiagSocket } from './sockdiag-proto.js';

export class SockDiagError extends Error {
  constructor(
    readonly errno: number,
    what: string,
  ) {
    super(`sock_diag ${what}: ${describeErrno(errno)}`);
  }
}

const ENOENT = 2;
const RECV_SIZE = 64 * 1024;

export class SockDiag {
  private fd: number;
  private seq = 1;
  private readonly rbuf = Buffer.alloc(RECV_SIZE);

  constructor() {
    const c = libc();
    const fd = c.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) throw new SockDiagError(errno(), 'socket');
    const sa = Buffer.alloc(12);
    sa.writeUInt16LE(AF_NETLINK, 0);
    if (c.bind(fd, sa, 12) < 0) {
      const e = errno();
      c.close(fd);
      throw new SockDiagError(e, 'bind');
    }
    // Never hang the caller's thread if the kernel does not answer.
    setRecvTimeout(fd, 1000);
    this.fd = fd;
  }

  close(): void {
    if (this.fd >= 0) libc().close(this.fd);
    this.fd = -1;
  }

  /** Runs one request; an exact lookup that finds nothing returns []. */
  query(req: DiagRequest): DiagSocket[] {
    if (this.fd < 0) throw new Error('SockDiag is closed');
    const c = libc();
    const msg = buildDiagRequest(req, this.seq++);
    if (c.send(this.fd, msg, msg.length, 0) < 0) throw new SockDiagError(errno(), 'send');
    const out: DiagSocket[] = [];
    for (;;) {
      const n = c.recv(this.fd, this.rbuf, RECV_SIZE, 0);
      if (n < 0) throw new SockDiagError(errno(), 'recv');
      const r = parseDiagReply(this.rbuf.subarray(0, n));
      if (r.kind === 'error') {
        // ENOENT: an exact lookup found nothing; a dump has no diag handler for the protocol.
        if (r.errno === ENOENT && req.id !== undefined) return out;
        throw new SockDiagError(r.errno, 'reply');
      }
      if (r.kind === 'malformed') throw new Error(`sock_diag reply malformed: ${r.reason}`);
      out.push(...r.sockets);
      // An exact lookup answers with one message and no NLMSG_DONE.
      if (r.done || req.id !== undefined) return out;
    }
  }

  /** Exact lookup of a TCP or UDP socket by its local and remote ends. */
  lookup(proto: 'tcp' | 'udp', family: 4 | 6, src: Uint8Array, sport: number, dst: Uint8Array, dport: number): DiagSocket | undefined {
    const r = this.query({
      family,
      protocol: proto === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP,
      states: ALL_STATES,
      id: { src, sport, dst, dport },
    });
    return r[0];
  }

  /** Exact lookup of a TCP socket with its tcp_info (INET_DIAG_INFO). */
  lookupTcpInfo(family: 4 | 6, src: Uint8Array, sport: number, dst: Uint8Array, dport: number): DiagSocket | undefined {
    const r = this.query({ family, protocol: IPPROTO_TCP, states: ALL_STATES, ext: INET_DIAG_INFO_EXT, id: { src, sport, dst, dport } });
    return r[0];
  }

  /** Every socket of a protocol and family in this network namespace, filtered by state mask. */
  dump(proto: 'tcp' | 'udp' | 'raw', family: 4 | 6, states = ALL_STATES, rawProtocol?: number): DiagSocket[] {
    return this.query({
      family,
      protocol: proto === 'tcp' ? IPPROTO_TCP : proto === 'udp' ? IPPROTO_UDP : IPPROTO_RAW,
      ...(rawProtocol !== undefined ? { rawProtocol } : {}),
      states,
    });
  }
}
