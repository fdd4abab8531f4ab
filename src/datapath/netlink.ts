// Netlink framing (nlmsghdr, nfgenmsg, attributes) on Buffers. Pure: no I/O, no exceptions
// out of the parsers. Host byte order is little-endian (x86_64) for netlink headers;
// nfnetlink attribute payloads are big-endian by convention.

export const NLMSG_HDRLEN = 16;
export const NFGENMSG_LEN = 4;
export const NLA_HDRLEN = 4;

export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
/** Set on an NLMSG_ERROR ack whose original message was cut (NETLINK_CAP_ACK). */
export const NLM_F_CAPPED = 0x100;
export const NLM_F_ACK_TLVS = 0x200;

export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;

export const NFNETLINK_V0 = 0;

export function align4(n: number): number {
  return (n + 3) & ~3;
}

/** nfnetlink message type: subsystem id in the high byte, message in the low byte. */
export function nfnlMsgType(subsys: number, msg: number): number {
  return ((subsys & 0xff) << 8) | (msg & 0xff);
}

/**
 * Appends netlink messages into a caller-owned Buffer. No bounds are grown: the caller sizes
 * the buffer and checks `remaining()` before appending (a write past the end throws a
 * RangeError from Buffer, which is a programming error, not malformed input).
 */
export class NlWriter {
  buf: Buffer;
  off = 0;
  private msgStart = -1;

  constructor(buf: Buffer) {
    this.buf = buf;
  }

  reset(): void {
    this.off = 0;
    this.msgStart = -1;
  }

  remaining(): number {
    return this.buf.length - this.off;
  }

  /** Starts an nfnetlink message: nlmsghdr + nfgenmsg. Returns the message's start offset. */
  beginNf(type: number, flags: number, seq: number, family: number, resId: number): number {
    const b = this.buf;
    const o = this.off;
    this.msgStart = o;
    b.writeUInt32LE(0, o); // length, patched in end()
    b.writeUInt16LE(type & 0xffff, o + 4);
    b.writeUInt16LE(flags & 0xffff, o + 6);
    b.writeUInt32LE(seq >>> 0, o + 8);
    b.writeUInt32LE(0, o + 12); // portid 0: to the kernel
    b[o + 16] = family & 0xff;
    b[o + 17] = NFNETLINK_V0;
    b.writeUInt16BE(resId & 0xffff, o + 18);
    this.off = o + NLMSG_HDRLEN + NFGENMSG_LEN;
    return o;
  }

  /** Finishes the current message: patches nlmsg_len and pads to 4 bytes. */
  end(): void {
    const len = this.off - this.msgStart;
    this.buf.writeUInt32LE(len, this.msgStart);
    this.pad();
    this.msgStart = -1;
  }

  private pad(): void {
    const b = this.buf;
    while (this.off & 3) b[this.off++] = 0;
  }

  attrU32be(type: number, v: number): void {
    const b = this.buf;
    const o = this.off;
    b.writeUInt16LE(8, o);
    b.writeUInt16LE(type, o + 2);
    b.writeUInt32BE(v >>> 0, o + 4);
    this.off = o + 8;
  }

  /** Attribute with raw bytes, padded to 4. */
  attrBytes(type: number, data: Uint8Array, start = 0, end = data.length): void {
    const len = end - start;
    const b = this.buf;
    const o = this.off;
    b.writeUInt16LE(NLA_HDRLEN + len, o);
    b.writeUInt16LE(type, o + 2);
    b.set(start === 0 && end === data.length ? data : data.subarray(start, end), o + 4);
    this.off = o + 4 + len;
    this.pad();
  }

  /** Reserves an attribute of `len` payload bytes; returns the payload offset for the caller to fill. */
  attrReserve(type: number, len: number): number {
    const b = this.buf;
    const o = this.off;
    b.writeUInt16LE(NLA_HDRLEN + len, o);
    b.writeUInt16LE(type, o + 2);
    this.off = o + 4 + len;
    this.pad();
    return o + 4;
  }

  /** Opens a nested attribute; returns a token for nestEnd. */
  nestStart(type: number): number {
    const o = this.off;
    this.buf.writeUInt16LE(0, o);
    this.buf.writeUInt16LE(type | NLA_F_NESTED, o + 2);
    this.off = o + 4;
    return o;
  }

  nestEnd(token: number): void {
    this.buf.writeUInt16LE(this.off - token, token);
  }
}

/** A parsed nlmsghdr: offsets into the source buffer. */
export interface NlMsg {
  type: number;
  flags: number;
  seq: number;
  portid: number;
  /** Offset of the message start in the buffer. */
  start: number;
  /** nlmsg_len as declared (checked to fit in the buffer). */
  len: number;
}

export type NlHeaderResult = { ok: true; msg: NlMsg; next: number } | { ok: false; reason: string };

/**
 * Reads one nlmsghdr at `off`, bounded by `end`. `next` is the aligned offset of the following
 * message. The kernel does not pad the final attribute of a queued packet, so the length is
 * not required to be a multiple of 4.
 */
export function readNlHeader(buf: Uint8Array, off: number, end: number): NlHeaderResult {
  if (end > buf.length) end = buf.length;
  if (off < 0 || end - off < NLMSG_HDRLEN) return { ok: false, reason: 'short nlmsghdr' };
  const len = u32le(buf, off);
  if (len < NLMSG_HDRLEN) return { ok: false, reason: `nlmsg_len ${len} below header size` };
  if (len > end - off) return { ok: false, reason: `nlmsg_len ${len} exceeds ${end - off} bytes available` };
  return {
    ok: true,
    msg: {
      len,
      type: u16le(buf, off + 4),
      flags: u16le(buf, off + 6),
      seq: u32le(buf, off + 8),
      portid: u32le(buf, off + 12),
      start: off,
    },
    next: off + align4(len),
  };
}

/**
 * Attribute table: for attribute type t (masked, < size), `off[t]` is the payload offset and
 * `len[t]` the payload length; `off[t] === -1` means absent. Reused between parses to avoid
 * allocation on the packet path.
 */
export class AttrTable {
  readonly off: Int32Array;
  readonly len: Int32Array;
  constructor(readonly size: number) {
    this.off = new Int32Array(size).fill(-1);
    this.len = new Int32Array(size);
  }
  clear(): void {
    this.off.fill(-1);
  }
  has(t: number): boolean {
    return t < this.size && this.off[t] !== -1;
  }
}

/**
 * Parses attributes in [start, end) into `table` (last one of a type wins, like the kernel's
 * nla_parse). Unknown types beyond the table are skipped. Returns null on success or a reason.
 * A final attribute whose padding runs past `end` is accepted (the kernel omits it).
 */
export function parseAttrs(buf: Uint8Array, start: number, end: number, table: AttrTable): string | null {
  table.clear();
  if (end > buf.length) return 'attributes run past buffer';
  let o = start;
  while (o + NLA_HDRLEN <= end) {
    const len = u16le(buf, o);
    const type = u16le(buf, o + 2) & NLA_TYPE_MASK;
    if (len < NLA_HDRLEN) return `attribute length ${len} below header size at ${o}`;
    if (len > end - o) return `attribute type ${type} length ${len} exceeds message at ${o}`;
    if (type < table.size) {
      table.off[type] = o + NLA_HDRLEN;
      table.len[type] = len - NLA_HDRLEN;
    }
    o += align4(len);
  }
  // Trailing bytes shorter than an attribute header: tolerated only as padding.
  return null;
}

// Byte-wise readers: no allocation on the packet path, work on any Uint8Array view.
export function u16le(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}
export function u32le(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}
export function i32le(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24);
}
export function u32be(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}
export function u16be(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

/** Reads a big-endian u32 attribute payload; undefined if absent or too short. */
export function attrU32be(buf: Uint8Array, table: AttrTable, type: number): number | undefined {
  if (!table.has(type) || table.len[type]! < 4) return undefined;
  return u32be(buf, table.off[type]!);
}

/** Parsed NLMSG_ERROR payload: errno 0 is an ACK. */
export interface NlError {
  /** Positive errno (0 = success ack). */
  errno: number;
  /** Header of the message being acknowledged. */
  origType: number;
  origSeq: number;
}

export type NlErrorResult = { ok: true; err: NlError } | { ok: false; reason: string };

/** Parses the body of an NLMSG_ERROR message at msg.start. */
export function parseNlError(buf: Uint8Array, msg: NlMsg): NlErrorResult {
  // struct nlmsgerr { int error; struct nlmsghdr msg; } — msg may be capped to the header.
  if (msg.len < NLMSG_HDRLEN + 4 + NLMSG_HDRLEN) return { ok: false, reason: 'short NLMSG_ERROR' };
  const e = i32le(buf, msg.start + NLMSG_HDRLEN);
  const o = msg.start + NLMSG_HDRLEN + 4;
  return { ok: true, err: { errno: e < 0 ? -e : e, origType: u16le(buf, o + 4), origSeq: u32le(buf, o + 8) } };
}
