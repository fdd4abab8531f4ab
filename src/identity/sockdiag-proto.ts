// NETLINK_SOCK_DIAG / inet_diag message building and parsing (pure, no I/O).
// Layouts: include/uapi/linux/inet_diag.h, sock_diag.h, netlink.h (all little-endian host
// fields except ports and addresses, which are network order).

export const NETLINK_SOCK_DIAG = 4;
export const SOCK_DIAG_BY_FAMILY = 20;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_DUMP = 0x300;

export const AF_INET = 2;
export const AF_INET6 = 10;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_RAW = 255;

/** TCP states (include/net/tcp_states.h); UDP sockets report 7 (CLOSE) or 1 (connected). */
export const TCP_STATES = [
  '',
  'ESTABLISHED',
  'SYN_SENT',
  'SYN_RECV',
  'FIN_WAIT1',
  'FIN_WAIT2',
  'TIME_WAIT',
  'CLOSE',
  'CLOSE_WAIT',
  'LAST_ACK',
  'LISTEN',
  'CLOSING',
  'NEW_SYN_RECV',
] as const;
export const ALL_STATES = 0xffffffff;

export const NLMSG_HDR_LEN = 16;
export const INET_DIAG_REQ_V2_LEN = 56;
export const INET_DIAG_MSG_LEN = 72;
/** INET_DIAG_NOCOOKIE: skip the kernel's cookie check on exact lookups. */
const NOCOOKIE = 0xffffffff;

export interface DiagRequest {
  family: 4 | 6;
  /** IPPROTO_TCP, IPPROTO_UDP, or IPPROTO_RAW (then rawProtocol selects e.g. ICMP). */
  protocol: number;
  rawProtocol?: number;
  /** Bitmask of 1 << state; ALL_STATES for any. */
  states: number;
  /** idiag_ext: bits 1 << (INET_DIAG_* - 1) of the extensions to add (INET_DIAG_INFO_EXT: tcp_info). */
  ext?: number;
  /** Exact lookup when given; a dump otherwise. Addresses are 4 or 16 bytes. */
  id?: { src: Uint8Array; sport: number; dst: Uint8Array; dport: number; ifindex?: number };
}

export interface DiagSocket {
  family: 4 | 6;
  state: number;
  src: Uint8Array;
  sport: number;
  dst: Uint8Array;
  dport: number;
  ifindex: number;
  /** Socket cookie (64-bit, as a bigint). */
  cookie: bigint;
  uid: number;
  inode: number;
  /** With INET_DIAG_INFO_EXT, for a TCP socket: the tcp_info fields labelwall uses. */
  tcpInfo?: TcpInfo;
}

/** struct tcp_info (include/uapi/linux/tcp.h), the fields read here. */
export interface TcpInfo {
  /** tcpi_options: TCPI_OPT_* bits. */
  options: number;
  /** tcpi_snd_mss: the sender's current MSS (tp->mss_cache). */
  sndMss: number;
  /** tcpi_pmtu: the path MTU the socket uses. */
  pmtu: number;
}

export const INET_DIAG_INFO = 2;
/** idiag_ext bit asking for INET_DIAG_INFO (struct tcp_info for TCP). */
export const INET_DIAG_INFO_EXT = 1 << (INET_DIAG_INFO - 1);
export const TCPI_OPT_TIMESTAMPS = 1;
/** tcp_info bytes up to and including tcpi_pmtu. */
const TCP_INFO_PMTU_END = 64;

export type DiagReply =
  | { kind: 'sockets'; sockets: DiagSocket[]; done: boolean }
  | { kind: 'error'; errno: number }
  | { kind: 'malformed'; reason: string };

/** Builds one SOCK_DIAG_BY_FAMILY request message (nlmsghdr + inet_diag_req_v2). */
export function buildDiagRequest(req: DiagRequest, seq: number): Buffer {
  const b = Buffer.alloc(NLMSG_HDR_LEN + INET_DIAG_REQ_V2_LEN);
  b.writeUInt32LE(b.length, 0);
  b.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
  b.writeUInt16LE(NLM_F_REQUEST | (req.id === undefined ? NLM_F_DUMP : 0), 6);
  b.writeUInt32LE(seq >>> 0, 8);
  b.writeUInt32LE(0, 12);
  const o = NLMSG_HDR_LEN;
  b[o] = req.family === 4 ? AF_INET : AF_INET6;
  b[o + 1] = req.protocol;
  b[o + 2] = req.ext ?? 0; // idiag_ext
  b[o + 3] = req.rawProtocol ?? 0; // pad, or sdiag_raw_protocol for raw_diag
  b.writeUInt32LE(req.states >>> 0, o + 4);
  const id = o + 8;
  if (req.id !== undefined) {
    b.writeUInt16BE(req.id.sport, id);
    b.writeUInt16BE(req.id.dport, id + 2);
    b.set(req.id.src, id + 4);
    b.set(req.id.dst, id + 20);
    b.writeUInt32LE(req.id.ifindex ?? 0, id + 36);
  }
  b.writeUInt32LE(NOCOOKIE, id + 40);
  b.writeUInt32LE(NOCOOKIE, id + 44);
  return b;
}

/** Parses one datagram of replies (possibly several netlink messages). Never throws. */
export function parseDiagReply(buf: Uint8Array): DiagReply {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const sockets: DiagSocket[] = [];
  let off = 0;
  while (off + NLMSG_HDR_LEN <= b.length) {
    const len = b.readUInt32LE(off);
    const type = b.readUInt16LE(off + 4);
    if (len < NLMSG_HDR_LEN || off + len > b.length)
      return { kind: 'malformed', reason: `netlink message length ${len} at ${off} overruns ${b.length}` };
    const body = off + NLMSG_HDR_LEN;
    if (type === NLMSG_DONE) {
      // A dump that failed (e.g. no diag handler for the protocol) carries -errno in DONE.
      if (len >= NLMSG_HDR_LEN + 4 && b.readInt32LE(body) < 0) return { kind: 'error', errno: -b.readInt32LE(body) };
      return { kind: 'sockets', sockets, done: true };
    }
    if (type === NLMSG_ERROR) {
      if (len < NLMSG_HDR_LEN + 4) return { kind: 'malformed', reason: 'short NLMSG_ERROR' };
      const err = -b.readInt32LE(body);
      if (err === 0) return { kind: 'sockets', sockets, done: true }; // an ACK
      return { kind: 'error', errno: err };
    }
    if (type === SOCK_DIAG_BY_FAMILY) {
      if (len < NLMSG_HDR_LEN + INET_DIAG_MSG_LEN)
        return { kind: 'malformed', reason: `short inet_diag_msg (${len - NLMSG_HDR_LEN} bytes)` };
      const fam = b[body];
      const alen = fam === AF_INET ? 4 : 16;
      const id = body + 4;
      sockets.push({
        family: fam === AF_INET ? 4 : 6,
        state: b[body + 1]!,
        sport: b.readUInt16BE(id),
        dport: b.readUInt16BE(id + 2),
        src: Uint8Array.from(b.subarray(id + 4, id + 4 + alen)),
        dst: Uint8Array.from(b.subarray(id + 20, id + 20 + alen)),
        ifindex: b.readUInt32LE(id + 36),
        cookie: (BigInt(b.readUInt32LE(id + 44)) << 32n) | BigInt(b.readUInt32LE(id + 40)),
        uid: b.readUInt32LE(body + 64),
        inode: b.readUInt32LE(body + 68),
        ...tcpInfoAttr(b, body + INET_DIAG_MSG_LEN, off + len),
      });
    }
    off += (len + 3) & ~3;
  }
  return { kind: 'sockets', sockets, done: false };
}

/** The INET_DIAG_INFO attribute among those in b[from, end), parsed; {} when absent or short. */
function tcpInfoAttr(b: Buffer, from: number, end: number): { tcpInfo?: TcpInfo } {
  for (let a = from; a + 4 <= end; ) {
    const alen = b.readUInt16LE(a);
    const type = b.readUInt16LE(a + 2) & 0x3fff; // without NLA_F_NESTED / NLA_F_NET_BYTEORDER
    if (alen < 4 || a + alen > end) return {};
    if (type === INET_DIAG_INFO && alen - 4 >= TCP_INFO_PMTU_END) {
      const v = a + 4;
      return { tcpInfo: { options: b[v + 5]!, sndMss: b.readUInt32LE(v + 16), pmtu: b.readUInt32LE(v + 60) } };
    }
    a += (alen + 3) & ~3;
  }
  return {};
}
