// JSON-lines logging (pino) to stderr or a file. Keys are never passed to the logger: LabelKey
// serialises to its fingerprint only.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(opts: { level?: string; file?: string; name?: string }): Logger {
  const dest = opts.file ? pino.destination({ dest: opts.file, append: true, mkdir: true, sync: false }) : pino.destination(2);
  return pino({ level: opts.level ?? 'info', name: opts.name ?? 'labelwall', base: { pid: process.pid } }, dest);
}
