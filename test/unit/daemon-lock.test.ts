// The instance lock: one holder per role (and network namespace), released by close or exit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { acquireInstanceLock, LockHeldError, lockPath } from '../../src/daemon/lock.js';

test("instance lock: a second holder is refused with the first one's pid; released, it can be taken again", () => {
  const dir = mkdtempSync(join(tmpdir(), 'lw-lock-'));
  try {
    const a = acquireInstanceLock('verifier', 'owner-a', dir);
    const info = JSON.parse(readFileSync(lockPath('verifier', dir), 'utf8')) as { pid: number; owner: string };
    assert.equal(info.pid, process.pid);
    assert.equal(info.owner, 'owner-a');
    assert.throws(
      () => acquireInstanceLock('verifier', 'owner-b', dir),
      (e: unknown) => e instanceof LockHeldError && e.holder.pid === process.pid && /pid \d+/.test(e.message),
    );
    const other = acquireInstanceLock('agent', 'owner-c', dir); // roles do not share a lock
    other.release();
    a.release({ unlink: true });
    assert.equal(existsSync(lockPath('verifier', dir)), false);
    const b = acquireInstanceLock('verifier', 'owner-b', dir);
    b.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
