// From config file + command-line flags to what a daemon runs with (pure, apart from reading
// key files to check them early). Flags win over the config file: each flag's value is put at its
// config key and the whole is validated by the config's own schema and semantic checks
// (withOverrides), so a flag is refused exactly when the same value in the file would be, with
// the same message, naming the flag.
import { loadKeyFile, looksLikeKeyMaterial, MAX_KEY_ID } from '../label/keys.js';
import type { Cidr, PortRange } from '../util/match.js';
import type {
  AgentNatRule,
  AgentProfileName,
  EgressPolicy,
  FamilyName,
  IdentityConfig,
  KeyEntry,
  LabelwallConfig,
  ListenAddress,
  MarkBits,
  VerifierAction,
  VerifierProfileName,
} from '../config/model.js';
import { withOverrides, type ConfigOverride } from '../config/load.js';
import type { AgentMarks } from '../config/marks.js';
import type { Family } from '../wire/packet.js';
import type { VerifierRuleData } from '../verifier/handler.js';

export class UsageError extends Error {}

// Values are as typed on the command line (numbers when written in decimal, see daemons.ts): the
// config schema checks them.
export interface CommonFlags {
  config?: string;
  profile?: string;
  queues?: number | string;
  queueBase?: number | string;
  fail?: string;
  controlSocket?: string;
  logLevel?: string;
  logFormat?: string;
  logFile?: string;
  family?: string[];
  /** --metrics-listen [ADDR:]PORT (metrics.listen). */
  metricsListen?: string;
}

export interface AgentFlags extends CommonFlags {
  keyFile?: string[];
  /** --gso / --no-gso; undefined = agent.gso of the config. */
  gso?: boolean;
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
  /** Where /metrics is served over TCP (metrics.listen, --metrics-listen); undefined = off. */
  metricsListen?: ListenAddress;
  /** The log settings with the flags applied (log.level, log.format, log.file). */
  log: LabelwallConfig['log'];
}

export interface ResolvedAgent extends ResolvedCommon {
  profile: AgentProfileName;
  keyFile: string;
  /** The v1 key id the labels name (0-7; compat labels carry none). */
  keyId: number;
  keyFingerprint: string;
  /** Whole GSO super-packets, cut and labelled by the agent (agent.gso, --no-gso). */
  gso: boolean;
  /** v1 NAT flags per destination (agent.nat), first match wins. */
  nat: AgentNatRule[];
  /** Tag names by number (`tags:`), for status and flows. */
  tagNames: Record<number, string>;
  /** Mark bits that carry the app tag from the egress worker to the labellers; 0 = no tags (no rule gives one). */
  tagMask: number;
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
  profile: VerifierProfileName;
  /** v1 epochs accepted: [now - before, now + after] (16 s each). */
  epochWindow: { before: number; after: number };
  hook: 'input' | 'forward';
  mark: MarkBits;
  rules: VerifierRuleData[];
  keyFingerprints: Record<string, string>;
}

export function defaultControlSocket(role: 'agent' | 'verifier'): string {
  return `/run/labelwall/${role}.sock`;
}

/** The config's control.socket when one was given (any path, the other role's default too), else the role's own. */
function controlSocketFor(cfg: LabelwallConfig, role: 'agent' | 'verifier'): string {
  return cfg.control.socket ?? defaultControlSocket(role);
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
  put(o, [role, 'profile'], f.profile, '--profile');
  put(o, [role, 'queues'], f.queues, '--queues');
  put(o, [role, 'queue_base'], f.queueBase, '--queue-base');
  put(o, [role, 'fail'], f.fail, '--fail');
  put(o, [role, 'families'], f.family, '--family');
  put(o, ['control', 'socket'], f.controlSocket, '--control-socket');
  put(o, ['log', 'level'], f.logLevel, '--log-level');
  put(o, ['log', 'format'], f.logFormat, '--log-format');
  put(o, ['log', 'file'], f.logFile, '--log-file');
  put(o, ['metrics', 'listen'], f.metricsListen, '--metrics-listen');
  return o;
}

/** The agent's flags as config values (see withOverrides). */
export function agentOverrides(f: AgentFlags): ConfigOverride[] {
  const o = commonOverrides('agent', f);
  put(o, ['agent', 'interfaces'], f.interface, '--interface');
  put(o, ['agent', 'label', 'destinations'], f.destination, '--destination');
  put(o, ['agent', 'label', 'ports'], portItems(f.port), '--port');
  put(o, ['agent', 'gso'], f.gso, f.gso === false ? '--no-gso' : '--gso');
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

/**
 * `--key-file FILE` is key id 0; `--key-file ID=FILE` gives the v1 key id (0-7), as in the pcap
 * commands. A file whose name starts with digits and '=' is written ./5=name.
 */
export function parseKeyFlag(text: string): KeyEntry {
  const m = /^(\d+)=(.*)$/s.exec(text);
  if (!m) return { file: text, id: 0 };
  const id = Number(m[1]);
  // A key given where its file belongs (ID=<hex>) is not echoed.
  const shown = looksLikeKeyMaterial(m[2]!) ? `${m[1]}=…` : text;
  if (id > MAX_KEY_ID) throw new UsageError(`--key-file ${shown}: key id ${m[1]} is not 0-${MAX_KEY_ID} (a file of that name: ./${shown})`);
  if (m[2] === '') throw new UsageError(`--key-file ${text}: no file after '${m[1]}='`);
  return { file: m[2]!, id };
}

/** Tag numbers -> names (the config's `tags:`). */
export function tagNamesOf(cfg: LabelwallConfig): Record<number, string> {
  return Object.fromEntries(Object.entries(cfg.tags).map(([name, n]) => [n, name]));
}

/** A key as the verifier worker data carries it: a key file for id 0, else { file, id }. */
function keyData(e: KeyEntry): VerifierRuleData['keys'][number] {
  // Plain files for id 0 keep the worker data of the compat days; workers read both forms.
  return (e.id === 0 ? e.file : { file: e.file, id: e.id }) as unknown as VerifierRuleData['keys'][number];
}

export function resolveAgent(fileCfg: LabelwallConfig, f: AgentFlags): ResolvedAgent {
  const cfg = withOverrides(fileCfg, agentOverrides(f));
  let entry: KeyEntry | undefined;
  if (f.keyFile?.length) {
    if (f.keyFile.length > 1) throw new UsageError('the agent labels with one key: give --key-file once');
    entry = parseKeyFlag(f.keyFile[0]!);
  } else if (cfg.agent.key) entry = cfg.keys[cfg.agent.key];
  if (!entry) throw new UsageError('no labelling key: give --key-file FILE or set agent.key in the config');
  const key = loadKeyFile(entry.file, entry.id); // refuses readable-by-others files, with the reason
  const queues = queueList(cfg.agent.queueBase, cfg.agent.queues);
  return {
    profile: cfg.agent.profile,
    keyFile: entry.file,
    keyId: key.keyId,
    keyFingerprint: key.fingerprint,
    gso: cfg.agent.gso,
    nat: cfg.agent.nat,
    tagNames: tagNamesOf(cfg),
    interfaces: cfg.agent.interfaces,
    destinations: cfg.agent.label.destinations,
    ports: cfg.agent.label.ports,
    queues,
    failOpen: cfg.agent.fail === 'open',
    families: families(cfg.agent.families),
    controlSocket: f.controlSocket ?? controlSocketFor(fileCfg, 'agent'),
    ...commonResolved(cfg),
    ...withEgress(cfg, resolveEgress(cfg, f, queues)),
  };
}

/**
 * The tag bits are used only when some flow can get a tag: with an egress queue and a rule that
 * gives one. Otherwise (tagMask 0) the agent adds no CONNMARK rules and leaves those bits alone.
 */
function withEgress(cfg: LabelwallConfig, e: { egress?: ResolvedEgress }): { egress?: ResolvedEgress; mark: AgentMarks; tagMask: number } {
  const tagged = e.egress?.policy.rules.some((x) => x.tag !== undefined) ?? false;
  return { ...e, mark: cfg.agent.mark, tagMask: tagged ? cfg.agent.tagMask : 0 };
}

/**
 * Egress enforcement is on with --egress, off with --no-egress, and otherwise on exactly when a
 * config file was given (its agent.egress, defaults allow/allow when the section is absent).
 * Its queue is --egress-queue, else the first number after the labelling queues.
 */
function resolveEgress(cfg: LabelwallConfig, f: AgentFlags, queues: number[]): { egress?: ResolvedEgress } {
  const on = f.egress ?? f.config !== undefined;
  if (!on) {
    if (f.egressQueue !== undefined)
      throw new UsageError('--egress-queue: egress policy is off (--no-egress, or no --config); give --egress or a config file');
    return {};
  }
  const flag = flagInt(f.egressQueue, '--egress-queue');
  const given = flag ?? cfg.agent.egress.queue;
  const queue = given ?? queues[queues.length - 1]! + 1;
  // Named as the user gave it: the flag, the config key, or the default after the labelling queues.
  const source = flag !== undefined ? '--egress-queue' : given !== undefined ? 'agent.egress.queue' : undefined;
  const range = `${queues[0]}..${queues[queues.length - 1]}`;
  if (!Number.isInteger(queue) || queue < 0 || queue > 65535) {
    throw new UsageError(
      source
        ? `${source} ${queue}: queue numbers must be 0..65535`
        : `the egress queue, by default the one after the labelling queues ${range}, would be ${queue}: lower agent.queue_base (--queue-base) or set agent.egress.queue (--egress-queue)`,
    );
  }
  if (queues.includes(queue)) {
    throw new UsageError(`${source ?? 'the egress queue'} ${queue} is one of the labelling queues ${range}: pick another number`);
  }
  return { egress: { queue, policy: cfg.agent.egress, identity: cfg.agent.identity } };
}

export function resolveVerifier(fileCfg: LabelwallConfig, f: VerifierFlags): ResolvedVerifier {
  const cfg = withOverrides(fileCfg, verifierOverrides(f));
  const keyFingerprints: Record<string, string> = {};
  const named = new Map<string, KeyEntry>(); // key name -> file and id
  for (const [name, entry] of Object.entries(cfg.keys)) named.set(name, entry);
  const flagKeys = (f.keyFile ?? []).map(parseKeyFlag);
  for (const e of [...flagKeys, ...named.values()]) keyFingerprints[e.file] = loadKeyFile(e.file, e.id).fingerprint;
  const allKeys = uniqueKeys([...flagKeys, ...named.values()]);
  if (allKeys.length === 0) throw new UsageError('no verification key: give --key-file FILE (repeatable) or keys in the config');
  const v1 = cfg.verifier.profile !== 'compat';
  const ruleKeys = (name: string, list: KeyEntry[]): VerifierRuleData['keys'] => {
    const keys = uniqueKeys(list);
    if (v1) checkKeyIds(name, keys, named);
    return keys.map(keyData);
  };

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
      keys: ruleKeys(r.name, r.keys ? [...r.keys.map((k) => named.get(k)!), ...flagKeys] : allKeys),
      action: (f.action as VerifierAction | undefined) ?? r.action,
      ...(r.tags !== undefined ? { tags: r.tags } : {}),
      ...(r.allowNat !== undefined ? { allowNat: r.allowNat } : {}),
    }));
  } else {
    rules = [
      {
        name: 'all-tcp',
        inInterfaces: [],
        outInterfaces: [],
        sources: [],
        destinations: [],
        ports: [],
        keys: ruleKeys('all-tcp', allKeys),
        action,
      },
    ];
  }
  return {
    profile: cfg.verifier.profile,
    epochWindow: cfg.verifier.epochWindow,
    hook: cfg.verifier.hook,
    mark: cfg.verifier.mark,
    rules,
    keyFingerprints,
    queues: queueList(cfg.verifier.queueBase, cfg.verifier.queues),
    failOpen: cfg.verifier.fail === 'open',
    families: families(cfg.verifier.families),
    controlSocket: f.controlSocket ?? controlSocketFor(fileCfg, 'verifier'),
    ...commonResolved(cfg),
  };
}

/** What both roles take from the config with the flags applied. */
function commonResolved(cfg: LabelwallConfig): Pick<ResolvedCommon, 'metricsListen' | 'log'> {
  return { ...(cfg.metrics.listen ? { metricsListen: cfg.metrics.listen } : {}), log: cfg.log };
}

/** The same file with the same id once. */
function uniqueKeys(list: readonly KeyEntry[]): KeyEntry[] {
  const seen = new Set<string>();
  return list.filter((e) => {
    const k = `${e.id} ${e.file}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * A v1 label names its key by id, so the keys of one rule need distinct ids (the config's checks
 * say so at the line; this also covers --key-file and the implicit rule of a file without a
 * verifier section).
 */
function checkKeyIds(rule: string, keys: readonly KeyEntry[], named: ReadonlyMap<string, KeyEntry>): void {
  const nameOf = (e: KeyEntry): string => {
    for (const [n, x] of named) if (x.file === e.file && x.id === e.id) return `key "${n}" (${e.file})`;
    return `--key-file ${e.id ? `${e.id}=` : ''}${e.file}`;
  };
  const byId = new Map<number, KeyEntry>();
  for (const e of keys) {
    const other = byId.get(e.id);
    if (other) {
      throw new UsageError(
        `verifier rule "${rule}": ${nameOf(e)} and ${nameOf(other)} both have key id ${e.id}; a v1 label names its key by id: give each key its own id (--key-file ID=FILE, or keys: NAME: { file: PATH, id: N })`,
      );
    }
    byId.set(e.id, e);
  }
}
