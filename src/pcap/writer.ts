// Writers for pcap (little-endian, micro- or nanosecond) and pcapng (one section, interfaces
// declared as they first appear). Output is buffered and written in large chunks.
import { open, type FileHandle } from 'node:fs/promises';
import { PCAP_MAGIC_NS, PCAP_MAGIC_US, PCAPNG_BOM, PCAPNG_EPB, PCAPNG_IDB, PCAPNG_SHB } from './reader.js';

const STAGING_BYTES = 1 << 20;

/**
 * Records are copied into one staging buffer that is written when full, so writing a record
 * costs one copy and no allocation. `push` returns a promise only when the buffer had to be
 * written first; callers await it then (backpressure), and otherwise carry on synchronously.
 */
abstract class BufferedFile {
  protected fh: FileHandle;
  private staging = Buffer.allocUnsafe(STAGING_BYTES);
  private used = 0;
  /** Set while the staging buffer is being written; later records queue behind it, in order. */
  private busy: Promise<void> | undefined;
  protected constructor(fh: FileHandle) {
    this.fh = fh;
  }
  /** Copies b into the output. */
  protected push(b: Uint8Array): Promise<void> | undefined {
    return this.pushWith(b.length, (buf, off) => buf.set(b, off));
  }
  /** Reserves n bytes of output and lets fill() write them in place. */
  protected pushWith(n: number, fill: (buf: Buffer, off: number) => void): Promise<void> | undefined {
    if (this.busy) return this.busy.then(() => this.pushWith(n, fill));
    if (this.used + n <= this.staging.length) {
      fill(this.staging, this.used);
      this.used += n;
      return undefined;
    }
    const p = this.writeStaging().then(async () => {
      if (n > this.staging.length) {
        const b = Buffer.alloc(n);
        fill(b, 0);
        await this.writeAll(b, n);
      } else {
        fill(this.staging, 0);
        this.used = n;
      }
    });
    this.busy = p;
    return p.finally(() => {
      if (this.busy === p) this.busy = undefined;
    });
  }
  private async writeAll(b: Buffer, n: number): Promise<void> {
    for (let off = 0; off < n; ) off += (await this.fh.write(b, off, n - off)).bytesWritten;
  }
  private async writeStaging(): Promise<void> {
    const n = this.used;
    this.used = 0;
    if (n > 0) await this.writeAll(this.staging, n);
  }
  async flush(): Promise<void> {
    while (this.busy) await this.busy.catch(() => undefined);
    await this.writeStaging();
  }
  async close(): Promise<void> {
    try {
      await this.flush();
    } finally {
      await this.fh.close();
    }
  }
}

export interface Timestamp {
  tsSec: number;
  /** In units of 1/tsUnitsPerSec. */
  tsFrac: number;
  tsUnitsPerSec: number;
}

const ZERO_TS: Timestamp = { tsSec: 0, tsFrac: 0, tsUnitsPerSec: 1e6 };

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

  /**
   * Appends a record (timestamp converted to this file's precision). Returns a promise only
   * when the caller must wait for buffered output to be written.
   */
  write(data: Uint8Array, ts: Timestamp = ZERO_TS, origLen = data.length): Promise<void> | undefined {
    const units = this.nanosecond ? 1e9 : 1e6;
    const frac = ts.tsUnitsPerSec === units ? ts.tsFrac : Math.floor((ts.tsFrac * units) / ts.tsUnitsPerSec);
    const orig = Math.max(origLen, data.length);
    // 32 unsigned bits of seconds: 1970 to 2106 (an input's if_tsoffset can move a time outside).
    if (!(ts.tsSec >= 0 && ts.tsSec <= 0xffffffff)) throw new RangeError(`timestamp ${ts.tsSec} s is outside what pcap holds (1970-2106)`);
    return this.pushWith(16 + data.length, (b, o) => {
      b.writeUInt32LE(ts.tsSec >>> 0, o);
      b.writeUInt32LE(frac >>> 0, o + 4);
      b.writeUInt32LE(data.length, o + 8);
      b.writeUInt32LE(orig >>> 0, o + 12);
      b.set(data, o + 16);
    });
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
  async addInterface(iface: PcapngInterface): Promise<number> {
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
    if (!(iface.linktype >= 0 && iface.linktype <= 0xffff))
      throw new RangeError(`link type ${iface.linktype} does not fit pcapng's 16 bits`);
    b.writeUInt16LE(iface.linktype, 8);
    b.writeUInt32LE(iface.snaplen ?? 0, 12);
    opts.copy(b, 16);
    b.writeUInt32LE(total, total - 4);
    await this.push(b);
    this.ifaces.push({ ...iface, tsUnitsPerSec: units });
    return this.ifaces.length - 1;
  }

  /** Appends an Enhanced Packet Block; the timestamp is converted to the interface's resolution. */
  write(ifIndex: number, data: Uint8Array, ts: Timestamp = ZERO_TS, origLen = data.length): Promise<void> | undefined {
    const iface = this.ifaces[ifIndex];
    if (!iface) throw new RangeError(`no interface ${ifIndex}`);
    const units = iface.tsUnitsPerSec!;
    const frac = ts.tsUnitsPerSec === units ? ts.tsFrac : Math.floor((ts.tsFrac * units) / ts.tsUnitsPerSec);
    const t = BigInt(ts.tsSec) * BigInt(units) + BigInt(frac);
    if (t < 0n || t > 0xffffffffffffffffn) throw new RangeError(`timestamp ${ts.tsSec} s is outside what pcapng holds`);
    const total = 32 + pad4(data.length);
    const orig = Math.max(origLen, data.length);
    return this.pushWith(total, (b, o) => {
      b.writeUInt32LE(PCAPNG_EPB, o);
      b.writeUInt32LE(total, o + 4);
      b.writeUInt32LE(ifIndex, o + 8);
      b.writeUInt32LE(Number(t >> 32n), o + 12);
      b.writeUInt32LE(Number(t & 0xffffffffn), o + 16);
      b.writeUInt32LE(data.length, o + 20);
      b.writeUInt32LE(orig >>> 0, o + 24);
      b.set(data, o + 28);
      b.fill(0, o + 28 + data.length, o + total - 4);
      b.writeUInt32LE(total, o + total - 4);
    });
  }
}
