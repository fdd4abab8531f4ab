// Reading the files an operator names (key files, config files) without letting the file decide
// how long we wait or how much memory we take: only regular files, opened with O_NONBLOCK (a
// FIFO or a device does not block the open), checked with fstat on the open descriptor (the
// checked file is the file read), and at most `maxBytes` (checked again while reading, since
// the file may grow).
import * as fs from 'node:fs';

export type ReadFileErrorCode = 'missing' | 'unreadable' | 'not-a-file' | 'too-large';

export class ReadFileError extends Error {
  readonly code: ReadFileErrorCode;
  constructor(code: ReadFileErrorCode, message: string) {
    super(message);
    this.name = 'ReadFileError';
    this.code = code;
  }
}

/** What a stat says a path is, for messages ("a FIFO", "a character device", ...). */
export function describeFileType(st: fs.Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

export function formatBytes(n: number): string {
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n / (1 << 20)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}

/**
 * Reads a regular file of at most maxBytes. `check` sees the fstat of the open descriptor
 * before anything is read (owner and mode checks). Throws ReadFileError with a message that
 * does not repeat the path (callers add it), or what `check` throws.
 */
export function readRegularFile(path: string, maxBytes: number, check?: (st: fs.Stats) => void): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ReadFileError('missing', 'no such file');
    throw new ReadFileError('unreadable', `cannot open (${code ?? 'error'})`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new ReadFileError('not-a-file', `not a regular file (${describeFileType(st)})`);
    if (st.size > maxBytes) throw new ReadFileError('too-large', `too large: ${st.size} bytes, at most ${formatBytes(maxBytes)}`);
    check?.(st);
    const buf = Buffer.alloc(maxBytes + 1);
    let n = 0;
    for (;;) {
      let r: number;
      try {
        r = fs.readSync(fd, buf, n, buf.length - n, null);
      } catch (e) {
        throw new ReadFileError('unreadable', `cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      if (r === 0) break;
      n += r;
      if (n > maxBytes) throw new ReadFileError('too-large', `too large: more than ${formatBytes(maxBytes)}`);
    }
    const out = Buffer.from(buf.subarray(0, n));
    buf.fill(0); // may hold a key
    return out;
  } finally {
    fs.closeSync(fd);
  }
}
