// Chunked reading of a file from front to back, with one chunk read ahead so that parsing and
// reading overlap. Each chunk lands in a NEW buffer, so subarrays handed out earlier stay valid
// for as long as their holder keeps them, and the whole file is never in memory at once.
import { open, type FileHandle } from 'node:fs/promises';

export const CHUNK_BYTES = 1 << 20;
/** Space kept in front of each chunk for the unread tail of the previous one (a partial record). */
const HEADROOM = 64 << 10;

interface Chunk {
  buf: Buffer; // HEADROOM + data
  len: number; // data bytes read
}

export class ByteSource {
  private fh: FileHandle;
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private bufFileOffset = 0; // file offset of buf[0]
  private eof = false;
  private ahead: Promise<Chunk> | undefined;
  readonly size: number;

  private constructor(fh: FileHandle, size: number) {
    this.fh = fh;
    this.size = size;
  }

  static async open(path: string): Promise<ByteSource> {
    const fh = await open(path, 'r');
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'ENOTFILE' });
      return new ByteSource(fh, st.size);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** File offset of the next unread byte. */
  get offset(): number {
    return this.bufFileOffset + this.pos;
  }

  /** Bytes available without another read. */
  get available(): number {
    return this.buf.length - this.pos;
  }

  private async readChunk(at: number, len: number): Promise<Chunk> {
    const buf = Buffer.allocUnsafe(HEADROOM + len);
    let got = 0;
    while (got < len) {
      const { bytesRead } = await this.fh.read(buf, HEADROOM + got, len - got, at + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return { buf, len: got };
  }

  /** Makes n bytes available; false if the file ends first (the available bytes stay readable). */
  async ensure(n: number): Promise<boolean> {
    while (this.buf.length - this.pos < n) {
      if (this.eof) return false;
      const avail = this.buf.length - this.pos;
      const fileEnd = this.bufFileOffset + this.buf.length;
      const want = Math.max(CHUNK_BYTES, n - avail);
      const chunk = this.ahead ? await this.ahead : await this.readChunk(fileEnd, want);
      this.ahead = undefined;
      if (chunk.len === 0) {
        this.eof = true;
        continue;
      }
      let next: Buffer;
      if (avail <= HEADROOM) {
        this.buf.copy(chunk.buf, HEADROOM - avail, this.pos);
        next = chunk.buf.subarray(HEADROOM - avail, HEADROOM + chunk.len);
      } else {
        next = Buffer.concat([this.buf.subarray(this.pos), chunk.buf.subarray(HEADROOM, HEADROOM + chunk.len)]);
      }
      this.bufFileOffset += this.pos;
      this.buf = next;
      this.pos = 0;
      const end = this.bufFileOffset + this.buf.length;
      if (end < this.size) {
        const p = this.readChunk(end, CHUNK_BYTES);
        p.catch(() => undefined); // surfaced when awaited
        this.ahead = p;
      } else if (chunk.len < want) {
        this.eof = true;
      }
    }
    return true;
  }

  /** The next n bytes (must have been ensured), as a view; advances. */
  take(n: number): Buffer {
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  /** Looks at the next n bytes (must have been ensured) without advancing. */
  peek(n: number): Buffer {
    return this.buf.subarray(this.pos, this.pos + n);
  }

  /** Skips n bytes, reading as needed; false if the file ends first. */
  async skip(n: number): Promise<boolean> {
    while (n > 0) {
      if (this.available === 0 && !(await this.ensure(1))) return false;
      const k = Math.min(n, this.available);
      this.pos += k;
      n -= k;
    }
    return true;
  }

  async close(): Promise<void> {
    if (this.ahead) await this.ahead.catch(() => undefined);
    await this.fh.close();
  }
}
