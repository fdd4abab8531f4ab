// A problem with a capture file: names the file, what is wrong and the byte offset, so the
// CLI can print one line instead of a stack trace.
import { describeErrno } from '../util/errno.js';
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
    super(`${file}: ${what}: ${describeErrno(cause)}`);
    this.name = 'OutputError';
    this.file = file;
  }
}
