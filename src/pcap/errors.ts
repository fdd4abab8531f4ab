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
