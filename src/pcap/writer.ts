// Writers for pcap (little-endian, micro- or nanosecond) and pcapng (one section, interfaces
// declared as they first appear). Output is buffered and written in large chunks.
import { open, type FileHandle } from 'node:fs/promises';
import { PCAP_MAGIC_NS, PCAP_MAGIC_US, PCAPNG_BOM, PCAPNG_EPB, PCAPNG_IDB, PCAPNG_SHB } from './reader.js';

const FLUSH_BYTES = 1 << 20;

abstract class BufferedFile {
  protected fh: FileHandle;
  private parts: Buffer[] = [];
  private pending = 0;
  protected constructor(fh: FileHandle) {
    this.fh = fh;
  }
  protected push(b: Buffer): void {
    this.parts.push(b);
    this.pending += b.length;
  }
  protected async maybeFlush(): Promise<void> {
    if (this.pending >= FLUSH_BYTES) await this.flush();
  }
  async flush(): Promise<void> {
    if (this.pending === 0) return;
    const parts = this.parts;
    this.parts = [];
    this.pending = 0;
    await this.fh.writev(parts);
  }
  async close(): Promise<void> {
    try {
      await this.flush();
    } finally {
      await this.fh.close();
    }
  }
}

export interface PcapWriterOptions {
  linktype: number;
  nanosecond?: boolean;
  snaplen?: number;
}

/** Writes a classic pcap file (little-endian). */
export class PcapWriter extends BufferedFile {
  readonly nanosecond: boolean;

  private constructor(fh: FileHandle, nanosecond: boolean) {
    super(fh);
    this.nanosecond = nanosecond;
  }

  static async create(path: string, opts: PcapWriterOptions): Promise<PcapWriter> {
    const fh = await open(path, 'w');
    const w = new PcapWriter(fh, opts.nanosecond ?? false);
    const h = Buffer.alloc(24);
    h.writeUInt32LE(w.nanosecond ? PCAP_MAGIC_NS : PCAP_MAGIC_US, 0);
    h.writeUInt16LE(2, 4);
    h.writeUInt16LE(4, 6);
    h.writeUInt32LE(opts.snaplen ?? 262144, 16);
    h.writeUInt32LE(opts.linktype, 20);
    w.push(h);
    return w;
  }

  /** Appends a record; tsFrac is in units of 1/tsUnitsPerSec (converted to this file's precision). */
  async write(data: Uint8Array, ts: { tsSec: number; tsFrac: number; tsUnitsPerSec: number } = { tsSec: 0, tsFrac: 0, tsUnitsPerSec: 1e6 }, origLen = data.length): Promise<void> {
    const h = Buffer.allocUnsafe(16 + data.length);
    const units = this.nanosecond ? 1e9 : 1e6;
    const frac = ts.tsUnitsPerSec === units ? ts.tsFrac : Math.floor((ts.tsFrac * units) / ts.tsUnitsPerSec);
    h.writeUInt32LE(ts.tsSec >>> 0, 0);
    h.writeUInt32LE(frac >>> 0, 4);
    h.writeUInt32LE(data.length, 8);
    h.writeUInt32LE(Math.max(origLen, data.length), 12);
    h.set(data, 16);
    this.push(h);
    await this.maybeFlush();
  }
}

export interface PcapngInterface {
  linktype: number;
  snaplen?: number;
  tsUnitsPerSec?: number;
  name?: string;
}

function pad4(n: number): number {
  return (n + 3) & ~3;
}

function option(code: number, value: Buffer): Buffer {
  const b = Buffer.alloc(4 + pad4(value.length));
  b.writeUInt16LE(code, 0);
  b.writeUInt16LE(value.length, 2);
  value.copy(b, 4);
  return b;
}

/** tsresol option byte for a unit count per second (10^n or 2^n), or null when neither. */
function tsresolByte(units: number): number | null {
  for (let n = 0; n <= 15; n++) if (10 ** n === units) return n;
  for (let n = 0; n <= 52; n++) if (2 ** n === units) return 0x80 | n;
  return null;
}

/** Writes a pcapng file (little-endian, one section). */
export class PcapngWriter extends BufferedFile {
  private ifaces: PcapngInterface[] = [];

  private constructor(fh: FileHandle) {
    super(fh);
  }

  static async create(path: string, application = 'labelwall'): Promise<PcapngWriter> {
    const fh = await open(path, 'w');
    const w = new PcapngWriter(fh);
    const opts = Buffer.concat([option(4, Buffer.from(application)), Buffer.alloc(4)]);
    const total = 28 + opts.length;
    const b = Buffer.alloc(total);
    b.writeUInt32LE(PCAPNG_SHB, 0);
    b.writeUInt32LE(total, 4);
    b.writeUInt32LE(PCAPNG_BOM, 8);
    b.writeUInt16LE(1, 12);
    b.writeUInt16LE(0, 14);
    b.writeInt32LE(-1, 16); // section length unknown
    b.writeInt32LE(-1, 20);
    opts.copy(b, 24);
    b.writeUInt32LE(total, total - 4);
    w.push(b);
    return w;
  }

  /** Declares an interface; returns its id. */
  addInterface(iface: PcapngInterface): number {
    const units = iface.tsUnitsPerSec ?? 1e6;
    const parts: Buffer[] = [];
    if (iface.name) parts.push(option(2, Buffer.from(iface.name)));
    if (units !== 1e6) {
      const r = tsresolByte(units);
      if (r === null) throw new RangeError(`timestamp resolution ${units}/s not expressible in pcapng`);
      parts.push(option(9, Buffer.from([r])));
    }
    if (parts.length) parts.push(Buffer.alloc(4));
    const opts = Buffer.concat(parts);
    const total = 20 + opts.length;
    const b = Buffer.alloc(total);
    b.writeUInt32LE(PCAPNG_IDB, 0);
    b.writeUInt32LE(total, 4);
    b.writeUInt16LE(iface.linktype, 8);
    b.writeUInt32LE(iface.snaplen ?? 0, 12);
    opts.copy(b, 16);
    b.writeUInt32LE(total, total - 4);
    this.push(b);
    this.ifaces.push({ ...iface, tsUnitsPerSec: units });
    return this.ifaces.length - 1;
  }

  /** Appends an Enhanced Packet Block; tsFrac in units of 1/tsUnitsPerSec, converted to the interface's. */
  async write(ifIndex: number, data: Uint8Array, ts: { tsSec: number; tsFrac: number; tsUnitsPerSec: number } = { tsSec: 0, tsFrac: 0, tsUnitsPerSec: 1e6 }, origLen = data.length): Promise<void> {
    const iface = this.ifaces[ifIndex];
    if (!iface) throw new RangeError(`no interface ${ifIndex}`);
    const units = iface.tsUnitsPerSec!;
    const frac = ts.tsUnitsPerSec === units ? ts.tsFrac : Math.floor((ts.tsFrac * units) / ts.tsUnitsPerSec);
    const t = BigInt(ts.tsSec) * BigInt(units) + BigInt(frac);
    const total = 32 + pad4(data.length);
    const b = Buffer.alloc(total);
    b.writeUInt32LE(PCAPNG_EPB, 0);
    b.writeUInt32LE(total, 4);
    b.writeUInt32LE(ifIndex, 8);
    b.writeUInt32LE(Number(t >> 32n), 12);
    b.writeUInt32LE(Number(t & 0xffffffffn), 16);
    b.writeUInt32LE(data.length, 20);
    b.writeUInt32LE(Math.max(origLen, data.length), 24);
    b.set(data, 28);
    b.writeUInt32LE(total, total - 4);
    this.push(b);
    await this.maybeFlush();
  }
}
