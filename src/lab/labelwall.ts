// Running the real `labelwall` daemons inside lab namespaces (the demo's, the e2e tests').
import { writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { controlGet } from '../control/client.js';
import type { StatusReport } from '../daemon/run.js';
import { waitFor, type NsProcess, type Topology } from './netns.js';
import { REPO_ROOT } from './paths.js';

export const LABELWALL_BIN = join(REPO_ROOT, 'bin', 'labelwall');

/** Writes a key file (mode 0600) and returns its path and hex. */
export function writeKey(dir: string, name: string, bytes: Buffer = randomBytes(32)): { path: string; hex: string } {
  const path = join(dir, `${name}.key`);
  writeFileSync(path, `${bytes.toString('hex')}\n`, { mode: 0o600 });
  return { path, hex: bytes.toString('hex') };
}

/**
 * The flags of the standard topology's middlebox verifier: one key, `hook forward`, checking
 * what comes in from pc and from uc (the demo's and most e2e tests' verifier); `extra` follows.
 */
export function middleboxVerifierArgs(
  topo: Topology,
  o: { profile: 'v1' | 'compat' | 'any'; keyFile: string; action: 'drop' | 'mark' | 'log' },
  extra: string[] = [],
): string[] {
  return [
    '--profile',
    o.profile,
    '--key-file',
    o.keyFile,
    '--hook',
    'forward',
    '--action',
    o.action,
    '--in-interface',
    topo.iface('mb', 'pc').name,
    '--in-interface',
    topo.iface('mb', 'uc').name,
    ...extra,
  ];
}

export interface Daemon {
  proc: NsProcess;
  socket: string;
  status(): Promise<StatusReport>;
  counters(): Promise<Record<string, number>>;
  /** SIGTERM (clean stop) and wait; returns the exit code. */
  stop(): Promise<number | null | undefined>;
  /** Log lines (pino JSON objects). */
  logs(): Array<Record<string, unknown>>;
}

/**
 * Starts `labelwall <role> ...args` in the host's namespace with its own control socket and
 * waits until it answers on it (queues bound, rules installed).
 */
export async function startDaemon(topo: Topology, host: string, role: 'agent' | 'verifier', args: string[], dir: string): Promise<Daemon> {
  const socket = join(dir, `${role}-${host}-${randomBytes(3).toString('hex')}.sock`);
  const proc = topo.spawn(host, [process.execPath, LABELWALL_BIN, role, '--control-socket', socket, ...args]);
  const status = async (): Promise<StatusReport> => JSON.parse(await controlGet(socket, '/status')) as StatusReport;
  await waitFor(
    async () => {
      if (!proc.running) throw new Error(`labelwall ${role} exited at start:\n${proc.describe()}`);
      return status().then(
        () => true,
        () => false,
      );
    },
    15_000,
    { what: `labelwall ${role} on ${host} answering`, intervalMs: 100 },
  );
  return {
    proc,
    socket,
    status,
    counters: async () => (await status()).counters,
    stop: async () => {
      await proc.stop(5000);
      return proc.exitCode;
    },
    logs: () =>
      proc.stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** Lines of iptables-save and ip6tables-save in a host's namespace that belong to labelwall. */
export async function labelwallRules(topo: Topology, host: string): Promise<string[]> {
  const out: string[] = [];
  for (const tool of ['iptables-save', 'ip6tables-save']) {
    const r = await topo.check(host, [tool]);
    out.push(...r.stdout.split('\n').filter((l) => /labelwall|NFQUEUE/i.test(l)));
  }
  return out;
}
