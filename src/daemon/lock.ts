// One running instance per role and network namespace. The iptables rules of a role live in
// the namespace, so the instance that holds this lock owns them: a second instance cannot
// start (and so cannot take the rules over or delete them), and `labelwall cleanup` refuses
// while the owner lives. The lock is flock(2) on /run/labelwall/<role>.net<inode>.lock, where
// <inode> names the network namespace (/run is shared by namespaces): the kernel drops it when
// the holder dies, even by SIGKILL, so a crashed run never blocks the next one. The file holds
// the owner's pid and instance id, for messages.
import {
  closeSync,
  constants,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { errno, libc } from '../sys/libc.js';

export const RUN_DIR = '/run/labelwall';

const LOCK_EX = 2;
const LOCK_NB = 4;
const EWOULDBLOCK = 11;

function flock(fd: number, op: number): number {
  return libc().flock(fd, op);
}

/** What the lock file says about its holder. */
export interface LockHolder {
  pid?: number;
  owner?: string;
  startedAt?: string;
}

export class LockHeldError extends Error {
  constructor(
    readonly role: string,
    readonly path: string,
    readonly holder: LockHolder,
  ) {
    super(
      `another labelwall ${role}${holder.pid ? ` (pid ${holder.pid})` : ''} runs in this network namespace and owns its iptables rules`,
    );
  }
}

export interface InstanceLock {
  role: string;
  path: string;
  owner: string;
  /**
   * Gives the lock up (the kernel also does at exit); with `unlink`, first removes the file if
   * it is still ours (a waiting acquirer re-checks the path after flock, so this is safe).
   */
  release(opts?: { unlink?: boolean }): void;
}

/** A name for this process's network namespace: the inode of /proc/self/ns/net. */
export function netnsId(): string {
  return String(statSync('/proc/self/ns/net').ino);
}

export function lockPath(role: string, dir = RUN_DIR): string {
  return join(dir, `${role}.net${netnsId()}.lock`);
}

function readHolder(path: string): LockHolder {
  try {
    const j = JSON.parse(readFileSync(path, 'utf8')) as LockHolder;
    return { pid: typeof j.pid === 'number' ? j.pid : undefined, owner: j.owner, startedAt: j.startedAt };
  } catch {
    return {};
  }
}

/**
 * Takes the role's lock in this namespace without waiting, as instance `owner`; throws
 * LockHeldError when a live process holds it, or the fs error (EACCES: not root).
 */
export function acquireInstanceLock(role: string, owner: string, dir = RUN_DIR): InstanceLock {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const path = lockPath(role, dir);
  for (let attempt = 0; ; attempt++) {
    const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o644);
    if (flock(fd, LOCK_EX | LOCK_NB) !== 0) {
      const e = errno();
      closeSync(fd);
      if (e === EWOULDBLOCK) throw new LockHeldError(role, path, readHolder(path));
      throw new Error(`flock ${path}: errno ${e}`);
    }
    // Locked, but the path may have been replaced between open and flock: lock what it names now.
    let same = false;
    try {
      same = statSync(path).ino === fstatSync(fd).ino;
    } catch {
      same = false;
    }
    if (!same) {
      closeSync(fd);
      if (attempt < 3) continue;
      throw new Error(`${path} keeps changing: cannot lock it`);
    }
    ftruncateSync(fd, 0);
    writeSync(fd, `${JSON.stringify({ pid: process.pid, owner, role, startedAt: new Date().toISOString() })}\n`, 0);
    let open = true;
    return {
      role,
      path,
      owner,
      release(o = {}): void {
        if (!open) return;
        if (o.unlink) {
          try {
            if (statSync(path).ino === fstatSync(fd).ino) unlinkSync(path);
          } catch {
            // gone already
          }
        }
        closeSync(fd); // closing the only descriptor drops the flock
        open = false;
      },
    };
  }
}
