// Chunked reading of a file from front to back. Each refill reads into a NEW buffer, so the
// subarrays handed out earlier stay valid for as long as their holder keeps them, and the whole
// file is never in memory at once.
import { open, type FileHandle } from 'node:fs/promises';

export const CHUNK_BYTES = 1 << 20;

export class ByteSource {
  private fh: FileHandle;
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  private bufFileOffset = 0; // file offset of buf[0]
  private eof = false;
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

  /** Makes n bytes available; false if the file ends first (the available bytes stay readable). */
  async ensure(n: number): Promise<boolean> {
    while (this.buf.length - this.pos < n) {
      if (this.eof) return false;
      const avail = this.buf.length - this.pos;
      const next = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, n));
      this.buf.copy(next, 0, this.pos);
      const { bytesRead } = await this.fh.read(next, avail, next.length - avail, this.offset + avail);
      if (bytesRead === 0) this.eof = true;
      this.bufFileOffset += this.pos;
      this.buf = next.subarray(0, avail + bytesRead);
      this.pos = 0;
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
    await this.fh.close();
  }
}
