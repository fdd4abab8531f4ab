// From config file + command-line flags to what a daemon runs with (pure, apart from reading
// key files to check them early). Flags win over the config file.
import { loadKeyFile } from '../label/keys.js';
import { parseCidr, parsePortRange, type Cidr, type PortRange } from '../policy/match.js';
import { DEFAULT_CONTROL_SOCKET, type EgressPolicy, type IdentityConfig, type LabelwallConfig, type MarkBits, type VerifierAction } from '../policy/config.js';
import type { Family } from '../datapath/iptables.js';
import type { VerifierRuleData } from '../verifier/handler.js';

export class UsageError extends Error {}

export interface CommonFlags {
  config?: string;
  queues?: number;
  queueBase?: number;
  fail?: 'open' | 'closed';
  controlSocket?: string;
  logLevel?: string;
  logFile?: string;
  family?: Array<'ipv4' | 'ipv6'>;
}

export interface AgentFlags extends CommonFlags {
  keyFile?: string[];
  /** --egress / --no-egress; undefined = on when a config file is given. */
  egress?: boolean;
  egressQueue?: number;
  interface?: string[];
  destination?: string[];
  port?: string[];
}

export interface VerifierFlags extends CommonFlags {
  keyFile?: string[];
  hook?: 'input' | 'forward';
  action?: VerifierAction;
  inInterface?: string[];
  outInterface?: string[];
  source?: string[];
  destination?: string[];
  port?: string[];
}

export interface ResolvedCommon {
  queues: number[];
  failOpen: boolean;
  families: Family[];
  controlSocket: string;
}

export interface ResolvedAgent extends ResolvedCommon {
  keyFile: string;
  keyId: string;
  interfaces: string[];
  destinations: Cidr[];
  ports: PortRange[];
  /** Egress policy enforcement; undefined = off (no egress queue, every flow allowed). */
  egress?: ResolvedEgress;
}

export interface ResolvedEgress {
  queue: number;
  policy: EgressPolicy;
  identity: IdentityConfig;
}

export interface ResolvedVerifier extends ResolvedCommon {
  hook: 'input' | 'forward';
  mark: MarkBits;
  rules: VerifierRuleData[];
  keyIds: Record<string, string>;
}

export function defaultControlSocket(role: 'agent' | 'verifier'): string {
  return `/run/labelwall/${role}.sock`;
}

/** The config's control.socket when it was changed from the default, else the role's own. */
function controlSocketFor(cfg: LabelwallConfig, role: 'agent' | 'verifier'): string {
  return cfg.control.socket !== DEFAULT_CONTROL_SOCKET ? cfg.control.socket : defaultControlSocket(role);
}

function cidrs(list: readonly string[] | undefined, flag: string): Cidr[] | undefined {
  if (!list) return undefined;
  return list.map((t) => {
    const r = parseCidr(t);
    if (!r.ok) throw new UsageError(`${flag} ${t}: ${r.reason}`);
    return r.value;
  });
}

function ports(list: readonly string[] | undefined, flag: string): PortRange[] | undefined {
  if (!list) return undefined;
  return list.flatMap((t) => t.split(',')).map((t) => {
    const r = parsePortRange(t);
    if (!r.ok) throw new UsageError(`${flag} ${t}: ${r.reason}`);
    return r.value;
  });
}

function queueList(base: number, count: number): number[] {
  if (!Number.isInteger(count) || count < 1 || count > 16) throw new UsageError(`--queues ${count}: must be 1..16`);
  if (!Number.isInteger(base) || base < 0 || base + count - 1 > 65535) throw new UsageError(`--queue-base ${base}: queue numbers must be 0..65535`);
  return Array.from({ length: count }, (_, i) => base + i);
}

function families(f: CommonFlags, cfgFamilies: readonly ('ipv4' | 'ipv6')[]): Family[] {
  const list = f.family ?? cfgFamilies;
  return [...new Set(list.map((x) => (x === 'ipv4' ? 4 : 6) as Family))];
}

export function resolveAgent(cfg: LabelwallConfig, f: AgentFlags): ResolvedAgent {
  let keyFile: string | undefined;
  if (f.keyFile?.length) {
    if (f.keyFile.length > 1) throw new UsageError('the agent labels with one key: give --key-file once');
    keyFile = f.keyFile[0];
  } else if (cfg.agent.key) keyFile = cfg.keys[cfg.agent.key];
  if (!keyFile) throw new UsageError('no labelling key: give --key-file FILE or set agent.key in the config');
  const key = loadKeyFile(keyFile); // refuses readable-by-others files, with the reason
  const queues = queueList(f.queueBase ?? cfg.agent.queueBase, f.queues ?? cfg.agent.queues);
  return {
    keyFile,
    keyId: key.id,
    interfaces: f.interface ?? cfg.agent.interfaces,
    destinations: cidrs(f.destination, '--destination') ?? cfg.agent.label.destinations,
    ports: ports(f.port, '--port') ?? cfg.agent.label.ports,
    queues,
    failOpen: (f.fail ?? cfg.agent.fail) === 'open',
    families: families(f, cfg.agent.families),
    controlSocket: f.controlSocket ?? controlSocketFor(cfg, 'agent'),
    ...resolveEgress(cfg, f, queues),
  };
}

/**
 * Egress enforcement is on with --egress, off with --no-egress, and otherwise on exactly when a
 * config file was given (its agent.egress, defaults allow/allow when the section is absent).
 * Its queue is --egress-queue, else the first number after the labelling queues.
 */
function resolveEgress(cfg: LabelwallConfig, f: AgentFlags, queues: number[]): { egress?: ResolvedEgress } {
  const on = f.egress ?? f.config !== undefined;
  if (!on) {
    if (f.egressQueue !== undefined) throw new UsageError('--egress-queue: egress policy is off (--no-egress, or no --config); give --egress or a config file');
    return {};
  }
  const queue = f.egressQueue ?? queues[queues.length - 1]! + 1;
  if (!Number.isInteger(queue) || queue < 0 || queue > 65535) throw new UsageError(`--egress-queue ${queue}: queue numbers must be 0..65535`);
  if (queues.includes(queue)) {
    throw new UsageError(`--egress-queue ${queue} is one of the labelling queues ${queues[0]}..${queues[queues.length - 1]}: pick another number`);
  }
  return { egress: { queue, policy: cfg.agent.egress, identity: cfg.agent.identity } };
}

export function resolveVerifier(cfg: LabelwallConfig, f: VerifierFlags): ResolvedVerifier {
  const keyIds: Record<string, string> = {};
  const named = new Map<string, string>(); // key name -> file
  for (const [name, file] of Object.entries(cfg.keys)) named.set(name, file);
  const flagFiles = f.keyFile ?? [];
  for (const file of [...flagFiles, ...named.values()]) keyIds[file] = loadKeyFile(file).id;
  const allFiles = [...new Set([...flagFiles, ...named.values()])];
  if (allFiles.length === 0) throw new UsageError('no verification key: give --key-file FILE (repeatable) or keys in the config');

  const action = f.action ?? cfg.verifier.action;
  const flagSelection =
    f.inInterface || f.outInterface || f.source || f.destination || f.port
      ? {
          name: 'command-line',
          inInterfaces: f.inInterface ?? [],
          outInterfaces: f.outInterface ?? [],
          sources: cidrs(f.source, '--source') ?? [],
          destinations: cidrs(f.destination, '--destination') ?? [],
          ports: ports(f.port, '--port') ?? [],
          keyFiles: allFiles,
          action,
        }
      : undefined;
  let rules: VerifierRuleData[];
  if (flagSelection) rules = [flagSelection];
  else if (cfg.verifier.rules.length) {
    rules = cfg.verifier.rules.map((r) => ({
      name: r.name,
      inInterfaces: r.inInterfaces,
      outInterfaces: r.outInterfaces,
      sources: r.sources,
      destinations: r.destinations,
      ports: r.ports,
      // Flags add keys to every rule: they are the operator's explicit choice.
      keyFiles: r.keys ? [...new Set([...r.keys.map((k) => named.get(k)!), ...flagFiles])] : allFiles,
      action: f.action ?? r.action,
    }));
  } else {
    rules = [{ name: 'all-tcp', inInterfaces: [], outInterfaces: [], sources: [], destinations: [], ports: [], keyFiles: allFiles, action }];
  }
  return {
    hook: f.hook ?? cfg.verifier.hook,
    mark: cfg.verifier.mark,
    rules,
    keyIds,
    queues: queueList(f.queueBase ?? cfg.verifier.queueBase, f.queues ?? cfg.verifier.queues),
    failOpen: (f.fail ?? cfg.verifier.fail) === 'open',
    families: families(f, ['ipv4', 'ipv6']),
    controlSocket: f.controlSocket ?? controlSocketFor(cfg, 'verifier'),
  };
}
