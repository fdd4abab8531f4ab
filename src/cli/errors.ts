// CLI exit codes and the error type commands throw to end with a one-line message.
export const EXIT_OK = 0;
/** Something was found wrong in the input (invalid or malformed packets). */
export const EXIT_FOUND = 1;
/** Usage, file or key error. */
export const EXIT_USAGE = 2;
/** stdout or stderr cannot be written (ENOSPC, EIO, ...; sysexits' EX_IOERR). A reader gone away (EPIPE) is 141. */
export const EXIT_IOERR = 74;
/** Output closed by its reader (EPIPE): as if killed by SIGPIPE (128 + 13). */
export const EXIT_PIPE = 141;

/** Thrown by a command to stop with `labelwall: <message>` on stderr and the given exit code. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = EXIT_USAGE) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}
