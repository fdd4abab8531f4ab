// nfnetlink_queue protocol: pure builders for config and verdict messages, and the parser of
// queued-packet messages. Constants follow include/uapi/linux/netfilter/nfnetlink_queue.h.
import {
  AttrTable,
  NLMSG_HDRLEN,
  NFGENMSG_LEN,
  NLA_HDRLEN,
  NLM_F_ACK,
  NLM_F_REQUEST,
  type NlMsg,
  type NlWriter,
  align4,
  nfnlMsgType,
  parseAttrs,
  u16be,
  u32be,
} from './netlink.js';
import type { QueuedPacket } from './types.js';

export const NFNL_SUBSYS_QUEUE = 3;

export const NFQNL_MSG_PACKET = 0;
export const NFQNL_MSG_VERDICT = 1;
export const NFQNL_MSG_CONFIG = 2;
export const NFQNL_MSG_VERDICT_BATCH = 3;

export const NFQA_PACKET_HDR = 1;
export const NFQA_VERDICT_HDR = 2;
export const NFQA_MARK = 3;
export const NFQA_TIMESTAMP = 4;
export const NFQA_IFINDEX_INDEV = 5;
export const NFQA_IFINDEX_OUTDEV = 6;
export const NFQA_IFINDEX_PHYSINDEV = 7;
export const NFQA_IFINDEX_PHYSOUTDEV = 8;
export const NFQA_HWADDR = 9;
export const NFQA_PAYLOAD = 10;
export const NFQA_CT = 11;
export const NFQA_CT_INFO = 12;
export const NFQA_CAP_LEN = 13;
export const NFQA_SKB_INFO = 14;
export const NFQA_EXP = 15;
export const NFQA_UID = 16;
export const NFQA_GID = 17;
export const NFQA_SECCTX = 18;
export const NFQA_VLAN = 19;
export const NFQA_L2HDR = 20;
export const NFQA_PRIORITY = 21;
export const NFQA_MAX = 21;

export const NFQNL_CFG_CMD_NONE = 0;
export const NFQNL_CFG_CMD_BIND = 1;
export const NFQNL_CFG_CMD_UNBIND = 2;
/** Obsolete: the kernel has answered PF_BIND/PF_UNBIND with success and done nothing since 3.8. */
export const NFQNL_CFG_CMD_PF_BIND = 3;
export const NFQNL_CFG_CMD_PF_UNBIND = 4;

export const NFQNL_COPY_NONE = 0;
export const NFQNL_COPY_META = 1;
export const NFQNL_COPY_PACKET = 2;

export const NFQA_CFG_CMD = 1;
export const NFQA_CFG_PARAMS = 2;
export const NFQA_CFG_QUEUE_MAXLEN = 3;
export const NFQA_CFG_MASK = 4;
export const NFQA_CFG_FLAGS = 5;

export const NFQA_CFG_F_FAIL_OPEN = 1 << 0;
export const NFQA_CFG_F_CONNTRACK = 1 << 1;
export const NFQA_CFG_F_GSO = 1 << 2;
export const NFQA_CFG_F_UID_GID = 1 << 3;
export const NFQA_CFG_F_SECCTX = 1 << 4;

export const NFQA_SKB_CSUMNOTREADY = 1 << 0;
export const NFQA_SKB_GSO = 1 << 1;
export const NFQA_SKB_CSUM_NOTVERIFIED = 1 << 2;

export const NF_DROP = 0;
export const NF_ACCEPT = 1;
export const NF_STOLEN = 2;
export const NF_QUEUE = 3;
export const NF_REPEAT = 4;

/** The kernel's limit for one attribute (16-bit nla_len incl. header): largest payload it can carry. */
export const NFQNL_MAX_COPY_RANGE = 0xffff - NLA_HDRLEN;
/** A replacement packet may not exceed 65,535 bytes (IP total length); nla_len caps it lower. */
export const MAX_VERDICT_PAYLOAD = NFQNL_MAX_COPY_RANGE;

const T_CONFIG = nfnlMsgType(NFNL_SUBSYS_QUEUE, NFQNL_MSG_CONFIG);
const T_VERDICT = nfnlMsgType(NFNL_SUBSYS_QUEUE, NFQNL_MSG_VERDICT);
const T_VERDICT_BATCH = nfnlMsgType(NFNL_SUBSYS_QUEUE, NFQNL_MSG_VERDICT_BATCH);
export const T_PACKET = nfnlMsgType(NFNL_SUBSYS_QUEUE, NFQNL_MSG_PACKET);

const HDR = NLMSG_HDRLEN + NFGENMSG_LEN;

export interface ConfigRequest {
  /** NFQNL_CFG_CMD_* (omit for a pure parameter change). */
  cmd?: number;
  copyMode?: number;
  /** Bytes of each packet to copy; 0 or more than NFQNL_MAX_COPY_RANGE means the maximum. */
  copyRange?: number;
  maxLen?: number;
  /** NFQA_CFG_F_* values and the mask of flags being changed (the kernel requires both). */
  flags?: number;
  mask?: number;
}

/** Upper bound of a config message's size. */
export const CONFIG_MSG_MAX = HDR + 8 + 12 + 8 + 8 + 8;

/** Appends one NFQNL_MSG_CONFIG message. With `ack`, the kernel answers with NLMSG_ERROR (errno 0 = ok). */
export function writeConfig(w: NlWriter, queueNum: number, req: ConfigRequest, seq: number, ack: boolean): void {
  w.beginNf(T_CONFIG, NLM_F_REQUEST | (ack ? NLM_F_ACK : 0), seq, 0, queueNum);
  if (req.cmd !== undefined) {
    // struct nfqnl_msg_config_cmd { u8 command; u8 _pad; __be16 pf; }
    const o = w.attrReserve(NFQA_CFG_CMD, 4);
    w.buf[o] = req.cmd;
    w.buf[o + 1] = 0;
    w.buf.writeUInt16BE(0, o + 2);
  }
  if (req.copyMode !== undefined) {
    // struct nfqnl_msg_config_params { __be32 copy_range; u8 copy_mode; } __packed (5 bytes)
    const o = w.attrReserve(NFQA_CFG_PARAMS, 5);
    w.buf.writeUInt32BE((req.copyRange ?? 0) >>> 0, o);
    w.buf[o + 4] = req.copyMode;
  }
  if (req.maxLen !== undefined) w.attrU32be(NFQA_CFG_QUEUE_MAXLEN, req.maxLen);
  if (req.flags !== undefined) {
    w.attrU32be(NFQA_CFG_MASK, req.mask ?? req.flags);
    w.attrU32be(NFQA_CFG_FLAGS, req.flags);
  }
  w.end();
}

/** Size of a verdict message with the given options, as appended by writeVerdict. */
export function verdictMsgSize(hasMark: boolean, payloadLen: number): number {
  return HDR + 12 + (hasMark ? 8 : 0) + (payloadLen >= 0 ? align4(NLA_HDRLEN + payloadLen) : 0);
}

/**
 * Appends one NFQNL_MSG_VERDICT. `mark` < 0 means no mark attribute; `payload` replaces the
 * packet (complete IP packet with correct checksums; at most MAX_VERDICT_PAYLOAD bytes —
 * the caller checks: queue-core.ts validates every decision).
 */
export function writeVerdict(
  w: NlWriter,
  queueNum: number,
  id: number,
  verdict: number,
  mark: number,
  payload: Uint8Array | null,
  payloadLen = payload === null ? 0 : payload.length,
): void {
  w.beginNf(T_VERDICT, NLM_F_REQUEST, 0, 0, queueNum);
  const o = w.attrReserve(NFQA_VERDICT_HDR, 8);
  w.buf.writeUInt32BE(verdict >>> 0, o);
  w.buf.writeUInt32BE(id >>> 0, o + 4);
  if (mark >= 0) w.attrU32be(NFQA_MARK, mark);
  if (payload !== null) w.attrBytes(NFQA_PAYLOAD, payload, 0, payloadLen);
  w.end();
}

export const VERDICT_BATCH_MSG_SIZE = HDR + 12 + 8;

/**
 * Appends one NFQNL_MSG_VERDICT_BATCH: the kernel applies `verdict` (and `mark` if ≥ 0) to
 * every packet still queued whose id is not after `maxId` (serial-number order). It carries
 * no packet bytes.
 */
export function writeVerdictBatch(w: NlWriter, queueNum: number, maxId: number, verdict: number, mark: number): void {
  w.beginNf(T_VERDICT_BATCH, NLM_F_REQUEST, 0, 0, queueNum);
  const o = w.attrReserve(NFQA_VERDICT_HDR, 8);
  w.buf.writeUInt32BE(verdict >>> 0, o);
  w.buf.writeUInt32BE(maxId >>> 0, o + 4);
  if (mark >= 0) w.attrU32be(NFQA_MARK, mark);
  w.end();
}

/** A queued packet as parsed from NFQNL_MSG_PACKET. Reused between parses (see parsePacket). */
/** A packet view for parsePacket to fill (reused for every message). */
export function newQueuedPacket(): QueuedPacket {
  return {
    id: 0,
    family: 0,
    queueNum: 0,
    hwProtocol: 0,
    hook: 0,
    mark: 0,
    indev: 0,
    outdev: 0,
    physindev: 0,
    physoutdev: 0,
    payload: EMPTY,
    capLen: 0,
    skbInfo: 0,
    gso: false,
    csumNotReady: false,
    uid: -1,
    gid: -1,
  };
}
const EMPTY = Buffer.alloc(0);

export function newAttrTable(): AttrTable {
  return new AttrTable(NFQA_MAX + 1);
}

/**
 * Parses an NFQNL_MSG_PACKET message into `out`, the view the handler is given. Returns null
 * when complete; otherwise a reason. When the reason is returned but `out.id` is not -1, the
 * caller can still answer the packet.
 */
export function parsePacket(buf: Buffer, msg: NlMsg, table: AttrTable, out: QueuedPacket): string | null {
  out.id = -1;
  if (msg.type !== T_PACKET) return `not a packet message (type 0x${msg.type.toString(16)})`;
  if (msg.len < HDR) return 'packet message shorter than nfgenmsg';
  const end = msg.start + msg.len;
  out.family = buf[msg.start + NLMSG_HDRLEN]!;
  out.queueNum = u16be(buf, msg.start + NLMSG_HDRLEN + 2);
  const err = parseAttrs(buf, msg.start + HDR, end, table);
  // struct nfqnl_msg_packet_hdr { __be32 packet_id; __be16 hw_protocol; u8 hook; } __packed
  if (table.has(NFQA_PACKET_HDR) && table.len[NFQA_PACKET_HDR]! >= 7) {
    const o = table.off[NFQA_PACKET_HDR]!;
    out.id = u32be(buf, o);
    out.hwProtocol = u16be(buf, o + 4);
    out.hook = buf[o + 6]!;
  }
  if (err !== null) return err;
  if (out.id === -1) return 'missing NFQA_PACKET_HDR';
  out.mark = u32attr(buf, table, NFQA_MARK, 0);
  out.indev = u32attr(buf, table, NFQA_IFINDEX_INDEV, 0);
  out.outdev = u32attr(buf, table, NFQA_IFINDEX_OUTDEV, 0);
  out.physindev = u32attr(buf, table, NFQA_IFINDEX_PHYSINDEV, 0);
  out.physoutdev = u32attr(buf, table, NFQA_IFINDEX_PHYSOUTDEV, 0);
  out.skbInfo = u32attr(buf, table, NFQA_SKB_INFO, 0);
  out.gso = (out.skbInfo & NFQA_SKB_GSO) !== 0;
  out.csumNotReady = (out.skbInfo & NFQA_SKB_CSUMNOTREADY) !== 0;
  out.uid = table.has(NFQA_UID) ? u32attr(buf, table, NFQA_UID, -1) : -1;
  out.gid = table.has(NFQA_GID) ? u32attr(buf, table, NFQA_GID, -1) : -1;
  if (table.has(NFQA_PAYLOAD)) {
    const o = table.off[NFQA_PAYLOAD]!;
    out.payload = buf.subarray(o, o + table.len[NFQA_PAYLOAD]!);
  } else {
    out.payload = EMPTY;
  }
  out.capLen = table.has(NFQA_CAP_LEN) ? u32attr(buf, table, NFQA_CAP_LEN, 0) : out.payload.length;
  return null;
}

function u32attr(buf: Uint8Array, table: AttrTable, type: number, dflt: number): number {
  if (table.off[type] === -1 || table.len[type]! < 4) return dflt;
  return u32be(buf, table.off[type]!);
}
