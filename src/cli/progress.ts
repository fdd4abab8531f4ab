// A progress bar on stderr, only when stderr is a terminal (never in pipes, logs or tests).
import cliProgress from 'cli-progress';

export interface ProgressSink {
  update(position: number, size: number): void;
  stop(): void;
}

const NONE: ProgressSink = { update: () => {}, stop: () => {} };

/** Returns a sink that draws a bar for files of at least minBytes when stderr is a TTY. */
export function progressBar(label: string, size: number, minBytes = 8 << 20): ProgressSink {
  if (!process.stderr.isTTY || size < minBytes) return NONE;
  const bar = new cliProgress.SingleBar(
    { stream: process.stderr, format: `${label} [{bar}] {percentage}% | {mb}/{totalmb} MB`, hideCursor: true, clearOnComplete: true },
    cliProgress.Presets.shades_classic,
  );
  const mb = (n: number): string => (n / 1e6).toFixed(0);
  bar.start(size, 0, { mb: '0', totalmb: mb(size) });
  return {
    update: (pos) => bar.update(pos, { mb: mb(pos), totalmb: mb(size) }),
    stop: () => bar.stop(),
  };
}
