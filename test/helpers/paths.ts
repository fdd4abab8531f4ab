// Paths the helpers need, resolved from this file so they work from src (tsx) or dist alike.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'test', 'peers'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the labelwall repository root from ' + import.meta.url);
    dir = up;
  }
}

/** Repository root (holds package.json). */
export const REPO_ROOT = findRepoRoot();
/** Python peer scripts. */
export const PEERS_DIR = join(REPO_ROOT, 'test', 'peers');
/** The Debian interpreter that has flask, scapy and paramiko (the pyenv `python3` on PATH lacks them). */
export const PYTHON = '/usr/bin/python3';

/** Absolute path of a peer script, e.g. peer('http_server.py'). */
export function peer(script: string): string {
  return join(PEERS_DIR, script);
}
