// Attribution of a flow to its socket and to every process holding that socket.
//
// 1. Socket: sock_diag exact lookup (TCP; UDP also finds an unconnected socket bound to the
//    wildcard address), else a UDP dump by local port; ICMP from /proc/net/icmp (ping sockets,
//    keyed by echo identifier) or /proc/net/raw (raw ICMP sockets) since this kernel has no
//    ping/raw sock_diag handler.
// 2. Candidate holders: the socket's creator and last connector/sender recorded by the eBPF
//    programs (by socket cookie), their direct children (the inherited-socket case), and the
//    background /proc index. With no candidate, a synchronous full /proc scan.
// 3. Every candidate is verified against /proc/pid/fd right now; only verified holders count.
import { SockDiag } from './sockdiag.js';
import { BpfSocketTracker } from './bpf.js';
import { BackgroundSocketIndex, IncrementalScanner } from './socket-index.js';
import { childrenOf, fdIsSocket, holdsInode, processInfo } from './procfs.js';
import { readProcNet, type ProcNetEntry } from './procnet.js';
import { parseIp } from '../util/ip.js';
import type { Attribution, FlowTuple, ProcessInfo, SocketInfo } from './types.js';
import type { DiagSocket } from './sockdiag-proto.js';

export type { Attribution, FlowTuple, ProcessInfo, SocketInfo } from './types.js';

export interface AttributorOptions {
  /** eBPF fast path: 'auto' (default) tries it and falls back to /proc only; 'off' never loads it. */
  bpf?: 'auto' | 'on' | 'off';
  /** Hash executables (SHA-256). Default true. */
  hash?: boolean;
  /**
   * Background scan period in ms (incremental passes, a full one every 30th); 0 disables the
   * background index. Default 1000.
   */
  indexIntervalMs?: number;
  /** Children of the creator/sender checked as possible inheritors (bounded). Default 32. */
  maxChildren?: number;
  /**
   * Always do a full /proc scan: every holder at this instant, also ones the fast path cannot
   * see (a process that received the socket over SCM_RIGHTS and never used it). Slow.
   */
  exhaustive?: boolean;
}

export interface AttributionStats {
  lookups: number;
  unknown: number;
  /** Synchronous scans of the processes that changed since the last pass. */
  incrementalScans: number;
  /** Synchronous scans of every fd of every process. */
  fullScans: number;
  bpfHits: number;
  indexHits: number;
}

interface FoundSocket {
  inode: number;
  uid: number;
  cookie?: bigint;
}

export class Attributor {
  readonly bpfMode: boolean;
  readonly bpfError: string | undefined;
  readonly stats: AttributionStats = { lookups: 0, unknown: 0, incrementalScans: 0, fullScans: 0, bpfHits: 0, indexHits: 0 };
  private readonly diag: SockDiag;
  private readonly tracker: BpfSocketTracker | undefined;
  private readonly index: BackgroundSocketIndex | undefined;
  private readonly hash: boolean;
  private readonly maxChildren: number;
  private readonly exhaustive: boolean;
  private readonly scanner = new IncrementalScanner();

  constructor(opts: AttributorOptions = {}) {
    this.diag = new SockDiag();
    this.hash = opts.hash !== false;
    this.maxChildren = opts.maxChildren ?? 32;
    this.exhaustive = opts.exhaustive === true;
    let tracker: BpfSocketTracker | undefined;
    let bpfError: string | undefined;
    if (opts.bpf !== 'off') {
      try {
        tracker = new BpfSocketTracker();
      } catch (e) {
        if (opts.bpf === 'on') {
          this.diag.close();
          throw e;
        }
        bpfError = (e as Error).message;
      }
    }
    this.tracker = tracker;
    this.bpfMode = tracker !== undefined;
    this.bpfError = bpfError;
    const iv = opts.indexIntervalMs ?? 1000;
    this.index = iv > 0 ? new BackgroundSocketIndex(iv) : undefined;
  }

  /** Background index state: passes received, duration of the last, socket fds indexed. */
  indexStatus(): { enabled: boolean; scans: number; lastScanMs: number; size: number } {
    const i = this.index;
    return { enabled: i !== undefined, scans: i?.scans ?? 0, lastScanMs: i?.lastScanMs ?? 0, size: i?.snapshot?.size ?? 0 };
  }

  async close(): Promise<void> {
    this.diag.close();
    this.tracker?.close();
    await this.index?.close();
  }

  /** Synchronous attribution (blocks for the /proc reads; a full scan when nothing else helps). */
  attribute(t: FlowTuple): Attribution {
    this.stats.lookups++;
    const r = this.attributeInner(t);
    if (r.unknown) this.stats.unknown++;
    return r;
  }

  async attributeFlow(t: FlowTuple): Promise<Attribution> {
    return this.attribute(t);
  }

  private attributeInner(t: FlowTuple): Attribution {
    const src = parseIp(t.src);
    const dst = parseIp(t.dst);
    if (!src || !dst) return { holders: [], unknown: true, reason: 'bad address in flow tuple' };
    let found: FoundSocket | string;
    try {
      found = this.findSocket(t, src, dst);
    } catch (e) {
      return { holders: [], unknown: true, reason: `socket lookup failed: ${(e as Error).message}` };
    }
    if (typeof found === 'string') return { holders: [], unknown: true, reason: found };
    // Inode 0: the socket has no file any more (closed by its process, e.g. FIN_WAIT after exit).
    if (found.inode === 0)
      return { socket: { inode: 0, uid: found.uid }, holders: [], unknown: true, reason: 'socket is orphaned: its process closed it' };
    const socket: SocketInfo = { inode: found.inode, uid: found.uid };
    const pids = this.findHolders(found);
    const holders: ProcessInfo[] = [];
    for (const pid of pids) {
      const p = processInfo(pid, { hash: this.hash });
      if (p) holders.push(p);
    }
    if (holders.length === 0)
      return { socket, holders, unknown: true, reason: 'no process holds the socket (it exited or the socket was closed)' };
    return { socket, holders, unknown: false };
  }

  /** Pids verified to hold the socket now, sorted. */
  private findHolders(s: FoundSocket): number[] {
    const verified = new Set<number>();
    const tried = new Set<number>();
    const check = (pid: number, fd?: number): void => {
      if (tried.has(pid)) return;
      tried.add(pid);
      const ok = (fd !== undefined && fdIsSocket(pid, fd, s.inode)) || holdsInode(pid, s.inode);
      if (ok) verified.add(pid);
    };
    if (this.tracker && s.cookie !== undefined) {
      const o = this.tracker.owners(s.cookie);
      // Usually one process both created and connected the socket: read its children once.
      const roots = [...new Set([o.creator, o.sender])].filter((x): x is number => x !== undefined);
      if (roots.length > 0) this.stats.bpfHits++;
      for (const pid of roots) check(pid);
      // Inherited copies: children of the creator or sender (the paper's central case).
      let budget = this.maxChildren;
      for (const pid of roots) {
        for (const c of childrenOf(pid)) {
          if (budget-- <= 0) break;
          check(c);
        }
      }
    }
    const snap = this.index?.snapshot;
    if (snap) {
      const refs = snap.lookup(s.inode);
      if (refs.length > 0) this.stats.indexHits++;
      for (const r of refs) check(r.pid, r.fd);
    }
    if (verified.size === 0 || this.exhaustive) {
      // Nothing known about this socket: scan now. First only processes that are new or whose
      // fd count changed (cheap); if that does not find it, every fd of every process.
      let pass = this.exhaustive ? undefined : this.scanner.pass();
      if (pass) this.stats.incrementalScans++;
      if (!pass || pass.full || pass.snapshot.lookup(s.inode).length === 0) {
        this.stats.fullScans++;
        pass = this.scanner.pass(true);
      }
      this.index?.offer(pass.snapshot);
      for (const r of pass.snapshot.lookup(s.inode)) verified.add(r.pid);
    }
    return [...verified].sort((a, b) => a - b);
  }

  private findSocket(t: FlowTuple, src: Uint8Array, dst: Uint8Array): FoundSocket | string {
    if (t.proto === 'tcp') {
      const s = this.diag.lookup('tcp', t.family, src, t.sport, dst, t.dport);
      return s ? fromDiag(s) : 'no TCP socket for the flow';
    }
    if (t.proto === 'udp') {
      // udp_dump_one looks the id up from the packet's point of view: src = remote end.
      const s = this.diag.lookup('udp', t.family, dst, t.dport, src, t.sport);
      if (s) return fromDiag(s);
      const local = this.diag
        .dump('udp', t.family)
        .filter(
          (d) => d.sport === t.sport && (isAny(d.src) || eq(d.src, src)) && (isAny(d.dst) || (eq(d.dst, dst) && d.dport === t.dport)),
        );
      const best = local.sort((a, b) => specificity(b) - specificity(a))[0];
      return best ? fromDiag(best) : 'no UDP socket for the flow';
    }
    // ICMP: ping sockets are keyed by the echo identifier (tuple sport); raw sockets by protocol.
    const ping = pick(readProcNet('icmp', t.family), (e) => e.sport === t.sport, src, dst);
    if (ping) return { inode: ping.inode, uid: ping.uid };
    const proto = t.family === 4 ? 1 : 58;
    const raws = readProcNet('raw', t.family).filter((e) => e.sport === proto || e.sport === 255);
    const raw = raws.filter((e) => (isAny(e.src) || eq(e.src, src)) && (isAny(e.dst) || eq(e.dst, dst)));
    if (raw.length === 1) return { inode: raw[0]!.inode, uid: raw[0]!.uid };
    if (raw.length > 1) return `ambiguous: ${raw.length} raw ICMP sockets could have sent the flow`;
    return 'no ICMP socket for the flow';
  }
}

function fromDiag(s: DiagSocket): FoundSocket {
  return { inode: s.inode, uid: s.uid, cookie: s.cookie };
}

function pick(list: ProcNetEntry[], f: (e: ProcNetEntry) => boolean, src: Uint8Array, dst: Uint8Array): ProcNetEntry | undefined {
  const c = list.filter((e) => f(e) && (isAny(e.src) || eq(e.src, src)) && (isAny(e.dst) || eq(e.dst, dst)));
  return c.sort((a, b) => Number(!isAny(b.src)) + Number(!isAny(b.dst)) - Number(!isAny(a.src)) - Number(!isAny(a.dst)))[0];
}

function specificity(d: DiagSocket): number {
  return Number(!isAny(d.src)) + Number(!isAny(d.dst));
}

function isAny(a: Uint8Array): boolean {
  for (const b of a) if (b !== 0) return false;
  return true;
}

function eq(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

let shared: Attributor | undefined;

/** Attribution through a process-wide Attributor created on first use with default options. */
export async function attributeFlow(t: FlowTuple): Promise<Attribution> {
  shared ??= new Attributor();
  return shared.attribute(t);
}
