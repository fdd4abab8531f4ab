// eBPF fast path for attribution: tiny cgroup programs record, per socket cookie, the process
// that created the socket (inet sock_create) and the last process that connected it or sent an
// unconnected UDP datagram (connect4/6, sendmsg4/6). sock_diag reports the cookie of a flow's
// socket, so the sender is known without scanning /proc. Programs are attached through
// bpf links to the cgroup v2 root: they detach when the links are closed or the process dies.
//
// Hand-assembled bytecode, loaded with the bpf(2) syscall through koffi; no BTF needed.
import { readFileSync, openSync, closeSync, mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { libc, nativeAlloc, errno, describeErrno, type NativeBuf } from '../sys/libc.js';

const SYS_bpf = 321; // x86_64
const BPF_MAP_CREATE = 0;
const BPF_MAP_LOOKUP_ELEM = 1;
const BPF_PROG_LOAD = 5;
const BPF_PROG_GET_NEXT_ID = 11;
const BPF_PROG_GET_FD_BY_ID = 13;
const BPF_OBJ_GET_INFO_BY_FD = 15;
const BPF_LINK_CREATE = 28;
const BPF_MAP_TYPE_LRU_HASH = 9;
const BPF_PROG_TYPE_CGROUP_SOCK = 9;
const BPF_PROG_TYPE_CGROUP_SOCK_ADDR = 18;
const BPF_CGROUP_INET_SOCK_CREATE = 2;
const BPF_CGROUP_INET4_CONNECT = 10;
const BPF_CGROUP_INET6_CONNECT = 11;
const BPF_CGROUP_UDP4_SENDMSG = 14;
const BPF_CGROUP_UDP6_SENDMSG = 15;
const FN_map_update_elem = 2;
const FN_get_current_pid_tgid = 14;
const FN_get_socket_cookie = 46;

const ATTR_SIZE = 128;

function bpf(cmd: number, attr: NativeBuf): number {
  return libc().syscall(SYS_bpf, cmd, attr.ptr, ATTR_SIZE);
}

export class BpfError extends Error {
  constructor(
    readonly what: string,
    readonly errno: number,
    readonly log?: string,
  ) {
    super(`bpf ${what}: ${describeErrno(errno)}${log ? `\n${log}` : ''}`);
  }
}

function insn(code: number, dst: number, src: number, off: number, imm: number): Buffer {
  const b = Buffer.alloc(8);
  b[0] = code;
  b[1] = (src << 4) | dst;
  b.writeInt16LE(off, 2);
  b.writeInt32LE(imm, 4);
  return b;
}

/** cookie -> current tgid into `mapFd`; returns 1 (allow). ctx in r1 for both program types. */
export function recorderProgram(mapFd: number): Buffer {
  return Buffer.concat([
    insn(0xbf, 6, 1, 0, 0), // r6 = r1 (ctx)
    insn(0x85, 0, 0, 0, FN_get_socket_cookie), // r0 = bpf_get_socket_cookie(ctx)
    insn(0x7b, 10, 0, -8, 0), // *(u64 *)(r10 - 8) = r0
    insn(0x85, 0, 0, 0, FN_get_current_pid_tgid), // r0 = pid_tgid
    insn(0x77, 0, 0, 0, 32), // r0 >>= 32 (tgid)
    insn(0x63, 10, 0, -12, 0), // *(u32 *)(r10 - 12) = r0
    insn(0x18, 1, 1, 0, mapFd), // r1 = map (BPF_PSEUDO_MAP_FD)
    insn(0x00, 0, 0, 0, 0),
    insn(0xbf, 2, 10, 0, 0), // r2 = r10
    insn(0x07, 2, 0, 0, -8), // r2 += -8   (&key)
    insn(0xbf, 3, 10, 0, 0), // r3 = r10
    insn(0x07, 3, 0, 0, -12), // r3 += -12 (&value)
    insn(0xb7, 4, 0, 0, 0), // r4 = BPF_ANY
    insn(0x85, 0, 0, 0, FN_map_update_elem),
    insn(0xb7, 0, 0, 0, 1), // r0 = 1: let the operation proceed
    insn(0x95, 0, 0, 0, 0), // exit
  ]);
}

function createMap(maxEntries: number, name: string): number {
  const a = nativeAlloc(ATTR_SIZE);
  try {
    a.buf.writeUInt32LE(BPF_MAP_TYPE_LRU_HASH, 0);
    a.buf.writeUInt32LE(8, 4); // key: u64 cookie
    a.buf.writeUInt32LE(4, 8); // value: u32 tgid
    a.buf.writeUInt32LE(maxEntries, 12);
    a.buf.write(name.slice(0, 15), 28, 'latin1');
    const fd = bpf(BPF_MAP_CREATE, a);
    if (fd < 0) throw new BpfError('map create', errno());
    return fd;
  } finally {
    a.free();
  }
}

function loadProgram(progType: number, attachType: number, code: Buffer, name: string): number {
  const a = nativeAlloc(ATTR_SIZE);
  const insns = nativeAlloc(code.length);
  const license = nativeAlloc(8);
  const log = nativeAlloc(8192);
  try {
    code.copy(insns.buf);
    license.buf.write('GPL\0', 0, 'latin1');
    a.buf.writeUInt32LE(progType, 0);
    a.buf.writeUInt32LE(code.length / 8, 4);
    a.buf.writeBigUInt64LE(insns.ptr, 8);
    a.buf.writeBigUInt64LE(license.ptr, 16);
    a.buf.writeUInt32LE(1, 24); // log_level
    a.buf.writeUInt32LE(8192, 28);
    a.buf.writeBigUInt64LE(log.ptr, 32);
    a.buf.write(name.slice(0, 15), 48, 'latin1');
    a.buf.writeUInt32LE(attachType, 68); // expected_attach_type
    const fd = bpf(BPF_PROG_LOAD, a);
    if (fd < 0) {
      const e = errno();
      const text = log.buf.toString('latin1').replace(/\0[\s\S]*$/, '');
      throw new BpfError(`prog load ${name}`, e, text);
    }
    return fd;
  } finally {
    a.free();
    insns.free();
    license.free();
    log.free();
  }
}

function linkCgroup(progFd: number, cgroupFd: number, attachType: number): number {
  const a = nativeAlloc(ATTR_SIZE);
  try {
    a.buf.writeUInt32LE(progFd, 0);
    a.buf.writeUInt32LE(cgroupFd, 4);
    a.buf.writeUInt32LE(attachType, 8);
    const fd = bpf(BPF_LINK_CREATE, a);
    if (fd < 0) throw new BpfError('link create', errno());
    return fd;
  } finally {
    a.free();
  }
}

/** Mount point of the cgroup v2 hierarchy (pure v2 or the "unified" mount of a hybrid setup). */
export function cgroup2Root(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string | undefined {
  for (const line of mountinfo.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const fstype = line.slice(sep + 3).split(' ')[0];
    if (fstype === 'cgroup2') return line.split(' ')[4];
  }
  return undefined;
}

const MNT_DETACH = 2;

/**
 * An open fd on the cgroup v2 root. `ip netns exec` remounts /sys in a private mount
 * namespace, hiding the host's cgroup mounts; then cgroup2 is mounted on a temporary
 * directory just long enough to open it (the mount is detached at once).
 */
export function openCgroup2Root(): number {
  const root = cgroup2Root();
  if (root !== undefined) return openSync(root, 'r');
  const { mount, umount2 } = libc();
  const dir = mkdtempSync(join(tmpdir(), 'lw-cgroup2-'));
  try {
    if (mount('none', dir, 'cgroup2', 0, null) < 0) throw new BpfError('mount cgroup2', errno());
    try {
      return openSync(dir, 'r');
    } finally {
      umount2(dir, MNT_DETACH);
    }
  } finally {
    rmdirSync(dir);
  }
}

export interface SocketOwners {
  /** tgid of the process that created the socket. */
  creator?: number;
  /** tgid of the last process that connected it or sent an unconnected UDP datagram on it. */
  sender?: number;
}

/** The loaded programs and their maps; close() detaches everything. */
export class BpfSocketTracker {
  private fds: number[] = [];
  private readonly createdMap: number;
  private readonly sentMap: number;
  private readonly lookupAttr: NativeBuf;
  private readonly key: NativeBuf;
  private readonly value: NativeBuf;

  constructor(maxEntries = 65536) {
    const opened: number[] = [];
    try {
      this.createdMap = createMap(maxEntries, 'lw_created');
      opened.push(this.createdMap);
      this.sentMap = createMap(maxEntries, 'lw_sent');
      opened.push(this.sentMap);
      const cg = openCgroup2Root();
      try {
        const create = loadProgram(
          BPF_PROG_TYPE_CGROUP_SOCK,
          BPF_CGROUP_INET_SOCK_CREATE,
          recorderProgram(this.createdMap),
          'lw_sock_create',
        );
        opened.push(create);
        opened.push(linkCgroup(create, cg, BPF_CGROUP_INET_SOCK_CREATE));
        for (const [t, n] of [
          [BPF_CGROUP_INET4_CONNECT, 'lw_connect4'],
          [BPF_CGROUP_INET6_CONNECT, 'lw_connect6'],
          [BPF_CGROUP_UDP4_SENDMSG, 'lw_sendmsg4'],
          [BPF_CGROUP_UDP6_SENDMSG, 'lw_sendmsg6'],
        ] as const) {
          const p = loadProgram(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, t, recorderProgram(this.sentMap), n);
          opened.push(p);
          opened.push(linkCgroup(p, cg, t));
        }
      } finally {
        closeSync(cg);
      }
    } catch (e) {
      for (const fd of opened) closeSync(fd);
      throw e;
    }
    this.fds = opened;
    this.lookupAttr = nativeAlloc(ATTR_SIZE);
    this.key = nativeAlloc(8);
    this.value = nativeAlloc(4);
  }

  private lookup(mapFd: number, cookie: bigint): number | undefined {
    const a = this.lookupAttr;
    a.buf.fill(0);
    this.key.buf.writeBigUInt64LE(cookie, 0);
    a.buf.writeUInt32LE(mapFd, 0);
    a.buf.writeBigUInt64LE(this.key.ptr, 8);
    a.buf.writeBigUInt64LE(this.value.ptr, 16);
    if (bpf(BPF_MAP_LOOKUP_ELEM, a) < 0) return undefined; // ENOENT: not recorded
    return this.value.buf.readUInt32LE(0);
  }

  owners(cookie: bigint): SocketOwners {
    const o: SocketOwners = {};
    const c = this.lookup(this.createdMap, cookie);
    if (c !== undefined) o.creator = c;
    const s = this.lookup(this.sentMap, cookie);
    if (s !== undefined) o.sender = s;
    return o;
  }

  close(): void {
    for (const fd of this.fds) {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    }
    this.fds = [];
    this.lookupAttr.free();
    this.key.free();
    this.value.free();
  }
}

/** Names and ids of every BPF program loaded on the host (to check that none is left behind). */
/**
 * Whether eBPF socket tracking can work here: a map created and the recorder program loaded (not
 * attached), then both closed again. `reason` says why not (errno, verifier log).
 */
export function probeBpf(): { usable: boolean; reason?: string } {
  let map = -1;
  let prog = -1;
  try {
    map = createMap(16, 'lw_probe');
    prog = loadProgram(BPF_PROG_TYPE_CGROUP_SOCK, BPF_CGROUP_INET_SOCK_CREATE, recorderProgram(map), 'lw_probe');
    return { usable: true };
  } catch (e) {
    return { usable: false, reason: (e as Error).message };
  } finally {
    if (prog >= 0) closeSync(prog);
    if (map >= 0) closeSync(map);
  }
}

export function listBpfPrograms(): { id: number; name: string }[] {
  const out: { id: number; name: string }[] = [];
  const a = nativeAlloc(ATTR_SIZE);
  const info = nativeAlloc(256);
  try {
    let id = 0;
    for (;;) {
      a.buf.fill(0);
      a.buf.writeUInt32LE(id, 0);
      if (bpf(BPF_PROG_GET_NEXT_ID, a) < 0) break; // ENOENT: no more
      id = a.buf.readUInt32LE(4);
      a.buf.fill(0);
      a.buf.writeUInt32LE(id, 0);
      const fd = bpf(BPF_PROG_GET_FD_BY_ID, a);
      if (fd < 0) continue; // unloaded meanwhile
      try {
        info.buf.fill(0);
        a.buf.fill(0);
        a.buf.writeUInt32LE(fd, 0);
        a.buf.writeUInt32LE(256, 4);
        a.buf.writeBigUInt64LE(info.ptr, 8);
        if (bpf(BPF_OBJ_GET_INFO_BY_FD, a) === 0) {
          // struct bpf_prog_info: name[16] at offset 64
          out.push({ id, name: info.buf.toString('latin1', 64, 80).replace(/\0.*$/s, '') });
        }
      } finally {
        closeSync(fd);
      }
    }
  } finally {
    a.free();
    info.free();
  }
  return out;
}
