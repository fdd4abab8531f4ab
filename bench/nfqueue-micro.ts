// Micro-benchmark of the datapath's userspace work per packet, without the kernel: parse a
// queued-packet message, run a handler, encode the verdict into a send buffer (coalesced
// batch verdicts for accept-only; a payload verdict for labelling). Also the cost of one
// koffi call. Prints ns per packet. Usage: node dist/bench/nfqueue-micro.js
import koffi from 'koffi';
import { NlWriter, readNlHeader } from '../src/datapath/netlink.js';
import { newAttrTable, newQueuedPacket, parsePacket, NF_ACCEPT } from '../src/datapath/nfqueue-proto.js';
import { VerdictEncoder } from '../src/datapath/verdict-encoder.js';
import { labelPacket } from '../src/label/compat.js';
import { LabelKey } from '../src/label/keys.js';

/** A 1,420-byte-payload IPv4/TCP segment wrapped in an NFQNL_MSG_PACKET message, as the kernel sends it. */
function packetMessage(id: number): Buffer {
  const payloadLen = 1420;
  const ip = Buffer.alloc(20 + 20 + payloadLen);
  ip[0] = 0x45;
  ip.writeUInt16BE(ip.length, 2);
  ip[8] = 64;
  ip[9] = 6;
  ip.set([10, 0, 0, 1, 10, 0, 0, 2], 12);
  ip.writeUInt16BE(40000, 20);
  ip.writeUInt16BE(5201, 22);
  ip.writeUInt32BE(12345, 24);
  ip[32] = 0x50;
  ip[33] = 0x18;
  for (let i = 40; i < ip.length; i++) ip[i] = i & 0xff;
  const attrs = Buffer.alloc(12 + 8 + 4);
  attrs.writeUInt16LE(11, 0);
  attrs.writeUInt16LE(1, 2);
  attrs.writeUInt32BE(id, 4);
  attrs.writeUInt16BE(0x0800, 8);
  attrs[10] = 3;
  attrs.writeUInt16LE(8, 12);
  attrs.writeUInt16LE(6, 14);
  attrs.writeUInt32BE(2, 16);
  attrs.writeUInt16LE(4 + ip.length, 20);
  attrs.writeUInt16LE(10, 22);
  const body = Buffer.concat([Buffer.from([2, 0, 0, 0]), attrs, ip]);
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + body.length, 0);
  h.writeUInt16LE(0x0300, 4);
  return Buffer.concat([h, body]);
}

function run(name: string, n: number, perPacket: (msg: Buffer, i: number) => void, msgs: Buffer[]): void {
  for (let i = 0; i < 100000; i++) perPacket(msgs[i & 63]!, i); // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) perPacket(msgs[i & 63]!, i);
  const ns = Number(process.hrtime.bigint() - t0) / n;
  console.log(`${name.padEnd(46)} ${ns.toFixed(0).padStart(6)} ns/packet`);
}

const msgs = Array.from({ length: 64 }, (_, i) => packetMessage(i + 1));
const table = newAttrTable();
const pp = newQueuedPacket();
const w = new NlWriter(Buffer.alloc(1 << 20));
const enc = new VerdictEncoder(w, 0, true, (wr) => wr.reset());
const encSingle = new VerdictEncoder(new NlWriter(Buffer.alloc(1 << 20)), 0, false, (wr) => wr.reset());
const key = LabelKey.fromBytes(Buffer.alloc(32, 7));
const scratch = Buffer.alloc(65536);

run(
  'parse only',
  1_000_000,
  (m) => {
    const h = readNlHeader(m, 0, m.length);
    if (h.ok) parsePacket(m, h.msg, table, pp);
  },
  msgs,
);
run(
  'parse + accept (batch verdict per 64)',
  1_000_000,
  (m, i) => {
    const h = readNlHeader(m, 0, m.length);
    if (h.ok && parsePacket(m, h.msg, table, pp) === null) enc.plain(pp.id, NF_ACCEPT, -1);
    if ((i & 63) === 63) enc.finish();
  },
  msgs,
);
run(
  'parse + accept (one verdict per packet)',
  1_000_000,
  (m, i) => {
    const h = readNlHeader(m, 0, m.length);
    if (h.ok && parsePacket(m, h.msg, table, pp) === null) encSingle.plain(pp.id, NF_ACCEPT, -1);
    if ((i & 63) === 63) encSingle.finish();
    if ((i & 63) === 63) enc.finish();
  },
  msgs,
);
run(
  'labelPacket only (HMAC + checksums)',
  200_000,
  (m) => {
    const r = labelPacket(m.subarray(44), key, scratch);
    if (!r.ok) throw new Error(r.reason);
  },
  msgs,
);
run(
  'parse + labelPacket + payload verdict',
  200_000,
  (m, i) => {
    const h = readNlHeader(m, 0, m.length);
    if (h.ok && parsePacket(m, h.msg, table, pp) === null) {
      const r = labelPacket(pp.payload, key, scratch);
      if (!r.ok) throw new Error(r.reason);
      enc.withPayload(pp.id, NF_ACCEPT, -1, r.packet, r.packet.length);
    }
    if ((i & 63) === 63) enc.finish();
  },
  msgs,
);

const libc = koffi.load('libc.so.6');
const memset = libc.func('void *memset(void *, int, size_t)');
const getpid = libc.func('int getpid()');
const buf = Buffer.alloc(64);
run('koffi call: memset(buf, 0, 0)', 1_000_000, () => memset(buf, 0, 0), msgs);
run('koffi call: getpid() (syscall)', 1_000_000, () => getpid(), msgs);
