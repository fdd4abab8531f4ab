// Peers only the tests run (test/peers); the lab's peers and paths are in src/lab/paths.ts.
import { join } from 'node:path';
import { REPO_ROOT } from '../../src/lab/paths.js';

/** Python scripts only the tests run (segstream.py, inspector_probe.py, icmp.py, replay.py). */
export const TEST_PEERS_DIR = join(REPO_ROOT, 'test', 'peers');

/** Absolute path of a test-only peer script, e.g. testPeer('segstream.py'). */
export function testPeer(script: string): string {
  return join(TEST_PEERS_DIR, script);
}
