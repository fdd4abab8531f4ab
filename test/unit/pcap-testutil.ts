// A deliberately separate, minimal capture-file encoder for the tests (both byte orders, pcap
// and pcapng, with blocks our writer never emits), so the reader is not only tested against
// our own writer.
export interface TestRecord {
  tsSec: number;
  tsFrac: number;
  data: Uint8Array;
  origLen?: number;
}

function u32(v: number, be: boolean): Buffer {
  const b = Buffer.alloc(4);
  if (be) b.writeUInt32BE(v >>> 0);
  else b.writeUInt32LE(v >>> 0);
  return b;
}

function u16(v: number, be: boolean): Buffer {
  const b = Buffer.alloc(2);
  if (be) b.writeUInt16BE(v);
  else b.writeUInt16LE(v);
  return b;
}

export function encodePcap(opts: { be: boolean; ns: boolean; linktype: number; snaplen?: number }, recs: TestRecord[]): Buffer {
  const { be } = opts;
  const parts: Buffer[] = [
    u32(opts.ns ? 0xa1b23c4d : 0xa1b2c3d4, be),
    u16(2, be),
    u16(4, be),
    u32(0, be),
    u32(0, be),
    u32(opts.snaplen ?? 65535, be),
    u32(opts.linktype, be),
  ];
  for (const r of recs) {
    parts.push(u32(r.tsSec, be), u32(r.tsFrac, be), u32(r.data.length, be), u32(r.origLen ?? r.data.length, be), Buffer.from(r.data));
  }
  return Buffer.concat(parts);
}

function pad(b: Buffer): Buffer {
  return b.length % 4 ? Buffer.concat([b, Buffer.alloc(4 - (b.length % 4))]) : b;
}

function block(type: number, body: Buffer, be: boolean): Buffer {
  const total = 12 + pad(body).length;
  return Buffer.concat([u32(type, be), u32(total, be), pad(body), u32(total, be)]);
}

function opt(code: number, value: Buffer, be: boolean): Buffer {
  return Buffer.concat([u16(code, be), u16(value.length, be), pad(value)]);
}

export type NgBlock =
  | { shb: true }
  | { idb: { linktype: number; snaplen?: number; tsresol?: number; name?: string; tsoffset?: bigint } }
  | { epb: { ifIndex: number; ts: bigint; data: Uint8Array; origLen?: number } }
  | { spb: { data: Uint8Array; origLen?: number } }
  | { unknown: { type: number; size: number } };

export function encodePcapng(be: boolean, blocks: NgBlock[]): Buffer {
  const parts: Buffer[] = [];
  for (const b of blocks) {
    if ('shb' in b) {
      const body = Buffer.concat([
        u32(0x1a2b3c4d, be),
        u16(1, be),
        u16(0, be),
        Buffer.alloc(8, 0xff),
        opt(4, Buffer.from('test encoder'), be),
        u32(0, be),
      ]);
      parts.push(block(0x0a0d0d0a, body, be));
    } else if ('idb' in b) {
      const opts: Buffer[] = [];
      if (b.idb.name) opts.push(opt(2, Buffer.from(b.idb.name), be));
      if (b.idb.tsresol !== undefined) opts.push(opt(9, Buffer.from([b.idb.tsresol]), be));
      if (b.idb.tsoffset !== undefined) {
        const v = Buffer.alloc(8);
        if (be) v.writeBigInt64BE(b.idb.tsoffset);
        else v.writeBigInt64LE(b.idb.tsoffset);
        opts.push(opt(14, v, be));
      }
      if (opts.length) opts.push(u32(0, be));
      parts.push(block(1, Buffer.concat([u16(b.idb.linktype, be), u16(0, be), u32(b.idb.snaplen ?? 0, be), ...opts]), be));
    } else if ('epb' in b) {
      const e = b.epb;
      const body = Buffer.concat([
        u32(e.ifIndex, be),
        u32(Number(e.ts >> 32n), be),
        u32(Number(e.ts & 0xffffffffn), be),
        u32(e.data.length, be),
        u32(e.origLen ?? e.data.length, be),
        pad(Buffer.from(e.data)),
      ]);
      parts.push(block(6, body, be));
    } else if ('spb' in b) {
      parts.push(block(3, Buffer.concat([u32(b.spb.origLen ?? b.spb.data.length, be), pad(Buffer.from(b.spb.data))]), be));
    } else {
      parts.push(block(b.unknown.type, Buffer.alloc(b.unknown.size, 0xab), be));
    }
  }
  return Buffer.concat(parts);
}
