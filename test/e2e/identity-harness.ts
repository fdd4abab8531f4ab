// Shared pieces of the identity e2e tests: a private namespace, line-oriented child processes
// inside it, flow scenarios (test/e2e/identity-scenario.py) and attribution probes.
import { spawn, execFileSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { Attribution, FlowTuple } from '../../src/identity/types.js';

const here = dirname(fileURLToPath(import.meta.url));
export const repoRoot = join(here, '..', '..', '..');
export const scenarioPy = join(repoRoot, 'test', 'e2e', 'identity-scenario.py');
const probeJs = join(here, 'identity-probe-cli.js');

/** A namespace with loopback up and ping sockets allowed for every group (inside it only). */
export function createNs(): string {
  const ns = `lwid${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    execFileSync('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ping_group_range=0 2147483647']);
  } catch (e) {
    deleteNs(ns);
    throw e;
  }
  return ns;
}

export function deleteNs(ns: string): void {
  try {
    execFileSync('ip', ['netns', 'del', ns]);
  } catch {
    // already gone
  }
}

/** A child process in the namespace: send a line, await the next line. */
export class LineProc {
  readonly proc: ChildProcessWithoutNullStreams;
  private readonly lines: string[] = [];
  private waiters: ((l: string) => void)[] = [];
  stderr = '';
  constructor(ns: string, cmd: string[]) {
    this.proc = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: 'pipe' });
    this.proc.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    createInterface({ input: this.proc.stdout }).on('line', (l) => {
      const w = this.waiters.shift();
      if (w) w(l);
      else this.lines.push(l);
    });
  }
  next(timeoutMs = 15000): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no output within ${timeoutMs} ms; stderr: ${this.stderr}`)), timeoutMs);
      this.waiters.push((line) => {
        clearTimeout(t);
        resolve(line);
      });
    });
  }
  send(line: string): void {
    this.proc.stdin.write(`${line}\n`);
  }
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.stdin.end();
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
}

export interface Scenario {
  tuple: FlowTuple;
  pids: Record<string, number>;
  proc: LineProc;
}

/** Runs one scenario of identity-scenario.py (with another interpreter binary if given). */
export async function scenario(ns: string, name: string, python = '/usr/bin/python3'): Promise<Scenario> {
  const p = new LineProc(ns, [python, scenarioPy, name]);
  try {
    const j = JSON.parse(await p.next()) as { tuple: FlowTuple; pids: Record<string, number> };
    return { ...j, proc: p };
  } catch (e) {
    await p.stop();
    throw e;
  }
}

export async function startServer(ns: string): Promise<LineProc> {
  const server = new LineProc(ns, ['/usr/bin/python3', scenarioPy, 'server']);
  const hello = JSON.parse(await server.next()) as { ready?: boolean };
  if (hello.ready !== true) throw new Error('scenario server did not start');
  return server;
}

export type ProbeReply = Attribution & { ms: number; stats: { fullScans: number; bpfHits: number } };

/** An Attributor running inside the namespace (test/e2e/identity-probe-cli.ts). */
export class Probe {
  readonly lp: LineProc;
  bpf = false;
  bpfError: string | null = null;
  private constructor(ns: string, args: string[]) {
    this.lp = new LineProc(ns, [process.execPath, probeJs, ...args]);
  }
  static async start(ns: string, args: string[]): Promise<Probe> {
    const p = new Probe(ns, args);
    const hello = JSON.parse(await p.lp.next()) as { bpf: boolean; bpfError: string | null };
    p.bpf = hello.bpf;
    p.bpfError = hello.bpfError;
    return p;
  }
  async attribute(t: FlowTuple): Promise<ProbeReply> {
    this.lp.send(JSON.stringify(t));
    return JSON.parse(await this.lp.next()) as ProbeReply;
  }
  stop(): Promise<void> {
    return this.lp.stop();
  }
}
