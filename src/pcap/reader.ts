// Streaming readers for pcap and pcapng. Records are yielded one at a time from chunked reads;
// a record's `data` is a view into a chunk that is never reused, so it may be kept.
import { CaptureError } from './errors.js';
import { ByteSource } from './source.js';

export type CaptureFormat = 'pcap' | 'pcapng';

export interface CaptureRecord {
  /** 1-based number of the packet in file order (packet blocks only, for pcapng). */
  frame: number;
  linktype: number;
  tsSec: number;
  /** Fraction of the second in units of 1/tsUnitsPerSec. */
  tsFrac: number;
  tsUnitsPerSec: number;
  caplen: number;
  origLen: number;
  data: Buffer;
  /** pcapng interface id within its section (0 for pcap). */
  ifIndex: number;
  /** pcapng section number from 0 (0 for pcap). */
  section: number;
  /** pcapng: the interface the packet was captured on. */
  iface?: InterfaceInfo;
}

export interface InterfaceInfo {
  linktype: number;
  snaplen: number;
  tsUnitsPerSec: number;
  /** Seconds to add to every timestamp (if_tsoffset). */
  tsOffset: number;
  name?: string;
}

export interface CaptureInfo {
  format: CaptureFormat;
  /** pcap: byte order and precision of the file. */
  bigEndian: boolean;
  nanosecond: boolean;
  /** pcap: the file's link type; pcapng: that of the first interface (or -1 until one is seen). */
  linktype: number;
  snaplen: number;
}

export const PCAP_MAGIC_US = 0xa1b2c3d4;
export const PCAP_MAGIC_NS = 0xa1b23c4d;
export const PCAPNG_SHB = 0x0a0d0d0a;
export const PCAPNG_BOM = 0x1a2b3c4d;
export const PCAPNG_IDB = 0x00000001;
export const PCAPNG_PB = 0x00000002; // obsolete Packet Block
export const PCAPNG_SPB = 0x00000003;
export const PCAPNG_EPB = 0x00000006;

/** Refuse records beyond this: a corrupt length field must not make us allocate gigabytes. */
export const MAX_RECORD_BYTES = 64 << 20;

/** Opens a capture file, detects pcap vs pcapng, and streams its packet records. */
export class CaptureReader {
  readonly file: string;
  readonly info: CaptureInfo;
  private readonly src: ByteSource;
  /** Interfaces of the current pcapng section (a new array for each section). */
  interfaces: InterfaceInfo[] = [];
  /**
   * Set when the file ends inside a record, as a capture stopped by a kill leaves it: every
   * complete record before was yielded, and the stream ended without an error.
   */
  truncated: CaptureError | undefined;

  private constructor(file: string, src: ByteSource, info: CaptureInfo) {
    this.file = file;
    this.src = src;
    this.info = info;
  }

  static async open(file: string): Promise<CaptureReader> {
    let src: ByteSource;
    try {
      src = await ByteSource.open(file);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const what =
        code === 'ENOENT'
          ? 'no such file'
          : code === 'EISDIR' || code === 'ENOTFILE'
            ? 'not a regular file'
            : `cannot open (${code ?? String(e)})`;
      throw new CaptureError(file, 0, what);
    }
    try {
      if (!(await src.ensure(4))) throw new CaptureError(file, 0, `too short to be a capture file (${src.size} bytes)`);
      const head = src.peek(4);
      const le = head.readUInt32LE(0);
      const be = head.readUInt32BE(0);
      if (be === PCAPNG_SHB) {
        return new CaptureReader(file, src, { format: 'pcapng', bigEndian: false, nanosecond: false, linktype: -1, snaplen: 0 });
      }
      let bigEndian: boolean;
      let nanosecond: boolean;
      if (le === PCAP_MAGIC_US || le === PCAP_MAGIC_NS) {
        bigEndian = false;
        nanosecond = le === PCAP_MAGIC_NS;
      } else if (be === PCAP_MAGIC_US || be === PCAP_MAGIC_NS) {
        bigEndian = true;
        nanosecond = be === PCAP_MAGIC_NS;
      } else throw new CaptureError(file, 0, `not a pcap or pcapng file (magic 0x${be.toString(16).padStart(8, '0')})`);
      if (!(await src.ensure(24))) throw new CaptureError(file, 0, 'truncated pcap file header');
      const h = src.take(24);
      const major = bigEndian ? h.readUInt16BE(4) : h.readUInt16LE(4);
      if (major !== 2) throw new CaptureError(file, 4, `unsupported pcap version ${major}`);
      const snaplen = bigEndian ? h.readUInt32BE(16) : h.readUInt32LE(16);
      // The upper bits of the link-type field may hold FCS information (pcap spec §4).
      const linktype = (bigEndian ? h.readUInt32BE(20) : h.readUInt32LE(20)) & 0x0fffffff;
      return new CaptureReader(file, src, { format: 'pcap', bigEndian, nanosecond, linktype, snaplen });
    } catch (e) {
      await src.close();
      throw e;
    }
  }

  /** File offset reached so far (for progress). */
  get position(): number {
    return this.src.offset;
  }

  get size(): number {
    return this.src.size;
  }

  async close(): Promise<void> {
    await this.src.close();
  }

  /**
   * Streams the packet records. Throws CaptureError for a damaged file (after yielding every good
   * record before it); a file that only ends inside its last record ends the stream and sets `truncated`.
   */
  async *records(): AsyncGenerator<CaptureRecord> {
    for await (const batch of this.batches()) yield* batch;
  }

  /**
   * Streams the records in batches: all records that are complete in the current read chunk
   * come out in one array, so a consumer pays for one await per chunk rather than per packet.
   */
  batches(): AsyncGenerator<CaptureRecord[]> {
    return this.info.format === 'pcap' ? this.pcapBatches() : this.pcapngBatches();
  }

  private async *pcapBatches(): AsyncGenerator<CaptureRecord[]> {
    const src = this.src;
    const { bigEndian, nanosecond, linktype } = this.info;
    const units = nanosecond ? 1e9 : 1e6;
    let frame = 0;
    let batch: CaptureRecord[] = [];
    for (;;) {
      const at = src.offset;
      if (src.available < 16) {
        if (batch.length) {
          yield batch;
          batch = [];
        }
        if (!(await src.ensure(16))) {
          if (src.available === 0) return;
          this.truncated = new CaptureError(this.file, at, `truncated record header (${src.available} of 16 bytes)`);
          return;
        }
      }
      const h = src.peek(16);
      const caplen = bigEndian ? h.readUInt32BE(8) : h.readUInt32LE(8);
      if (caplen > MAX_RECORD_BYTES) {
        if (batch.length) yield batch;
        throw new CaptureError(this.file, at, `record of frame ${frame + 1} claims ${caplen} captured bytes (corrupt length?)`);
      }
      if (src.available < 16 + caplen) {
        if (batch.length) {
          yield batch;
          batch = [];
        }
        if (!(await src.ensure(16 + caplen))) {
          this.truncated = new CaptureError(
            this.file,
            at,
            `frame ${frame + 1} cut short: file ends after ${src.available - 16} of ${caplen} bytes`,
          );
          return;
        }
      }
      const hh = src.take(16);
      frame++;
      batch.push({
        frame,
        linktype,
        tsSec: bigEndian ? hh.readUInt32BE(0) : hh.readUInt32LE(0),
        tsFrac: bigEndian ? hh.readUInt32BE(4) : hh.readUInt32LE(4),
        tsUnitsPerSec: units,
        caplen,
        origLen: bigEndian ? hh.readUInt32BE(12) : hh.readUInt32LE(12),
        data: src.take(caplen),
        ifIndex: 0,
        section: 0,
      });
    }
  }

  private async *pcapngBatches(): AsyncGenerator<CaptureRecord[]> {
    const src = this.src;
    let bigEndian = false;
    let frame = 0;
    let section = -1;
    let ifs = this.interfaces;
    let batch: CaptureRecord[] = [];
    // Errors are thrown after the records read so far have been handed out.
    const fail = (offset: number, what: string): CaptureError => new CaptureError(this.file, offset, what);
    try {
      for (;;) {
        const at = src.offset;
        if (src.available < 12) {
          if (batch.length) {
            yield batch;
            batch = [];
          }
          if (!(await src.ensure(12))) {
            if (src.available === 0) return;
            if (src.available < 8) {
              this.truncated = fail(at, `truncated block header (${src.available} of 8 bytes)`);
              return;
            }
          }
        }
        const head = src.peek(Math.min(12, src.available));
        const rawType = head.readUInt32BE(0);
        if (rawType === PCAPNG_SHB) {
          // The byte-order magic decides how this section (and this block's length) is read.
          if (head.length < 12) throw fail(at, 'truncated section header block');
          if (head.readUInt32LE(8) === PCAPNG_BOM) bigEndian = false;
          else if (head.readUInt32BE(8) === PCAPNG_BOM) bigEndian = true;
          else throw fail(at + 8, 'section header block with a bad byte-order magic');
          section++;
          if (section > 0) ifs = this.interfaces = [];
        } else if (section < 0) {
          throw fail(at, 'pcapng file does not start with a section header block');
        }
        const type = bigEndian ? head.readUInt32BE(0) : head.readUInt32LE(0);
        const total = bigEndian ? head.readUInt32BE(4) : head.readUInt32LE(4);
        if (total < 12 || total % 4 !== 0) throw fail(at, `block of type 0x${type.toString(16)} has invalid length ${total}`);
        if (total > MAX_RECORD_BYTES) throw fail(at, `block of type 0x${type.toString(16)} claims ${total} bytes (corrupt length?)`);
        if (src.available < total) {
          if (batch.length) {
            yield batch;
            batch = [];
          }
          if (!(await src.ensure(total))) {
            this.truncated = fail(at, `block of type 0x${type.toString(16)} cut short: file ends after ${src.available} of ${total} bytes`);
            return;
          }
        }
        const b = src.take(total);
        const u32 = (o: number): number => (bigEndian ? b.readUInt32BE(o) : b.readUInt32LE(o));
        const u16 = (o: number): number => (bigEndian ? b.readUInt16BE(o) : b.readUInt16LE(o));
        if (u32(total - 4) !== total)
          throw fail(at + total - 4, `block of type 0x${type.toString(16)}: trailing length ${u32(total - 4)} differs from ${total}`);
        const bodyEnd = total - 4;
        if (type === PCAPNG_SHB) {
          if (total < 28) throw fail(at, 'section header block too short');
          const major = u16(12);
          if (major !== 1) throw fail(at + 12, `unsupported pcapng version ${major}`);
          continue;
        }
        if (type === PCAPNG_IDB) {
          if (total < 20) throw fail(at, 'interface description block too short');
          const info: InterfaceInfo = { linktype: u16(8), snaplen: u32(12), tsUnitsPerSec: 1e6, tsOffset: 0 };
          // Options: code(2) length(2) value padded to 4.
          for (let o = 16; o + 4 <= bodyEnd; ) {
            const code = u16(o);
            const len = u16(o + 2);
            if (code === 0) break;
            if (o + 4 + len > bodyEnd) throw fail(at + o, 'interface option runs past its block');
            if (code === 9 && len >= 1) {
              const r = b[o + 4]!;
              if ((r & 0x80 && (r & 0x7f) > 52) || (!(r & 0x80) && r > 15))
                throw fail(at + o, `unsupported timestamp resolution 0x${r.toString(16)}`);
              info.tsUnitsPerSec = r & 0x80 ? 2 ** (r & 0x7f) : 10 ** r;
            } else if (code === 14 && len >= 8) {
              info.tsOffset = Number(bigEndian ? b.readBigInt64BE(o + 4) : b.readBigInt64LE(o + 4));
            } else if (code === 2 && len > 0) {
              info.name = b.toString('utf8', o + 4, o + 4 + len).replace(/\0+$/, '');
            }
            o += 4 + ((len + 3) & ~3);
          }
          ifs.push(info);
          if (this.info.linktype < 0) {
            this.info.linktype = info.linktype;
            this.info.snaplen = info.snaplen;
          }
          continue;
        }
        if (type !== PCAPNG_EPB && type !== PCAPNG_PB && type !== PCAPNG_SPB) continue; // other blocks: skipped
        let ifIndex: number;
        let tsHi: number;
        let tsLo: number;
        let caplen: number;
        let origLen: number;
        let dataOff: number;
        if (type === PCAPNG_EPB || type === PCAPNG_PB) {
          if (total < 32) throw fail(at, 'packet block too short');
          ifIndex = type === PCAPNG_EPB ? u32(8) : u16(8);
          tsHi = u32(12);
          tsLo = u32(16);
          caplen = u32(20);
          origLen = u32(24);
          dataOff = 28;
          if (dataOff + caplen > bodyEnd) throw fail(at, `packet block: captured length ${caplen} exceeds the block`);
        } else {
          // Simple Packet Block: interface 0, no timestamp; captured length is what fits.
          if (total < 16) throw fail(at, 'simple packet block too short');
          ifIndex = 0;
          tsHi = 0;
          tsLo = 0;
          origLen = u32(8);
          dataOff = 12;
          caplen = Math.min(origLen, bodyEnd - dataOff, ifs[0] && ifs[0].snaplen > 0 ? ifs[0].snaplen : Infinity);
        }
        const iface = ifs[ifIndex];
        if (!iface) throw fail(at, `packet block refers to interface ${ifIndex}, but the section has ${ifs.length}`);
        const units = iface.tsUnitsPerSec;
        let tsSec: number;
        let tsFrac: number;
        const ts = tsHi * 4294967296 + tsLo;
        if (ts <= Number.MAX_SAFE_INTEGER) {
          tsSec = Math.floor(ts / units);
          tsFrac = ts - tsSec * units;
        } else {
          const big = (BigInt(tsHi) << 32n) | BigInt(tsLo);
          const ub = BigInt(units);
          tsSec = Number(big / ub);
          tsFrac = Number(big % ub);
        }
        tsSec += iface.tsOffset;
        frame++;
        batch.push({
          frame,
          linktype: iface.linktype,
          tsSec,
          tsFrac,
          tsUnitsPerSec: units,
          caplen,
          origLen,
          data: b.subarray(dataOff, dataOff + caplen),
          ifIndex,
          section,
          iface,
        });
      }
    } catch (e) {
      if (batch.length) yield batch;
      throw e;
    }
  }
}

/** Convenience: streams the records of a file and closes it afterwards. */
export async function* readCapture(file: string): AsyncGenerator<CaptureRecord, void, undefined> {
  const r = await CaptureReader.open(file);
  try {
    yield* r.records();
  } finally {
    await r.close();
  }
}
