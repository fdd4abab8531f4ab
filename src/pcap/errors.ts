// A problem with a capture file: names the file, what is wrong and the byte offset, so the
// CLI can print one line instead of a stack trace.
export class CaptureError extends Error {
  readonly file: string;
  readonly offset: number;
  constructor(file: string, offset: number, what: string) {
    super(`${file}: ${what} (at byte offset ${offset})`);
    this.name = 'CaptureError';
    this.file = file;
    this.offset = offset;
  }
}

/** The output capture cannot be created or written: names the file, not a byte offset. */
export class OutputError extends Error {
  readonly file: string;
  constructor(file: string, what: string, cause: unknown) {
    const e = cause as NodeJS.ErrnoException;
    // "ENOSPC: no space left on device, write" -> "ENOSPC: no space left on device"
    const reason =
      typeof e?.message === 'string' ? e.message.replace(/, (write|open) '.*'$|, (write|open|close|fsync)$/, '') : String(cause);
    super(`${file}: ${what}: ${reason}`);
    this.name = 'OutputError';
    this.file = file;
  }
}
