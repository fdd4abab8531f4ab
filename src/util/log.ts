// JSON-lines logging (pino) to stderr or a file. Keys are never passed to the logger: LabelKey
// serialises to its fingerprint only.
//
// Logging never blocks the datapath or the control plane: lines go into a bounded buffer that
// is written with asynchronous writes (libuv's thread pool, never the main thread) to a file
// opened with O_NONBLOCK. What cannot be written (disk full, I/O error, a reader that does not
// read) is dropped and counted (`log` in `labelwall status`), and stderr says so once per
// episode. A log file that cannot be opened at start is a usage error (LogFileError).
import * as fs from 'node:fs';
import { dirname } from 'node:path';
import { pino, type Logger } from 'pino';
import { formatTextLine } from './log-text.js';

export type { Logger };

/** Lines waiting to be written, at most; past it new lines are dropped (and counted). */
export const LOG_BUFFER_BYTES = 4 << 20;
/** After a failed write, the next attempt waits this long (ms). */
const RETRY_MS = 1000;
/** Between two "cannot write" notices on stderr, at least (ms). */
const NOTICE_EVERY_MS = 60_000;

export interface LogStats {
  /** Where lines go: the file, or "stderr". */
  destination: string;
  /** Lines dropped because they could not be written (or the buffer was full). */
  dropped: number;
  droppedBytes: number;
  /** Last write error (errno code), if any. */
  lastError?: string;
  /** Bytes waiting to be written. */
  pendingBytes: number;
}

export class LogFileError extends Error {
  constructor(file: string, reason: string) {
    super(`log file ${file}: ${reason}`);
    this.name = 'LogFileError';
  }
}

function countLines(b: Buffer): number {
  let n = 0;
  for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) n++;
  return n || 1;
}

/** A pino destination that never blocks its caller; see the top of this file. */
export class LogSink {
  private pending: string[] = [];
  private pendingBytes = 0;
  /** The unwritten rest of a partial write, written before `pending`. */
  private head: Buffer | undefined;
  private writing = false;
  private timer: NodeJS.Timeout | undefined;
  private failing = false;
  private lastNotice = -Infinity;
  private readonly flushWaiters: Array<() => void> = [];
  readonly stats: LogStats;

  constructor(
    private readonly fd: number,
    destination: string,
    private readonly maxBuffer = LOG_BUFFER_BYTES,
    /** Where "cannot write" notices go; undefined when the sink is stderr itself. */
    private readonly notice: ((line: string) => void) | undefined = (line) => fs.write(2, line, () => undefined),
  ) {
    this.stats = { destination, dropped: 0, droppedBytes: 0, pendingBytes: 0 };
  }

  write(s: string): boolean {
    if (this.pendingBytes + s.length > this.maxBuffer) {
      this.stats.dropped++;
      this.stats.droppedBytes += Buffer.byteLength(s);
      return true;
    }
    this.pending.push(s);
    this.pendingBytes += s.length;
    this.stats.pendingBytes = this.pendingBytes + (this.head?.length ?? 0);
    if (!this.writing && this.timer === undefined) this.kick();
    return true;
  }

  /** Calls cb once everything buffered so far was written or dropped (pino's logger.flush). */
  flush(cb?: (err?: Error) => void): void {
    if (!this.writing && this.timer === undefined && this.pending.length === 0 && this.head === undefined) {
      cb?.();
      return;
    }
    if (cb) this.flushWaiters.push(() => cb());
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.kick();
    }
  }

  /** At process exit: one last non-waiting attempt to write what is buffered. */
  flushAtExit(): void {
    if (this.writing) return; // a write is in flight in the thread pool: writing now would reorder lines
    const buf = this.take();
    if (buf === undefined) return;
    try {
      fs.writeSync(this.fd, buf);
    } catch {
      /* exiting: nothing more to do */
    }
  }

  private take(): Buffer | undefined {
    if (this.pending.length === 0 && this.head === undefined) return undefined;
    const parts = this.pending.length > 0 ? [Buffer.from(this.pending.join(''))] : [];
    const buf = this.head ? Buffer.concat([this.head, ...parts]) : parts[0]!;
    this.pending = [];
    this.pendingBytes = 0;
    this.head = undefined;
    this.stats.pendingBytes = 0;
    return buf;
  }

  private kick(): void {
    this.timer = undefined;
    const buf = this.take();
    if (buf === undefined) {
      for (const w of this.flushWaiters.splice(0)) w();
      return;
    }
    this.writing = true;
    fs.write(this.fd, buf, 0, buf.length, null, (err, written) => {
      this.writing = false;
      if (err) {
        if (err.code === 'EAGAIN') {
          // A pipe or FIFO whose reader is slow: keep the bytes, try again shortly (the buffer bound applies).
          this.head = buf; // take() emptied head; buf is older than what is pending
          this.stats.pendingBytes = this.pendingBytes + this.head.length;
          if (this.stats.pendingBytes > this.maxBuffer) this.drop(this.take()!, 'EAGAIN');
          this.timer = setTimeout(() => this.kick(), 100);
          this.timer.unref();
          return;
        }
        this.drop(buf, err.code ?? 'error');
        this.timer = setTimeout(() => this.kick(), RETRY_MS);
        this.timer.unref();
        for (const w of this.flushWaiters.splice(0)) w();
        return;
      }
      if (this.failing) {
        this.failing = false;
        this.notice?.(`labelwall: ${this.stats.destination}: writing log lines again (${this.stats.dropped} dropped so far)\n`);
      }
      if (written < buf.length) this.head = buf.subarray(written);
      this.kick();
    });
  }

  private drop(buf: Buffer, code: string): void {
    this.stats.dropped += countLines(buf);
    this.stats.droppedBytes += buf.length;
    this.stats.lastError = code;
    const now = Date.now();
    if (!this.failing && now - this.lastNotice >= NOTICE_EVERY_MS) {
      this.lastNotice = now;
      this.notice?.(
        `labelwall: ${this.stats.destination}: cannot write log lines (${code}); dropping and counting them (labelwall status: log.dropped) until it can\n`,
      );
    }
    this.failing = true;
  }
}

/**
 * mkdir -p, one level at a time: Node's mkdirSync({ recursive: true }) never returns when mkdir
 * answers ENOENT for a folder whose parent exists (under /proc, for one).
 */
function makeDirs(dir: string, depth = 0): void {
  try {
    fs.mkdirSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    const parent = dirname(dir);
    if (code !== 'ENOENT' || parent === dir || depth > 64) throw e;
    makeDirs(parent, depth + 1);
    fs.mkdirSync(dir);
  }
}

const sinks = new WeakMap<Logger, LogSink>();

/** Opens the destination: the file (appended to, created 0640, its folder created), or stderr. */
function openSink(file: string | undefined): LogSink {
  if (file === undefined) {
    // A pipe on stderr gets a descriptor of its own with O_NONBLOCK (reopened through /proc),
    // so a reader that stops reading cannot stall a write; the shared descriptor keeps its flags.
    let fd = 2;
    try {
      if (fs.fstatSync(2).isFIFO()) fd = fs.openSync('/proc/self/fd/2', fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    } catch {
      fd = 2;
    }
    return new LogSink(fd, 'stderr', LOG_BUFFER_BYTES, undefined);
  }
  try {
    makeDirs(dirname(file));
  } catch (e) {
    throw new LogFileError(file, `cannot create its folder (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let fd: number;
  try {
    fd = fs.openSync(
      file,
      fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY,
      0o640,
    );
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new LogFileError(file, code === 'ENXIO' ? 'a FIFO with no reader' : `cannot open for writing (${code ?? 'error'})`);
  }
  return new LogSink(fd, `log file ${file}`);
}

/**
 * A logger writing to stderr or `file` only (never stdout): JSON lines, or with format 'text' one
 * readable line each (log-text.ts). What is buffered is written at exit, also after a signal.
 */
export function createLogger(opts: { level?: string; file?: string; name?: string; format?: 'json' | 'text' }): Logger {
  const sink = openSink(opts.file);
  process.on('exit', () => sink.flushAtExit());
  const dest =
    opts.format === 'text'
      ? { write: (s: string): boolean => sink.write(formatTextLine(s)), flush: (cb?: (err?: Error) => void) => sink.flush(cb) }
      : sink;
  const log = pino({ level: opts.level ?? 'info', name: opts.name ?? 'labelwall', base: { pid: process.pid } }, dest);
  sinks.set(log, sink);
  return log;
}

/** Counters of the logger's destination (for `status`); undefined for a logger not made here. */
export function logStats(log: Logger): LogStats | undefined {
  const s = sinks.get(log);
  return s ? { ...s.stats } : undefined;
}
