// The typed config the rest of labelwall uses (what normalize.ts makes of the file): camelCase,
// defaults applied, CIDRs and ports parsed. Its enum types come from the schema (schema.ts).
import type { Cidr, PortRange } from '../util/match.js';
import type { AgentMarks } from './marks.js';
import type { agentProfiles, verifierProfiles } from './schema.js';
import type {
  EbpfMode,
  EgressAction,
  FailMode,
  FamilyName,
  HolderMode,
  LogFormat,
  LogLevel,
  ProtoMatch,
  VerifierAction,
  VerifierHook,
} from './schema.js';

export type { EgressAction, FailMode, FamilyName, LogFormat, LogLevel, ProtoMatch, VerifierAction, VerifierHook } from './schema.js';
import type { ListenAddress } from './listen.js';
export type { ListenAddress } from './listen.js';

export interface AppMatch {
  /** Glob on the executable path (picomatch, dot: true). */
  exe?: string;
  /** Lower-case hex SHA-256 of the executable. */
  sha256?: string;
  /** User name (string) or uid (number). */
  user?: string | number;
  /** Glob on the systemd unit, the container id, or the cgroup path. */
  cgroup?: string;
  /** Regular expression (RE2 syntax, linear time) searched in the argv joined by spaces. */
  cmdline?: string;
  holders: HolderMode;
}

export interface DstMatch {
  cidrs: Cidr[];
  ports: PortRange[];
  proto: ProtoMatch;
}

export interface EgressRule {
  name: string;
  app?: AppMatch;
  dst?: DstMatch;
  action: EgressAction;
  /** v1 app tag (1-65535) given to the flows this rule allows; `tag: NAME|NUMBER`, names from `tags`. */
  tag?: number;
}

export interface EgressPolicy {
  default: EgressAction;
  unknown: EgressAction;
  rules: EgressRule[];
  /** The egress decisions' queue (`agent.egress.queue`); default the one after the labelling queues. */
  queue?: number;
}

/** How flows are attributed to processes (maps onto the identity Attributor's options). */
export interface IdentityConfig {
  /** eBPF socket-owner tracking: auto = use it when it loads. */
  bpf: EbpfMode;
  /** Full /proc scan for every new flow: every holder, slowly. */
  exhaustive: boolean;
  /** SHA-256 of executables. */
  hash: boolean;
  /** Background index period (ms); 0 = none. */
  indexIntervalMs: number;
}

/** Label profiles a role can be configured with (label/registry.ts has the objects). */
export type AgentProfileName = (typeof agentProfiles)[number];
export type VerifierProfileName = (typeof verifierProfiles)[number];

/** agent.nat: destinations whose path translates parts of the flow (v1 S/D/P flags); first match wins. */
export interface AgentNatRule {
  destinations: Cidr[];
  /** NAT_SRC | NAT_DST | NAT_PORTS (label/profile.ts). */
  nat: number;
}

export interface AgentConfig {
  /** Label profile; default v1. */
  profile: AgentProfileName;
  /** Take GSO super-packets whole and cut them into labelled segments (agent/segment.ts); default true. */
  gso: boolean;
  /** Name of the labelling key in `keys`; undefined when not set and `keys` does not hold exactly one. */
  key?: string;
  interfaces: string[];
  families: FamilyName[];
  label: { destinations: Cidr[]; ports: PortRange[] };
  fail: FailMode;
  queues: number;
  queueBase: number;
  /** The agent's packet mark bits (config/marks.ts). */
  mark: AgentMarks;
  /** Bits of the packet and conntrack mark that carry a flow's app tag (`agent.mark.tag_mask`; marks.ts); 0 = none. */
  tagMask: number;
  identity: IdentityConfig;
  egress: EgressPolicy;
  /** v1 NAT flags per destination; default [] (strict). */
  nat: AgentNatRule[];
}

export interface MarkBits {
  mask: number;
  valid: number;
  invalid: number;
  unlabelled: number;
  malformed: number;
  /** v1: where a valid label's app tag goes in the mark (`mark` action); default 0xffff0000; 0 = not marked. */
  tagMask: number;
}

/**
 * A verifier rule, the one type for it at every stage. Only its keys change form on the way,
 * so they are the type parameter: key names in the config (undefined: every key the verifier
 * has), key files in the data sent to a queue worker (a structured clone: no key material
 * objects), loaded keys inside the worker (verifier/decide.ts).
 */
export interface VerifierRule<Keys = readonly string[] | undefined> {
  name: string;
  inInterfaces: readonly string[];
  outInterfaces: readonly string[];
  sources: readonly Cidr[];
  destinations: readonly Cidr[];
  ports: readonly PortRange[];
  keys: Keys;
  action: VerifierAction;
  /** v1: app tags accepted (`tags: [NAME|NUMBER]`); undefined = any. A valid label with another tag is 'tag-denied'. */
  tags?: readonly number[];
  /** v1: NAT flags (NAT_* bits) a label may carry (`allow_nat: [source, destination, ports]`); absent = 0. */
  allowNat?: number;
}

export interface VerifierConfig {
  /** Label profile; default v1. */
  profile: VerifierProfileName;
  /** v1 epochs accepted: [now - before, now + after], 16 s each; default 2 and 1. */
  epochWindow: { before: number; after: number };
  hook: VerifierHook;
  action: VerifierAction;
  families: FamilyName[];
  fail: FailMode;
  queues: number;
  queueBase: number;
  mark: MarkBits;
  rules: VerifierRule[];
}

/** How many egress decisions the agent logs (the rest are counted and summarised). */
export interface DecisionLogLimits {
  /** allow decisions (by a rule, default or unknown) per second; bursts of 10 s worth. */
  allowPerSecond: number;
  /** deny and log-action decisions per second; bursts of 10 s worth. */
  denyPerSecond: number;
  /** Period of the summary of what was not logged (s). */
  summarySeconds: number;
}

export const DEFAULT_DECISION_LOG_LIMITS: Readonly<DecisionLogLimits> = { allowPerSecond: 20, denyPerSecond: 200, summarySeconds: 10 };

export interface LabelwallConfig {
  /** Path the config was read from, when it came from a file. */
  source?: string;
  /** Key name -> key file (absolute; relative paths resolve against the config's folder) and key id (0-7). */
  keys: Record<string, KeyEntry>;
  /** App tag names -> numbers (1-65535), shared by the roles. */
  tags: Record<string, number>;
  log: { level: LogLevel; format: LogFormat; file?: string; egressDecisions: DecisionLogLimits };
  agent: AgentConfig;
  verifier: VerifierConfig;
  /** `control.socket` as given; absent = the role's own, /run/labelwall/<role>.sock (daemon/resolve.ts). */
  control: { socket?: string };
  /** The Prometheus listener (`metrics.listen`); absent = off. */
  metrics: { listen?: ListenAddress };
}

export const DEFAULT_MARK: Readonly<MarkBits> = {
  mask: 0xf00,
  valid: 0x100,
  invalid: 0x200,
  unlabelled: 0x300,
  malformed: 0x400,
  tagMask: 0xffff0000,
};

/** A `keys:` entry: a path (key id 0) or `{ file: PATH, id: N }`. */
export interface KeyEntry {
  file: string;
  id: number;
}
