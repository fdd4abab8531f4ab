// `labelwall version [--json]`: what this labelwall is and what it found on this host, for
// config management tools and bug reports: its version, the label profiles and their wire
// format versions, Node.js and the libcrypto that computes the MACs, the kernel, and the kernel
// features it needs (eBPF for socket tracking, nfnetlink_queue, the iptables backend,
// conntrack). Only reads: nothing is installed or loaded into the kernel for long (the eBPF
// probe loads one program and closes it at once).
import type { Command } from 'commander';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { getProfile, profileNames } from '../label/registry.js';
import { libcryptoVersion } from '../sys/libcrypto.js';
import { labelwallVersion } from '../util/version.js';

export interface VersionReport {
  labelwall: string;
  profiles: Array<{ name: string; formatVersion: string; optionKind: number }>;
  node: string;
  /** Node's own OpenSSL (TLS, node:crypto) and the libcrypto.so.3 the labels use (koffi). */
  openssl: { node: string; libcrypto: string | null };
  kernel: string;
  features: {
    ebpf: { usable: boolean; reason?: string };
    nfnetlinkQueue: ModuleState;
    conntrack: ModuleState;
    iptables: { backend: 'nft' | 'legacy' | 'unknown' | 'missing'; version?: string };
  };
}

/** loaded: in the running kernel; available: a module (or built in) that loads on first use; missing. */
export type ModuleState = 'loaded' | 'available' | 'missing';

/** A kernel module's state from /proc and /lib/modules (pure given the readers). */
export function moduleState(name: string, proofLoaded: string[], read: (p: string) => string | undefined, kernel = release()): ModuleState {
  if (proofLoaded.some((p) => read(p) !== undefined)) return 'loaded';
  if (new RegExp(`^${name}\\s`, 'm').test(read('/proc/modules') ?? '')) return 'loaded';
  const base = `/lib/modules/${kernel}`;
  const file = new RegExp(`/${name.replace(/_/g, '[_-]')}\\.ko`, 'm');
  if (file.test(read(`${base}/modules.dep`) ?? '') || file.test(read(`${base}/modules.builtin`) ?? '')) return 'available';
  return 'missing';
}

function readMaybe(p: string): string | undefined {
  try {
    return existsSync(p) ? readFileSync(p, 'utf8') : undefined;
  } catch {
    return undefined;
  }
}

/** `iptables v1.8.9 (nf_tables)` -> nft; `(legacy)` -> legacy. */
export function iptablesBackend(versionLine: string | undefined): VersionReport['features']['iptables'] {
  if (versionLine === undefined) return { backend: 'missing' };
  const v = /v(\d+[.\d]*)/.exec(versionLine)?.[1];
  const backend = /nf_tables/.test(versionLine) ? 'nft' : /legacy/.test(versionLine) ? 'legacy' : 'unknown';
  return { backend, ...(v ? { version: v } : {}) };
}

export async function versionReport(): Promise<VersionReport> {
  let ipt: string | undefined;
  try {
    ipt = execFileSync('iptables', ['-V'], { encoding: 'utf8', timeout: 3000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    ipt = undefined;
  }
  // The eBPF probe needs the datapath's FFI: loaded here, not at every command's start.
  const { probeBpf } = await import('../identity/bpf.js');
  return {
    labelwall: labelwallVersion(),
    profiles: profileNames().map((n) => {
      const p = getProfile(n);
      return { name: p.name, formatVersion: p.formatVersion, optionKind: p.optionKind };
    }),
    node: process.versions.node,
    openssl: { node: process.versions.openssl ?? 'none', libcrypto: libcryptoVersion() ?? null },
    kernel: release(),
    features: {
      ebpf: probeBpf(),
      nfnetlinkQueue: moduleState('nfnetlink_queue', ['/proc/net/netfilter/nfnetlink_queue'], readMaybe),
      conntrack: moduleState('nf_conntrack', ['/proc/net/nf_conntrack', '/proc/sys/net/netfilter/nf_conntrack_max'], readMaybe),
      iptables: iptablesBackend(ipt),
    },
  };
}

export function formatVersion(r: VersionReport): string {
  const f = r.features;
  return `${[
    `labelwall ${r.labelwall}`,
    `profiles: ${r.profiles.map((p) => `${p.name} (format ${p.formatVersion}, option ${p.optionKind})`).join(', ')}`,
    `node: ${r.node}`,
    `openssl: node ${r.openssl.node}; libcrypto ${r.openssl.libcrypto ?? 'not found (labels need libcrypto.so.3)'}`,
    `kernel: ${r.kernel}`,
    `ebpf: ${f.ebpf.usable ? 'usable' : `not usable (${f.ebpf.reason ?? 'unknown'}): attribution falls back to /proc`}`,
    `nfnetlink_queue: ${f.nfnetlinkQueue}`,
    `conntrack: ${f.conntrack}`,
    `iptables: ${f.iptables.backend}${f.iptables.version ? ` (${f.iptables.version})` : ''}`,
  ].join('\n')}\n`;
}

export function register(program: Command): void {
  program
    .command('version')
    .description(
      'version, label profiles, Node.js, libcrypto, kernel and the kernel features labelwall needs (eBPF, NFQUEUE, iptables backend)',
    )
    .option('--json', 'one JSON object')
    .action(async (flags: { json?: boolean }) => {
      const r = await versionReport();
      process.stdout.write(flags.json ? `${JSON.stringify(r)}\n` : formatVersion(r));
    });
}
