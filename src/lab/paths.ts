// Paths the lab needs, resolved from this file so they work from a clone and from the installed
// package alike (both hold package.json, bin/ and lab/peers/ at the root; tsc output in dist/).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'lab', 'peers'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the labelwall repository root from ${import.meta.url}`);
    dir = up;
  }
}

/** Repository (or package) root: holds package.json, bin/ and lab/peers/. */
export const REPO_ROOT = findRepoRoot();
/** Python peer scripts the lab runs (flask, paramiko, scapy, ...). */
export const PEERS_DIR = join(REPO_ROOT, 'lab', 'peers');
/** The Debian interpreter that has flask, scapy and paramiko (the pyenv `python3` on PATH lacks them). */
export const PYTHON = '/usr/bin/python3';

/** Absolute path of a peer script, e.g. peer('http_server.py'). */
export function peer(script: string): string {
  return join(PEERS_DIR, script);
}
