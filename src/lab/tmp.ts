// Temporary directories removed at process exit (tests write keys, plans, bodies there).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dirs: string[] = [];
let hooked = false;

/** A fresh directory under the OS tmp dir, removed when the process exits. */
export function makeTempDir(prefix = 'lw-e2e-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const x of dirs) rmSync(x, { recursive: true, force: true });
    });
  }
  return d;
}
