// From config file + command-line flags to what a daemon runs with (pure, apart from reading
// key files to check them early). Flags win over the config file: each flag's value is put at its
// config key and the whole is validated by the config's own schema and semantic checks
// (withOverrides), so a flag is refused exactly when the same value in the file would be, with
// the same message, naming the flag.
import { loadKeyFile } from '../label/keys.js';
import { DEFAULT_PROFILE } from '../label/registry.js';
import type { Cidr, PortRange } from '../util/match.js';
import { DEFAULT_CONTROL_SOCKET, type EgressPolicy, type FamilyName, type IdentityConfig, type LabelwallConfig, type MarkBits, type VerifierAction } from '../config/model.js';
import { withOverrides, type ConfigOverride } from '../config/load.js';
import type { AgentMarks } from '../config/marks.js';
import type { Family } from '../wire/packet.js';
import type { VerifierRuleData } from '../verifier/handler.js';

export class UsageError extends Error {}

// Values are as typed on the command line (numbers when written in decimal, see daemons.ts): the
// config schema checks them.
export interface CommonFlags {
  config?: string;
  queues?: number | string;
  queueBase?: number | string;
  fail?: string;
  controlSocket?: string;
  logLevel?: string;
  logFile?: string;
  family?: string[];
}

export interface AgentFlags extends CommonFlags {
  keyFile?: string[];
  /** --egress / --no-egress; undefined = on when a config file is given. */
  egress?: boolean;
  egressQueue?: number | string;
  interface?: string[];
  destination?: string[];
  port?: string[];
}

export interface VerifierFlags extends CommonFlags {
  keyFile?: string[];
  hook?: string;
  action?: string;
  inInterface?: string[];
  outInterface?: string[];
  source?: string[];
  destination?: string[];
  port?: string[];
}

export interface ResolvedCommon {
  /** Name of the label profile (label/registry.ts) the handlers label or verify with. */
  profile: string;
  queues: number[];
  failOpen: boolean;
  families: Family[];
  controlSocket: string;
}

export interface ResolvedAgent extends ResolvedCommon {
  keyFile: string;
  keyFingerprint: string;
  mark: AgentMarks;
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
  keyFingerprints: Record<string, string>;
}

export function defaultControlSocket(role: 'agent' | 'verifier'): string {
  return `/run/labelwall/${role}.sock`;
}

/** The config's control.socket when it was changed from the default, else the role's own. */
function controlSocketFor(cfg: LabelwallConfig, role: 'agent' | 'verifier'): string {
  return cfg.control.socket !== DEFAULT_CONTROL_SOCKET ? cfg.control.socket : defaultControlSocket(role);
}

type Overrides = ConfigOverride[];

function put(out: Overrides, path: ConfigOverride['path'], value: unknown, flag: string): void {
  if (value !== undefined) out.push({ path, value, flag });
}

/** `--port 80,443 --port 8000-9000`: one entry per comma-separated item, as in the config. */
function portItems(list: readonly string[] | undefined): string[] | undefined {
  return list?.flatMap((t) => t.split(','));
}

function commonOverrides(role: 'agent' | 'verifier', f: CommonFlags): Overrides {
  const o: Overrides = [];
  put(o, [role, 'queues'], f.queues, '--queues');
  put(o, [role, 'queue_base'], f.queueBase, '--queue-base');
  put(o, [role, 'fail'], f.fail, '--fail');
  put(o, [role, 'families'], f.family, '--family');
  put(o, ['control', 'socket'], f.controlSocket, '--control-socket');
  put(o, ['log', 'level'], f.logLevel, '--log-level');
  put(o, ['log', 'file'], f.logFile, '--log-file');
  return o;
}

/** The agent's flags as config values (see withOverrides). */
export function agentOverrides(f: AgentFlags): ConfigOverride[] {
  const o = commonOverrides('agent', f);
  put(o, ['agent', 'interfaces'], f.interface, '--interface');
  put(o, ['agent', 'label', 'destinations'], f.destination, '--destination');
  put(o, ['agent', 'label', 'ports'], portItems(f.port), '--port');
  return o;
}

/**
 * The verifier's flags as config values. A selection flag (--in-interface, --out-interface,
 * --source, --destination, --port) replaces the config's rules by one rule, "command-line".
 */
export function verifierOverrides(f: VerifierFlags): ConfigOverride[] {
  const o = commonOverrides('verifier', f);
  put(o, ['verifier', 'hook'], f.hook, '--hook');
  put(o, ['verifier', 'action'], f.action, '--action');
  if (f.inInterface || f.outInterface || f.source || f.destination || f.port) {
    const r: ConfigOverride['path'] = ['verifier', 'rules', 0];
    put(o, ['verifier', 'rules'], [{ name: 'command-line' }], '--in-interface/--out-interface/--source/--destination/--port');
    put(o, [...r, 'in_interfaces'], f.inInterface, '--in-interface');
    put(o, [...r, 'out_interfaces'], f.outInterface, '--out-interface');
    put(o, [...r, 'sources'], f.source, '--source');
    put(o, [...r, 'destinations'], f.destination, '--destination');
    put(o, [...r, 'ports'], portItems(f.port), '--port');
  }
  return o;
}

function queueList(base: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => base + i);
}

function families(list: readonly FamilyName[]): Family[] {
  return [...new Set(list.map((x) => (x === 'ipv4' ? 4 : 6) as Family))];
}

/** Flags a decimal integer flag may carry that is no number (commander gives the text). */
function flagInt(v: number | string | undefined, flag: string): number | undefined {
  if (v === undefined || typeof v === 'number') return v;
  throw new UsageError(`${flag}: must be an integer (decimal digits), got ${JSON.stringify(v)}`);
}

export function resolveAgent(fileCfg: LabelwallConfig, f: AgentFlags): ResolvedAgent {
  const cfg = withOverrides(fileCfg, agentOverrides(f));
  let keyFile: string | undefined;
  if (f.keyFile?.length) {
    if (f.keyFile.length > 1) throw new UsageError('the agent labels with one key: give --key-file once');
    keyFile = f.keyFile[0];
  } else if (cfg.agent.key) keyFile = cfg.keys[cfg.agent.key]?.file;
  if (!keyFile) throw new UsageError('no labelling key: give --key-file FILE or set agent.key in the config');
  const key = loadKeyFile(keyFile); // refuses readable-by-others files, with the reason
  const queues = queueList(cfg.agent.queueBase, cfg.agent.queues);
  return {
    profile: DEFAULT_PROFILE, // the only one there is: no flag or config key chooses yet
    keyFile,
    keyFingerprint: key.fingerprint,
    mark: cfg.agent.mark,
    interfaces: cfg.agent.interfaces,
    destinations: cfg.agent.label.destinations,
    ports: cfg.agent.label.ports,
    queues,
    failOpen: cfg.agent.fail === 'open',
    families: families(cfg.agent.families),
    controlSocket: f.controlSocket ?? controlSocketFor(fileCfg, 'agent'),
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
  const queue = flagInt(f.egressQueue, '--egress-queue') ?? queues[queues.length - 1]! + 1;
  if (!Number.isInteger(queue) || queue < 0 || queue > 65535) throw new UsageError(`--egress-queue ${queue}: queue numbers must be 0..65535`);
  if (queues.includes(queue)) {
    throw new UsageError(`--egress-queue ${queue} is one of the labelling queues ${queues[0]}..${queues[queues.length - 1]}: pick another number`);
  }
  return { egress: { queue, policy: cfg.agent.egress, identity: cfg.agent.identity } };
}

export function resolveVerifier(fileCfg: LabelwallConfig, f: VerifierFlags): ResolvedVerifier {
  const cfg = withOverrides(fileCfg, verifierOverrides(f));
  const keyFingerprints: Record<string, string> = {};
  const named = new Map<string, string>(); // key name -> file
  for (const [name, entry] of Object.entries(cfg.keys)) named.set(name, entry.file);
  const flagFiles = f.keyFile ?? [];
  for (const file of [...flagFiles, ...named.values()]) keyFingerprints[file] = loadKeyFile(file).fingerprint;
  const allFiles = [...new Set([...flagFiles, ...named.values()])];
  if (allFiles.length === 0) throw new UsageError('no verification key: give --key-file FILE (repeatable) or keys in the config');

  // --action overrides every rule's action (the config's rules default to verifier.action).
  const action = (f.action as VerifierAction | undefined) ?? cfg.verifier.action;
  let rules: VerifierRuleData[];
  if (cfg.verifier.rules.length) {
    rules = cfg.verifier.rules.map((r) => ({
      name: r.name,
      inInterfaces: r.inInterfaces,
      outInterfaces: r.outInterfaces,
      sources: r.sources,
      destinations: r.destinations,
      ports: r.ports,
      // Flags add keys to every rule: they are the operator's explicit choice.
      keys: r.keys ? [...new Set([...r.keys.map((k) => named.get(k)!), ...flagFiles])] : allFiles,
      action: (f.action as VerifierAction | undefined) ?? r.action,
    }));
  } else {
    rules = [{ name: 'all-tcp', inInterfaces: [], outInterfaces: [], sources: [], destinations: [], ports: [], keys: allFiles, action }];
  }
  return {
    profile: DEFAULT_PROFILE,
    hook: cfg.verifier.hook,
    mark: cfg.verifier.mark,
    rules,
    keyFingerprints,
    queues: queueList(cfg.verifier.queueBase, cfg.verifier.queues),
    failOpen: cfg.verifier.fail === 'open',
    families: families(cfg.verifier.families),
    controlSocket: f.controlSocket ?? controlSocketFor(fileCfg, 'verifier'),
  };
}
