import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AttrTable, NLMSG_ERROR, NlWriter, parseAttrs, parseNlError, readNlHeader } from '../../src/datapath/netlink.js';
import {
  NFQA_CFG_F_FAIL_OPEN,
  NFQA_CFG_F_GSO,
  NFQA_PAYLOAD,
  NFQNL_CFG_CMD_BIND,
  NFQNL_COPY_PACKET,
  NF_ACCEPT,
  NF_DROP,
  NF_REPEAT,
  newAttrTable,
  newQueuedPacket,
  parsePacket,
  verdictMsgSize,
  writeConfig,
  writeVerdict,
  writeVerdictBatch,
} from '../../src/datapath/nfqueue-proto.js';
import { VerdictEncoder } from '../../src/datapath/verdict-encoder.js';
import { decodeVerdicts, simulateKernel } from './nfqueue-testutil.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('nfqueue builders', () => {
  it('config: bind + params + maxlen + flags, with ack', () => {
    const w = new NlWriter(Buffer.alloc(256));
    writeConfig(
      w,
      5,
      {
        cmd: NFQNL_CFG_CMD_BIND,
        copyMode: NFQNL_COPY_PACKET,
        copyRange: 0xffff,
        maxLen: 4096,
        flags: NFQA_CFG_F_FAIL_OPEN,
        mask: NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO,
      },
      7,
      true,
    );
    const expected = hex(
      [
        '40000000 0203 0500 07000000 00000000', // nlmsghdr: len 64, QUEUE<<8|CONFIG, REQUEST|ACK, seq 7, pid 0
        '00 00 0005', // nfgenmsg: AF_UNSPEC, v0, res_id 5 (big-endian)
        '0800 0100 01 00 0000', // CFG_CMD: bind, pf 0
        '0900 0200 0000ffff 02 000000', // CFG_PARAMS (5 bytes): range 65535, COPY_PACKET; padded
        '0800 0300 00001000', // QUEUE_MAXLEN 4096
        '0800 0400 00000005', // MASK fail-open|gso
        '0800 0500 00000001', // FLAGS fail-open
      ].join(''),
    );
    assert.equal(w.buf.subarray(0, w.off).toString('hex'), expected.toString('hex'));
  });

  it('verdict with mark and an odd-length payload is padded; nla_len excludes padding', () => {
    const w = new NlWriter(Buffer.alloc(256));
    writeVerdict(w, 1, 0x01020304, NF_REPEAT, 0x77, Buffer.from([1, 2, 3, 4, 5]));
    assert.equal(w.off, verdictMsgSize(true, 5));
    const expected = hex(
      '34000000 0103 0100 00000000 00000000' + // len 52, VERDICT, REQUEST
        '00 00 0001' +
        '0c00 0200 00000004 01020304' + // VERDICT_HDR repeat, id
        '0800 0300 00000077' + // MARK
        '0900 0a00 0102030405 000000', // PAYLOAD len 4+5, padded
    );
    assert.equal(w.buf.subarray(0, w.off).toString('hex'), expected.toString('hex'));
  });

  it('batch verdict', () => {
    const w = new NlWriter(Buffer.alloc(64));
    writeVerdictBatch(w, 2, 99, NF_ACCEPT, -1);
    assert.equal(
      w.buf.subarray(0, w.off).toString('hex'),
      hex('20000000 0303 0100 00000000 00000000 00000002 0c000200 00000001 00000063').toString('hex'),
    );
  });
});

/** A packet message as the kernel builds it: final payload attribute not padded. */
function packetMsg(id: number, payload: Buffer, extra: Buffer = Buffer.alloc(0)): Buffer {
  const hdrAttr = hex(`0b00 0100${id.toString(16).padStart(8, '0')}0800 03 00`); // len 11: id, hw 0x0800, hook 3, pad
  const attrs = Buffer.concat([
    hdrAttr,
    hex('0800 0600 00000007'), // OUTDEV 7
    hex('0800 0300 0000abcd'), // MARK
    hex('0800 0e00 00000003'), // SKB_INFO csum-not-ready | gso
    hex('0800 1000 000003e8'), // UID 1000
    extra,
  ]);
  const pl = Buffer.alloc(4 + payload.length);
  pl.writeUInt16LE(4 + payload.length, 0);
  pl.writeUInt16LE(NFQA_PAYLOAD, 2);
  payload.copy(pl, 4);
  const body = Buffer.concat([hex('02 00 0009'), attrs, pl]);
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + body.length, 0);
  h.writeUInt16LE(0x0300, 4);
  return Buffer.concat([h, body]);
}

describe('nfqueue packet parser', () => {
  it('reads every field and views the payload without copying', () => {
    const m = packetMsg(0xfffffffe, Buffer.from('4500001c', 'hex'));
    m.writeUInt32LE(m.length, 0);
    const h = readNlHeader(m, 0, m.length);
    assert.ok(h.ok);
    const p = newQueuedPacket();
    assert.equal(parsePacket(m, h.msg, newAttrTable(), p), null);
    assert.equal(p.id, 0xfffffffe);
    assert.equal(p.family, 2);
    assert.equal(p.queueNum, 9);
    assert.equal(p.hwProtocol, 0x0800);
    assert.equal(p.hook, 3);
    assert.equal(p.outdev, 7);
    assert.equal(p.indev, 0);
    assert.equal(p.mark, 0xabcd);
    assert.equal(p.skbInfo, 3);
    assert.equal(p.uid, 1000);
    assert.equal(p.gid, -1);
    assert.equal(p.payload.toString('hex'), '4500001c');
    assert.equal(p.payload.buffer, m.buffer, 'payload is a view into the receive buffer');
    assert.equal(p.capLen, 4);
  });

  it('an unpadded final attribute of odd length parses', () => {
    const m = packetMsg(1, Buffer.from([0x45, 1, 2, 3, 4]));
    const h = readNlHeader(m, 0, m.length);
    assert.ok(h.ok);
    assert.equal(m.length % 4, 1);
    const p = newQueuedPacket();
    assert.equal(parsePacket(m, h.msg, newAttrTable(), p), null);
    assert.equal(p.payload.length, 5);
  });

  it('a broken attribute after the packet header is reported, with the id still known', () => {
    const m = packetMsg(42, Buffer.from([0x45]), hex('ff00 0500'));
    const h = readNlHeader(m, 0, m.length);
    assert.ok(h.ok);
    const p = newQueuedPacket();
    const err = parsePacket(m, h.msg, newAttrTable(), p);
    assert.match(String(err), /exceeds message/);
    assert.equal(p.id, 42);
  });

  it('missing packet header is reported with id -1', () => {
    const body = Buffer.concat([hex('02 00 0000'), hex('0800 0300 00000001')]);
    const h = Buffer.alloc(16);
    h.writeUInt32LE(16 + body.length, 0);
    h.writeUInt16LE(0x0300, 4);
    const m = Buffer.concat([h, body]);
    const r = readNlHeader(m, 0, m.length);
    assert.ok(r.ok);
    const p = newQueuedPacket();
    assert.equal(parsePacket(m, r.msg, newAttrTable(), p), 'missing NFQA_PACKET_HDR');
    assert.equal(p.id, -1);
  });

  it('NLMSG_ERROR: errno and the acknowledged sequence', () => {
    const m = hex('24000000 0200 0001 05000000 00000000  feffffff  48000000 0203 0500 07000000 00000000'); // capped ack
    const h = readNlHeader(m, 0, m.length);
    assert.ok(h.ok);
    assert.equal(h.msg.type, NLMSG_ERROR);
    const e = parseNlError(m, h.msg);
    assert.ok(e.ok);
    assert.deepEqual(e.err, { errno: 2, origType: 0x0302, origSeq: 7 });
  });

  it('header length checks', () => {
    assert.equal(readNlHeader(hex('0f000000'), 0, 4).ok, false);
    const m = hex('40000000 0000 0000 00000000 00000000');
    const r = readNlHeader(m, 0, m.length);
    assert.ok(!r.ok && /exceeds/.test(r.reason));
  });

  it('random bytes never throw from the parsers', () => {
    const table = newAttrTable();
    const p = newQueuedPacket();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (bytes, fixHeader) => {
        const b = Buffer.from(bytes);
        if (fixHeader && b.length >= 16) {
          b.writeUInt32LE(b.length, 0); // make it look like one whole message of type PACKET
          b.writeUInt16LE(0x0300, 4);
        }
        let off = 0;
        while (off < b.length) {
          const h = readNlHeader(b, off, b.length);
          if (!h.ok) break;
          off = h.next;
          parsePacket(b, h.msg, table, p);
          parseNlError(b, h.msg);
          parseAttrs(b, h.msg.start + 20, h.msg.start + h.msg.len, new AttrTable(4));
        }
      }),
      { numRuns: 3000 },
    );
  });
});

type Dec = { verdict: number; mark: number; payload: Buffer | null };

/** Runs decisions through the encoder; returns the sent buffers. */
function encode(decisions: Dec[], firstId: number, batching: boolean, bufSize = 4096): Buffer[] {
  const sent: Buffer[] = [];
  const w = new NlWriter(Buffer.alloc(bufSize));
  const enc = new VerdictEncoder(w, 0, batching, (wr) => {
    sent.push(Buffer.from(wr.buf.subarray(0, wr.off)));
    wr.reset();
  });
  decisions.forEach((d, i) => {
    const id = (firstId + i) >>> 0;
    if (d.payload) enc.withPayload(id, d.verdict, d.mark, d.payload, d.payload.length);
    else enc.plain(id, d.verdict, d.mark);
  });
  enc.finish();
  return sent;
}

describe('verdict encoder', () => {
  it('coalesces runs of equal plain verdicts into batch messages', () => {
    const A = { verdict: NF_ACCEPT, mark: -1, payload: null };
    const D = { verdict: NF_DROP, mark: -1, payload: null };
    const msgs = decodeVerdicts(
      encode([A, A, A, D, { ...A, payload: Buffer.from([0x45, 0, 0, 0x14]) }, A, { ...A, mark: 5 }, { ...A, mark: 5 }], 10, true),
    );
    assert.deepEqual(
      msgs.map((m) => [m.kind, m.id, m.verdict, m.mark, m.payload]),
      [
        ['batch', 12, NF_ACCEPT, -1, null],
        ['verdict', 13, NF_DROP, -1, null],
        ['verdict', 14, NF_ACCEPT, -1, '45000014'],
        ['verdict', 15, NF_ACCEPT, -1, null],
        ['batch', 17, NF_ACCEPT, 5, null],
      ],
    );
  });

  it('without batching: one verdict per packet', () => {
    const A = { verdict: NF_ACCEPT, mark: -1, payload: null };
    const msgs = decodeVerdicts(encode([A, A, A], 1, false));
    assert.deepEqual(
      msgs.map((m) => [m.kind, m.id]),
      [
        ['verdict', 1],
        ['verdict', 2],
        ['verdict', 3],
      ],
    );
  });

  it('model check: under kernel semantics every packet gets exactly its decision (ids wrap, buffer splits)', () => {
    const dec = fc.record({
      verdict: fc.constantFrom(NF_ACCEPT, NF_DROP, NF_REPEAT),
      mark: fc.constantFrom(-1, 0, 1, 0xffffffff),
      payload: fc.option(
        fc.uint8Array({ minLength: 20, maxLength: 300 }).map((u) => Buffer.from(u)),
        { freq: 4 },
      ),
    });
    fc.assert(
      fc.property(
        fc.array(dec, { maxLength: 80 }),
        fc.constantFrom(0, 1, 0xfffffff0),
        fc.boolean(),
        fc.constantFrom(400, 4096),
        (ds, first, batching, size) => {
          const msgs = decodeVerdicts(encode(ds, first, batching, size));
          const ids = ds.map((_, i) => (first + i) >>> 0);
          const got = simulateKernel(ids, msgs);
          assert.equal(got.size, ids.length, 'every packet answered');
          ds.forEach((d, i) => {
            const g = got.get(ids[i]!);
            assert.deepEqual(g, { verdict: d.verdict, mark: d.mark, payload: d.payload ? d.payload.toString('hex') : null });
          });
        },
      ),
      { numRuns: 500 },
    );
  });
});
