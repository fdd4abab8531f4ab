// Synthetic nfnetlink_queue bytes for unit tests: packet messages as the kernel sends them,
// NLMSG_ERROR answers, and a decoder of the verdict messages a send buffer holds.
import assert from 'node:assert/strict';
import { AttrTable, NLMSG_ERROR, NlWriter, parseAttrs, readNlHeader } from '../../src/datapath/netlink.js';
import {
  NFQA_GID,
  NFQA_IFINDEX_INDEV,
  NFQA_IFINDEX_OUTDEV,
  NFQA_MARK,
  NFQA_PACKET_HDR,
  NFQA_PAYLOAD,
  NFQA_SKB_INFO,
  NFQA_UID,
  NFQA_VERDICT_HDR,
  T_PACKET,
} from '../../src/datapath/nfqueue-proto.js';

export interface PacketSpec {
  id: number;
  payload?: Buffer;
  queueNum?: number;
  /** nfgen family (2 IPv4, 10 IPv6). */
  family?: number;
  hwProtocol?: number;
  hook?: number;
  mark?: number;
  indev?: number;
  outdev?: number;
  skbInfo?: number;
  uid?: number;
  gid?: number;
  /** Leave out NFQA_PACKET_HDR (then the packet id is unreadable). */
  noHeader?: boolean;
  /** Append an attribute whose length runs past the message (a malformed message). */
  badAttr?: boolean;
}

/** Appends one NFQNL_MSG_PACKET to `w`. */
export function writePacketMsg(w: NlWriter, p: PacketSpec): void {
  w.beginNf(T_PACKET, 0, 0, p.family ?? 2, p.queueNum ?? 0);
  if (!p.noHeader) {
    // struct nfqnl_msg_packet_hdr { __be32 packet_id; __be16 hw_protocol; u8 hook; } __packed
    const o = w.attrReserve(NFQA_PACKET_HDR, 7);
    w.buf.writeUInt32BE(p.id >>> 0, o);
    w.buf.writeUInt16BE(p.hwProtocol ?? 0x0800, o + 4);
    w.buf[o + 6] = p.hook ?? 3;
  }
  if (p.mark !== undefined) w.attrU32be(NFQA_MARK, p.mark);
  if (p.indev !== undefined) w.attrU32be(NFQA_IFINDEX_INDEV, p.indev);
  if (p.outdev !== undefined) w.attrU32be(NFQA_IFINDEX_OUTDEV, p.outdev);
  if (p.skbInfo !== undefined) w.attrU32be(NFQA_SKB_INFO, p.skbInfo);
  if (p.uid !== undefined) w.attrU32be(NFQA_UID, p.uid);
  if (p.gid !== undefined) w.attrU32be(NFQA_GID, p.gid);
  if (p.payload) w.attrBytes(NFQA_PAYLOAD, p.payload);
  if (p.badAttr) {
    const o = w.off;
    w.buf.writeUInt16LE(200, o);
    w.buf.writeUInt16LE(NFQA_MARK, o + 2);
    w.off = o + 4;
  }
  w.end();
}

/** An NLMSG_ERROR message (errno 0: an acknowledgement) answering a message of `origType`. */
export function writeErrorMsg(w: NlWriter, errno: number, origType = 0x0301): void {
  const b = w.buf;
  const o = w.off;
  b.writeUInt32LE(36, o);
  b.writeUInt16LE(NLMSG_ERROR, o + 4);
  b.writeUInt16LE(0, o + 6);
  b.writeUInt32LE(0, o + 8);
  b.writeUInt32LE(0, o + 12);
  b.writeInt32LE(-errno, o + 16);
  // The original message's header (capped).
  b.writeUInt32LE(16, o + 20);
  b.writeUInt16LE(origType, o + 24);
  b.fill(0, o + 26, o + 36);
  w.off = o + 36;
}

/** One datagram holding the given messages. */
export function datagram(...parts: Array<PacketSpec | { errno: number }>): Buffer {
  const w = new NlWriter(Buffer.alloc(1 << 17));
  for (const p of parts) {
    if ('errno' in p) writeErrorMsg(w, p.errno);
    else writePacketMsg(w, p);
  }
  return Buffer.from(w.buf.subarray(0, w.off));
}

export interface DecodedVerdict {
  kind: 'verdict' | 'batch';
  queueNum: number;
  id: number;
  verdict: number;
  mark: number;
  payload: string | null;
}

/** Decodes the NFQNL_MSG_VERDICT / VERDICT_BATCH messages in sent buffers. */
export function decodeVerdicts(bufs: Buffer[]): DecodedVerdict[] {
  const out: DecodedVerdict[] = [];
  const t = new AttrTable(30);
  for (const b of bufs) {
    let off = 0;
    while (off < b.length) {
      const h = readNlHeader(b, off, b.length);
      assert.ok(h.ok);
      off = h.next;
      assert.ok(h.msg.type === 0x0301 || h.msg.type === 0x0303, `verdict message type 0x${h.msg.type.toString(16)}`);
      assert.equal(parseAttrs(b, h.msg.start + 20, h.msg.start + h.msg.len, t), null);
      const vo = t.off[NFQA_VERDICT_HDR]!;
      out.push({
        kind: h.msg.type === 0x0303 ? 'batch' : 'verdict',
        queueNum: b.readUInt16BE(h.msg.start + 18),
        verdict: b.readUInt32BE(vo),
        id: b.readUInt32BE(vo + 4),
        mark: t.has(NFQA_MARK) ? b.readUInt32BE(t.off[NFQA_MARK]) : -1,
        payload: t.has(NFQA_PAYLOAD) ? b.subarray(t.off[NFQA_PAYLOAD], t.off[NFQA_PAYLOAD]! + t.len[NFQA_PAYLOAD]!).toString('hex') : null,
      });
    }
  }
  return out;
}

/**
 * The kernel's semantics: a verdict takes its one id, a batch every queued id not after maxId.
 * Returns what each id got; ids never answered are missing.
 */
export function simulateKernel(
  ids: number[],
  msgs: DecodedVerdict[],
): Map<number, { verdict: number; mark: number; payload: string | null }> {
  let queue = [...ids];
  const got = new Map<number, { verdict: number; mark: number; payload: string | null }>();
  for (const m of msgs) {
    if (m.kind === 'verdict') {
      assert.ok(queue.includes(m.id), `verdict for unknown id ${m.id}`);
      queue = queue.filter((x) => x !== m.id);
      got.set(m.id, { verdict: m.verdict, mark: m.mark, payload: m.payload });
    } else {
      const taken = queue.filter((x) => ((x - m.id) | 0) <= 0);
      assert.ok(taken.length > 0, 'batch verdict matched nothing (kernel: ENOENT)');
      queue = queue.filter((x) => ((x - m.id) | 0) > 0);
      for (const x of taken) got.set(x, { verdict: m.verdict, mark: m.mark, payload: null });
    }
  }
  return got;
}
