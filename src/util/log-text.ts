// `--log-format text`: each pino JSON line as one line for a terminal, written by the same
// non-blocking sink (log.ts). Hand-written instead of pino-pretty: pino-pretty brings a dozen
// packages and runs as a transport in a worker thread of its own, while this is a pure
// function of one line (the lines are already rate-limited where they could be many).
//
//   2025-01-02T03:04:05.678Z INFO  labelwall-agent[42]: agent: running event=started queues=[100]

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

function value(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=\\]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

/** One JSON log line (pino's) as text, newline included; a line that is not JSON stays as it is. */
export function formatTextLine(line: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  if (o === null || typeof o !== 'object') return line.endsWith('\n') ? line : `${line}\n`;
  const { level, time, pid, name, msg, ...rest } = o;
  const t = typeof time === 'number' ? new Date(time).toISOString() : String(time ?? '');
  const lv = (LEVELS[level as number] ?? String(level ?? '')).padEnd(5);
  const who = `${String(name ?? 'labelwall')}${pid !== undefined ? `[${String(pid)}]` : ''}`;
  const fields = Object.entries(rest).map(([k, v]) => `${k}=${value(v)}`);
  return `${[t, lv, `${who}:`, String(msg ?? ''), ...fields].filter((x) => x !== '').join(' ')}\n`;
}
