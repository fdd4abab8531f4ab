// Network-namespace topologies for the demo and the end-to-end tests: namespaces joined by veth pairs, with
// addresses, routes and forwarding, plus process helpers that run commands inside them.
// Everything a topology creates lives inside its own namespaces (veths are created directly
// there), so deleting the namespaces removes every interface, address, route and rule.
import { spawn as spawnChild, execFileSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface HostSpec {
  /** Short logical name, e.g. 'pc'. Letters/digits only, ≤ 4 chars keeps interface names readable. */
  name: string;
  /** Enable IPv4/IPv6 forwarding (a router / middlebox). */
  router?: boolean;
  /** Route every topology subnet this host is not attached to via this neighbour host. */
  via?: string;
}

export interface LinkSpec {
  /** Host that gets address .1 / ::1 on the link. */
  a: string;
  /** Host that gets address .2 / ::2 on the link. */
  b: string;
}

export interface RouteSpec {
  host: string;
  /** Destination prefix, e.g. '10.200.3.0/24' or 'fd00:200:3::/64'. */
  dst: string;
  /** Gateway address (same family as dst). */
  gateway: string;
}

export interface TopologySpec {
  hosts: HostSpec[];
  links: LinkSpec[];
  routes?: RouteSpec[];
  /** Second octet of the 10.X.L.0/24 link subnets and the X in fd00:X:L::/64. Default 200. */
  subnetBase?: number;
  /** Turn TSO/GSO/GRO off on every veth end (default: leave the kernel defaults on). */
  offloadsOff?: boolean;
  /** Interface MTU for every veth (default: kernel default, 1500). */
  mtu?: number;
}

export interface IfaceInfo {
  /** Interface name inside the host's namespace (unique per run, ≤ 15 chars). */
  name: string;
  host: string;
  peerHost: string;
  peerIface: string;
  ipv4: string;
  ipv6: string;
  /** e.g. '10.200.1.2/24' */
  ipv4Cidr: string;
  /** e.g. 'fd00:200:1::2/64' */
  ipv6Cidr: string;
  subnet4: string;
  subnet6: string;
}

export interface HostInfo {
  name: string;
  /** Namespace name, for `ip netns exec` / `ip -n`. */
  ns: string;
  /** Address of the host's first interface (the one address of an end host). */
  ipv4: string;
  ipv6: string;
  /** Interfaces keyed by interface name. */
  ifaces: Record<string, IfaceInfo>;
  /** Interfaces keyed by the neighbour host they lead to. */
  toward: Record<string, IfaceInfo>;
}

export interface ExecOptions {
  /** Bytes written to stdin, then stdin is closed. */
  input?: string | Buffer;
  /** Kill the command (its whole process group) after this many ms. Default 60 000. */
  timeoutMs?: number;
  /** Throw (with command line, code and stderr) when the exit code is not 0. */
  check?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Raw stdout, for binary output. */
  stdoutBuffer: Buffer;
  /** The command line that ran, for messages. */
  command: string;
  timedOut: boolean;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Keep the last this many bytes of stdout and of stderr in memory (default 4 MiB each). */
  maxBuffer?: number;
  /** Leave stdin open as a pipe (default true) so the test can drive the process. */
  stdin?: boolean;
}

const IP = 'ip';

function quote(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

export class CommandError extends Error {
  constructor(readonly result: ExecResult) {
    super(
      `command failed (${result.timedOut ? 'timed out' : (result.signal ?? `exit ${result.code}`)}): ${result.command}\n` +
        `stderr: ${result.stderr.trim() || '(empty)'}` +
        (result.stdout.trim() ? `\nstdout: ${result.stdout.trim().slice(0, 2000)}` : ''),
    );
    this.name = 'CommandError';
  }
}

/** Run a command (no namespace) and collect its output; kills its process group on timeout. */
export function run(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const command = quote(argv);
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      child = spawnChild(argv[0]!, argv.slice(1), {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: opts.env,
        cwd: opts.cwd,
        detached: true, // own process group, so a timeout kills grandchildren too
      });
    } catch (err) {
      reject(new Error(`cannot start ${command}: ${(err as Error).message}`));
      return;
    }
    const out: Buffer[] = [];
    const errb: Buffer[] = [];
    let timedOut = false;
    child.stdout!.on('data', (d: Buffer) => out.push(d));
    child.stderr!.on('data', (d: Buffer) => errb.push(d));
    child.stdin!.on('error', () => {}); // EPIPE when the command ignores stdin
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin!.end();
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid, 'SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${command}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdoutBuffer = Buffer.concat(out);
      const result: ExecResult = {
        code,
        signal,
        stdout: stdoutBuffer.toString('utf8'),
        stderr: Buffer.concat(errb).toString('utf8'),
        stdoutBuffer,
        command,
        timedOut,
      };
      if (opts.check && (code !== 0 || timedOut)) reject(new CommandError(result));
      else resolve(result);
    });
  });
}

function killGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      /* already gone */
    }
  }
}

/** Poll `predicate` until it returns a truthy value (returned) or `timeoutMs` passes (throws). */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  timeoutMs: number,
  opts: { intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await predicate();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastErr instanceof Error ? ` (last error: ${lastErr.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what ?? 'condition'}${detail}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}

/** A long-running process inside a namespace, tracked so that destroy() ends it. */
export class NsProcess {
  readonly child: ChildProcess;
  readonly command: string;
  readonly host: string;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private out: Buffer[] = [];
  private outLen = 0;
  private err: Buffer[] = [];
  private errLen = 0;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** Bytes of output discarded from the front to stay within maxBuffer. */
  dropped = 0;
  private listeners = new Set<() => void>();

  constructor(host: string, argv: readonly string[], child: ChildProcess, maxBuffer: number) {
    this.host = host;
    this.command = quote(argv);
    this.child = child;
    // Keep the most recent maxBuffer bytes of each stream: long-running chatty daemons must
    // not stop later waitForOutput() calls from seeing new lines.
    const keep = (which: 'out' | 'err', d: Buffer): void => {
      const chunks = which === 'out' ? this.out : this.err;
      chunks.push(d);
      let len = which === 'out' ? (this.outLen += d.length) : (this.errLen += d.length);
      while (len > maxBuffer && chunks.length > 1) {
        const dropped = chunks.shift()!;
        len -= dropped.length;
        this.dropped += dropped.length;
      }
      if (which === 'out') this.outLen = len;
      else this.errLen = len;
      for (const l of this.listeners) l();
    };
    child.stdout?.on('data', (d: Buffer) => keep('out', d));
    child.stderr?.on('data', (d: Buffer) => keep('err', d));
    child.stdin?.on('error', () => {});
    this.exited = new Promise((resolve) => {
      child.on('error', (e) => {
        this.err.push(Buffer.from(`spawn error: ${e.message}\n`));
        this.exitInfo = { code: null, signal: null };
        for (const l of this.listeners) l();
        resolve(this.exitInfo);
      });
      child.on('close', (code, signal) => {
        this.exitInfo = { code, signal };
        for (const l of this.listeners) l();
        resolve(this.exitInfo);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }
  get stdout(): string {
    return Buffer.concat(this.out).toString('utf8');
  }
  get stderr(): string {
    return Buffer.concat(this.err).toString('utf8');
  }
  get running(): boolean {
    return this.exitInfo === undefined;
  }
  get exitCode(): number | null | undefined {
    return this.exitInfo?.code;
  }

  /** Write to the process's stdin. */
  write(data: string | Buffer): void {
    this.child.stdin?.write(data);
  }

  /**
   * Wait until stdout (or stderr, with `stream: 'stderr'`) matches `re`; returns the match.
   * Fails early, with the output, if the process exits first.
   */
  async waitForOutput(re: RegExp, timeoutMs = 10_000, stream: 'stdout' | 'stderr' = 'stdout'): Promise<RegExpMatchArray> {
    const check = (): RegExpMatchArray | null => (stream === 'stdout' ? this.stdout : this.stderr).match(re);
    const first = check();
    if (first) return first;
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.listeners.delete(onData);
      };
      const onData = (): void => {
        const m = check();
        if (m) {
          done();
          resolve(m);
        } else if (!this.running) {
          done();
          reject(new Error(`${this.describe()} exited before printing ${re}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${re} from ${this.describe()}`));
      }, timeoutMs);
      this.listeners.add(onData);
      onData();
    });
  }

  /** Command, exit status and the tail of its output, for assertion messages. */
  describe(): string {
    const status = this.exitInfo ? `exited ${this.exitInfo.signal ?? this.exitInfo.code}` : 'running';
    return (
      `[${this.host}] ${this.command} (${status})` +
      `\n  stdout: ${this.stdout.slice(-1500).trim() || '(empty)'}` +
      `\n  stderr: ${this.stderr.slice(-1500).trim() || '(empty)'}`
    );
  }

  /** SIGTERM, then SIGKILL after `graceMs`, to the whole process group. */
  async stop(graceMs = 2000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.running) return;
    killGroup(this.child.pid, signal);
    const t = setTimeout(() => killGroup(this.child.pid, 'SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(t);
    // The leader may be gone while others in its group live on (e.g. sshd children).
    killGroup(this.child.pid, 'SIGKILL');
  }

  /** Send a signal to the process itself (not its group), e.g. SIGKILL for crash tests. */
  signal(sig: NodeJS.Signals): void {
    if (this.child.pid !== undefined && this.running) {
      try {
        process.kill(this.child.pid, sig);
      } catch {
        /* gone */
      }
    }
  }
}

// ---- registry: what to clean on exit, and stale runs of dead test processes ----

const REGISTRY_DIR = '/run/labelwall-e2e';
const live = new Set<Topology>();
let handlersInstalled = false;

function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const t of live) t.destroySync();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      for (const t of live) t.destroySync();
      // Re-raise with the default action once we are the only listener left.
      process.removeListener(sig, handler);
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, handler);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function listNamespacesSync(): string[] {
  try {
    return execFileSync(IP, ['netns', 'list'], { encoding: 'utf8' })
      .split('\n')
      .map((l) => l.split(' ')[0]!)
      .filter(Boolean);
  } catch {
    return [];
  }
}

function killNamespaceProcsSync(ns: string): void {
  let pids: number[] = [];
  try {
    pids = execFileSync(IP, ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return;
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

function deleteNamespacesSync(names: readonly string[]): void {
  const existing = new Set(listNamespacesSync());
  for (const ns of names) {
    if (!existing.has(ns)) continue;
    killNamespaceProcsSync(ns);
    try {
      execFileSync(IP, ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      /* reported by the tests' leak check, nothing more to do here */
    }
  }
}

/**
 * Delete namespaces left by test processes that died without cleaning up (SIGKILL, timeout).
 * Only runs recorded in the registry by a process that no longer exists are touched, so
 * concurrent test runs of other people on the same machine are safe.
 */
export function reapStaleTopologies(): string[] {
  let files: string[];
  try {
    files = readdirSync(REGISTRY_DIR);
  } catch {
    return [];
  }
  const reaped: string[] = [];
  for (const f of files) {
    const path = join(REGISTRY_DIR, f);
    try {
      const rec = JSON.parse(readFileSync(path, 'utf8')) as { pid: number; namespaces: string[] };
      if (pidAlive(rec.pid)) continue;
      deleteNamespacesSync(rec.namespaces);
      reaped.push(...rec.namespaces);
      unlinkSync(path);
    } catch {
      /* unreadable or concurrently removed: leave it */
    }
  }
  return reaped;
}

// ---- topology ----

function checkName(n: string): void {
  if (!/^[a-z][a-z0-9]{0,7}$/.test(n)) throw new Error(`host name ${JSON.stringify(n)}: use 1-8 lowercase letters/digits`);
}

export class Topology {
  readonly id: string;
  readonly hosts: Record<string, HostInfo> = {};
  readonly spec: TopologySpec;
  private procs = new Set<NsProcess>();
  private created: string[] = [];
  private destroyed = false;
  private destroying: Promise<void> | undefined;

  constructor(spec: TopologySpec, id: string) {
    this.spec = spec;
    this.id = id;
  }

  /** Namespace name of a host; throws on an unknown host. */
  ns(host: string): string {
    const h = this.hosts[host];
    if (!h) throw new Error(`unknown host ${host} (have ${Object.keys(this.hosts).join(', ')})`);
    return h.ns;
  }

  /** Every namespace name of this topology. */
  get namespaces(): string[] {
    return Object.values(this.hosts).map((h) => h.ns);
  }

  /** Address of `host` (its first interface, or the one toward `toward`). */
  addr(host: string, family: 4 | 6 = 4, toward?: string): string {
    const h = this.hosts[host];
    if (!h) throw new Error(`unknown host ${host}`);
    if (toward === undefined) return family === 4 ? h.ipv4 : h.ipv6;
    const i = h.toward[toward];
    if (!i) throw new Error(`${host} has no link to ${toward}`);
    return family === 4 ? i.ipv4 : i.ipv6;
  }

  /** Interface of `host` leading to `toward`. */
  iface(host: string, toward: string): IfaceInfo {
    const i = this.hosts[host]?.toward[toward];
    if (!i) throw new Error(`${host} has no link to ${toward}`);
    return i;
  }

  /** Run argv inside the host's namespace and collect its output. */
  exec(host: string, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run([IP, 'netns', 'exec', this.ns(host), ...argv], opts);
  }

  /** exec() that throws CommandError (with command line and stderr) on a non-zero exit. */
  check(host: string, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return this.exec(host, argv, { ...opts, check: true });
  }

  /** Start a long-running process inside the host's namespace; destroy() ends it. */
  spawn(host: string, argv: readonly string[], opts: SpawnOptions = {}): NsProcess {
    if (this.destroyed) throw new Error('topology destroyed');
    const full = [IP, 'netns', 'exec', this.ns(host), ...argv];
    const child = spawnChild(full[0]!, full.slice(1), {
      stdio: [opts.stdin === false ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: opts.env,
      cwd: opts.cwd,
      detached: true, // own process group: stop() reaches forked children too
    });
    const p = new NsProcess(host, argv, child, opts.maxBuffer ?? 4 << 20);
    this.procs.add(p);
    void p.exited.then(() => this.procs.delete(p));
    return p;
  }

  /** Wait until something listens on TCP `port` in the host's namespace (checked with `ss -ltn`). */
  async waitForPort(host: string, port: number, timeoutMs = 10_000): Promise<void> {
    await waitFor(
      async () => {
        const r = await this.exec(host, ['ss', '-Hltn', `sport = :${port}`], { check: true });
        return r.stdout.trim().length > 0;
      },
      timeoutMs,
      { what: `TCP port ${port} listening on ${host}`, intervalMs: 50 },
    );
  }

  /** Set TSO/GSO/GRO on one interface (true = on). */
  async setOffloads(host: string, ifname: string, on: boolean): Promise<void> {
    const v = on ? 'on' : 'off';
    await this.check(host, ['ethtool', '-K', ifname, 'tso', v, 'gso', v, 'gro', v]);
  }

  async build(): Promise<void> {
    const spec = this.spec;
    const base = spec.subnetBase ?? 200;
    if (!Number.isInteger(base) || base < 0 || base > 255) throw new Error(`subnetBase ${base} out of range`);
    const names = spec.hosts.map((h) => h.name);
    names.forEach(checkName);
    if (new Set(names).size !== names.length) throw new Error('duplicate host names');
    for (const h of spec.hosts) {
      this.hosts[h.name] = { name: h.name, ns: `${this.id}-${h.name}`, ipv4: '', ipv6: '', ifaces: {}, toward: {} };
    }
    if (spec.links.length > 254) throw new Error('too many links');

    // Namespaces first, recorded before anything else so that a failure part-way cleans up.
    for (const h of spec.hosts) {
      const ns = this.hosts[h.name]!.ns;
      this.created.push(ns);
      this.writeRegistry();
      await run([IP, 'netns', 'add', ns], { check: true });
      // No DAD (addresses usable at once), forwarding on routers, loopback up.
      const sysctls = [
        'net.ipv6.conf.all.accept_dad=0',
        'net.ipv6.conf.default.accept_dad=0',
        'net.ipv4.conf.all.rp_filter=0', // spoofed-source injection tests need a permissive router
        'net.ipv4.conf.default.rp_filter=0',
      ];
      if (h.router) sysctls.push('net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1');
      await run([IP, 'netns', 'exec', ns, 'sysctl', '-q', '-w', ...sysctls], { check: true });
      await run([IP, '-n', ns, 'link', 'set', 'lo', 'up'], { check: true });
    }

    for (const [i, l] of spec.links.entries()) {
      const a = this.hosts[l.a];
      const b = this.hosts[l.b];
      if (!a || !b) throw new Error(`link ${l.a}-${l.b}: unknown host`);
      if (a.toward[l.b]) throw new Error(`second link ${l.a}-${l.b}: not supported`);
      const sub = i + 1;
      let ifA = `${this.id}-${l.a}-${l.b}`;
      let ifB = `${this.id}-${l.b}-${l.a}`;
      if (ifA.length > 15 || ifB.length > 15) {
        ifA = `${this.id}-l${sub}a`;
        ifB = `${this.id}-l${sub}b`;
      }
      // Created directly inside the namespaces: nothing ever appears in the root namespace.
      const mtu = spec.mtu ? ['mtu', String(spec.mtu)] : [];
      await run([IP, 'link', 'add', ifA, 'netns', a.ns, ...mtu, 'type', 'veth', 'peer', 'name', ifB, 'netns', b.ns, ...mtu], {
        check: true,
      });
      for (const [host, ifn, peerHost, peerIf, octet] of [
        [a, ifA, b.name, ifB, 1],
        [b, ifB, a.name, ifA, 2],
      ] as const) {
        const info: IfaceInfo = {
          name: ifn,
          host: host.name,
          peerHost,
          peerIface: peerIf,
          ipv4: `10.${base}.${sub}.${octet}`,
          ipv6: `fd00:${base}:${sub}::${octet}`,
          ipv4Cidr: `10.${base}.${sub}.${octet}/24`,
          ipv6Cidr: `fd00:${base}:${sub}::${octet}/64`,
          subnet4: `10.${base}.${sub}.0/24`,
          subnet6: `fd00:${base}:${sub}::/64`,
        };
        host.ifaces[ifn] = info;
        host.toward[peerHost] = info;
        if (!host.ipv4) {
          host.ipv4 = info.ipv4;
          host.ipv6 = info.ipv6;
        }
        await run([IP, '-n', host.ns, 'addr', 'add', info.ipv4Cidr, 'dev', ifn], { check: true });
        await run([IP, '-n', host.ns, '-6', 'addr', 'add', info.ipv6Cidr, 'dev', ifn, 'nodad'], { check: true });
        await run([IP, '-n', host.ns, 'link', 'set', ifn, 'up'], { check: true });
        if (spec.offloadsOff) {
          await run([IP, 'netns', 'exec', host.ns, 'ethtool', '-K', ifn, 'tso', 'off', 'gso', 'off', 'gro', 'off'], {
            check: true,
          });
        }
      }
    }

    // Routes: hosts with `via` reach every subnet they are not on through that neighbour.
    const allIfaces = Object.values(this.hosts).flatMap((h) => Object.values(h.ifaces));
    const subnets = [...new Set(allIfaces.map((i) => `${i.subnet4} ${i.subnet6}`))].map((s) => s.split(' '));
    for (const h of spec.hosts) {
      if (!h.via) continue;
      const gwIf = this.hosts[h.via]?.toward[h.name];
      if (!gwIf) throw new Error(`${h.name}: via ${h.via}, but they share no link`);
      const mine = new Set(Object.values(this.hosts[h.name]!.ifaces).map((i) => i.subnet4));
      for (const [s4, s6] of subnets) {
        if (mine.has(s4!)) continue;
        await run([IP, '-n', this.ns(h.name), 'route', 'add', s4!, 'via', gwIf.ipv4], { check: true });
        await run([IP, '-n', this.ns(h.name), '-6', 'route', 'add', s6!, 'via', gwIf.ipv6], { check: true });
      }
    }
    for (const r of spec.routes ?? []) {
      const fam = r.dst.includes(':') ? ['-6'] : [];
      await run([IP, '-n', this.ns(r.host), ...fam, 'route', 'add', r.dst, 'via', r.gateway], { check: true });
    }
  }

  private writeRegistry(): void {
    try {
      mkdirSync(REGISTRY_DIR, { recursive: true });
      writeFileSync(join(REGISTRY_DIR, `${this.id}.json`), JSON.stringify({ pid: process.pid, namespaces: this.created }));
    } catch {
      /* the registry is only a safety net */
    }
  }

  private removeRegistry(): void {
    try {
      unlinkSync(join(REGISTRY_DIR, `${this.id}.json`));
    } catch {
      /* absent */
    }
  }

  /** Stop tracked processes (SIGTERM, SIGKILL after graceMs), kill anything left in the namespaces, delete them. Idempotent. */
  destroy(graceMs = 1500): Promise<void> {
    if (!this.destroying) {
      this.destroying = (async () => {
        this.destroyed = true;
        await Promise.all([...this.procs].map((p) => p.stop(graceMs)));
        for (const ns of this.created) {
          const pids = await run([IP, 'netns', 'pids', ns]);
          for (const pid of pids.stdout.split('\n').filter(Boolean).map(Number)) {
            try {
              process.kill(pid, 'SIGKILL');
            } catch {
              /* gone */
            }
          }
          const del = await run([IP, 'netns', 'del', ns]);
          if (del.code !== 0 && !/No such file/.test(del.stderr)) throw new CommandError(del);
        }
        live.delete(this);
        this.removeRegistry();
      })();
    }
    return this.destroying;
  }

  /** Synchronous last-resort cleanup for process exit and signals. */
  destroySync(): void {
    this.destroyed = true;
    for (const p of this.procs) killGroup(p.pid, 'SIGKILL');
    deleteNamespacesSync(this.created);
    live.delete(this);
    this.removeRegistry();
  }
}

/** Build a topology. On failure everything created so far is removed before the error is rethrown. */
export async function createTopology(spec: TopologySpec): Promise<Topology> {
  installExitHandlers();
  reapStaleTopologies();
  const id = `lw${randomBytes(3).toString('hex')}`;
  const topo = new Topology(spec, id);
  live.add(topo);
  try {
    await topo.build();
  } catch (err) {
    await topo.destroy().catch(() => topo.destroySync());
    if (err instanceof Error) err.message = `topology ${id}: ${err.message}`;
    throw err;
  }
  return topo;
}

/**
 * labelwall's standard topology: protected client `pc` and unprotected client `uc`, each on
 * its own link to the middlebox `mb` (a router), which has a third link to the server `srv`.
 *   pc  10.B.1.2  fd00:B:1::2  ── mb 10.B.1.1
 *   uc  10.B.2.2  fd00:B:2::2  ── mb 10.B.2.1
 *   srv 10.B.3.2  fd00:B:3::2  ── mb 10.B.3.1      (B = subnetBase, default 200)
 */
export function standardTopology(opts: Partial<Omit<TopologySpec, 'hosts' | 'links'>> = {}): TopologySpec {
  return {
    ...opts,
    hosts: [
      { name: 'pc', via: 'mb' },
      { name: 'uc', via: 'mb' },
      { name: 'mb', router: true },
      { name: 'srv', via: 'mb' },
    ],
    links: [
      { a: 'mb', b: 'pc' },
      { a: 'mb', b: 'uc' },
      { a: 'mb', b: 'srv' },
    ],
  };
}

/** Minimal test-context shape (node:test's TestContext satisfies it). */
export interface AfterHook {
  after(fn: () => unknown): void;
}

/** Build a topology, run fn, and always destroy it (also if fn throws). */
export async function withTopology<T>(t: AfterHook | undefined, spec: TopologySpec, fn: (topo: Topology) => Promise<T>): Promise<T> {
  const topo = await createTopology(spec);
  t?.after(() => topo.destroy());
  try {
    return await fn(topo);
  } finally {
    await topo.destroy();
  }
}

/** Namespaces that currently exist whose names start with `prefix` (for leak checks). */
export async function listNamespaces(prefix = ''): Promise<string[]> {
  const r = await run([IP, 'netns', 'list'], { check: true });
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n?.startsWith(prefix));
}
