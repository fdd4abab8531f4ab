// Loads and validates the labelwall YAML config: schema (ajv) first, then semantic checks;
// every problem is reported with file:line:col and its key path, all at once.
import { dirname, isAbsolute, resolve } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { parseDocument, LineCounter, isMap, isSeq, isScalar, visit, type Document, type Node as YamlNode } from 'yaml';
import picomatch from 'picomatch';
import { configSchema } from './schema.js';
import { readRegularFile, ReadFileError } from '../util/files.js';
import { cmdlinePatternError, parseCidr, parsePortRange, type Cidr, type PortRange } from './match.js';
import { DEFAULT_AGENT_MARK, type AgentMarks } from '../agent/marks.js';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';
export type FailMode = 'closed' | 'open';
export type EgressAction = 'allow' | 'deny' | 'log';
export type VerifierAction = 'drop' | 'mark' | 'log';
export type Family = 'ipv4' | 'ipv6';
export type ProtoMatch = 'tcp' | 'udp' | 'icmp' | 'any';

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
  holders: 'any' | 'all';
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
}

export interface EgressPolicy {
  default: EgressAction;
  unknown: EgressAction;
  rules: EgressRule[];
}

/** How flows are attributed to processes (maps onto the identity Attributor's options). */
export interface IdentityConfig {
  /** eBPF socket-owner tracking: auto = use it when it loads. */
  bpf: 'auto' | 'on' | 'off';
  /** Full /proc scan for every new flow: every holder, slowly. */
  exhaustive: boolean;
  /** SHA-256 of executables. */
  hash: boolean;
  /** Background index period (ms); 0 = none. */
  indexIntervalMs: number;
}

export interface AgentConfig {
  /** Name of the labelling key in `keys`; undefined when not set and `keys` does not hold exactly one. */
  key?: string;
  interfaces: string[];
  families: Family[];
  label: { destinations: Cidr[]; ports: PortRange[] };
  fail: FailMode;
  queues: number;
  queueBase: number;
  /** The agent's packet mark bits (agent/marks.ts). */
  mark: AgentMarks;
  identity: IdentityConfig;
  egress: EgressPolicy;
}

export interface MarkBits {
  mask: number;
  valid: number;
  invalid: number;
  unlabeled: number;
  malformed: number;
}

export interface VerifierRule {
  name: string;
  inInterfaces: string[];
  outInterfaces: string[];
  sources: Cidr[];
  destinations: Cidr[];
  ports: PortRange[];
  /** Key names; undefined = every key the verifier has. */
  keys?: string[];
  action: VerifierAction;
}

export interface VerifierConfig {
  hook: 'input' | 'forward';
  action: VerifierAction;
  families: Family[];
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
  /** Key name -> key file path (absolute; relative paths resolve against the config's folder). */
  keys: Record<string, string>;
  log: { level: LogLevel; file?: string; egressDecisions: DecisionLogLimits };
  agent: AgentConfig;
  verifier: VerifierConfig;
  control: { socket: string };
}

export interface ConfigProblem {
  file: string;
  line: number;
  col: number;
  /** Key path such as "agent.egress.rules[0].app.sha256"; "" for the document itself. */
  path: string;
  message: string;
  /** The command-line flag the value came from (see withOverrides); then file/line/col are unused. */
  flag?: string;
}

export class ConfigError extends Error {
  readonly problems: ConfigProblem[];
  constructor(problems: ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export function formatProblem(p: ConfigProblem): string {
  if (p.flag !== undefined) return `${p.flag}: ${p.message}`;
  return `${p.file}:${p.line}:${p.col}: ${p.path === '' ? '(document)' : p.path}: ${p.message}`;
}

export const DEFAULT_MARK: Readonly<MarkBits> = { mask: 0xf00, valid: 0x100, invalid: 0x200, unlabeled: 0x300, malformed: 0x400 };
export const DEFAULT_CONTROL_SOCKET = '/run/labelwall/agent.sock';

/** Largest config file read; real configs are a few KiB. */
export const MAX_CONFIG_BYTES = 1 << 20;
/** YAML aliases allowed (the yaml library's maxAliasCount): bounds what an alias bomb expands to. */
export const MAX_YAML_ALIASES = 100;

/**
 * Reads and validates a config file; throws ConfigError (also for an unreadable file, one that
 * is not a regular file, e.g. a FIFO or /dev/zero, or one larger than MAX_CONFIG_BYTES).
 */
export function loadConfig(path: string): LabelwallConfig {
  let text: string;
  try {
    text = readRegularFile(path, MAX_CONFIG_BYTES).toString('utf8');
  } catch (e) {
    if (!(e instanceof ReadFileError)) throw e;
    throw new ConfigError([{ file: path, line: 1, col: 1, path: '', message: `cannot read config file: ${e.message}` }]);
  }
  return parseConfig(text, path);
}

/** The config with every default applied, as if the file were empty. */
export function defaultConfig(): LabelwallConfig {
  return parseConfig('', '<defaults>');
}

/**
 * A command-line flag's value, put at its config key (`path`, in the file's snake_case) before
 * validation, so that flags and the file go through the same schema and semantic checks; a
 * problem at or under `path` is reported with the flag's name instead of file:line:col.
 */
export interface ConfigOverride {
  path: Seg[];
  value: unknown;
  flag: string;
}

// The text a config was parsed from, so that withOverrides can validate it again with flags.
const SOURCE = Symbol('labelwall.config.source');
type WithSource = LabelwallConfig & { [SOURCE]?: { text: string; fileName: string } };

/**
 * The config with the flags applied, validated as a whole (the file's values and the flags
 * together: `--hook input` and a file rule with out_interfaces are refused like one file with
 * both). Throws ConfigError.
 */
export function withOverrides(cfg: LabelwallConfig, overrides: readonly ConfigOverride[]): LabelwallConfig {
  const src = (cfg as WithSource)[SOURCE] ?? { text: '', fileName: '<defaults>' };
  return overrides.length === 0 ? cfg : parseConfig(src.text, src.fileName, overrides);
}

function setIn(data: Obj, path: readonly Seg[], value: unknown): void {
  let cur: Obj | unknown[] = data;
  for (let i = 0; i < path.length - 1; i++) {
    const k = path[i]!;
    let next = (cur as Record<Seg, unknown>)[k];
    if (next === undefined) (cur as Record<Seg, unknown>)[k] = next = typeof path[i + 1] === 'number' ? [] : {};
    if (next === null || typeof next !== 'object') return; // the schema reports the file's mistake
    cur = next as Obj | unknown[];
  }
  (cur as Record<Seg, unknown>)[path[path.length - 1]!] = value;
}

function isPrefix(prefix: readonly Seg[], path: readonly Seg[]): boolean {
  return prefix.length <= path.length && prefix.every((s, i) => s === path[i]);
}

type Seg = string | number;

const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true });
ajv.addKeyword({ keyword: 'errorHint', schemaType: 'string' });
const validateSchema = ajv.compile(configSchema);

export function parseConfig(text: string, fileName: string, overrides: readonly ConfigOverride[] = []): LabelwallConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const problems: ConfigProblem[] = [];
  const pos = (offset: number): { line: number; col: number } => lineCounter.linePos(offset);

  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const { line, col } = pos(e.pos[0]);
      problems.push({ file: fileName, line, col, path: '', message: `YAML syntax error: ${firstLine(e.message)}` });
    }
    throw new ConfigError(problems);
  }

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES }) ?? {};
  } catch (e) {
    // The yaml library refuses exponential alias expansion with a ReferenceError.
    if (!(e instanceof ReferenceError)) throw e;
    const { line, col } = firstAliasPos(doc, pos);
    problems.push({ file: fileName, line, col, path: '', message: `YAML aliases expand too much (more than ${MAX_YAML_ALIASES} aliased nodes): ${firstLine(e.message)}` });
    throw new ConfigError(problems);
  }
  if (isObject(data)) for (const o of overrides) setIn(data, o.path, o.value);
  // The flag whose value is at `path` (the most specific override containing it), if any.
  const flagAt = (path: readonly Seg[]): string | undefined => {
    let best: ConfigOverride | undefined;
    for (const o of overrides) if (isPrefix(o.path, path) && (!best || o.path.length >= best.path.length)) best = o;
    return best?.flag;
  };
  const where = new Locator(doc, pos);
  const add = (path: Seg[], message: string, keyOf?: string): void => {
    const full = keyOf !== undefined ? [...path, keyOf] : path;
    const flag = flagAt(full);
    if (flag !== undefined) {
      problems.push({ file: fileName, line: 0, col: 0, path: formatPath(full), message, flag });
      return;
    }
    const { line, col } = keyOf !== undefined ? where.key(path, keyOf) : where.value(path);
    problems.push({ file: fileName, line, col, path: formatPath(full), message });
  };

  if (!validateSchema(data)) {
    for (const e of validateSchema.errors ?? []) reportSchemaError(e, add);
  }
  if (isObject(data)) semanticChecks(data, add, flagAt);
  if (problems.length > 0) {
    problems.sort((a, b) => a.line - b.line || a.col - b.col);
    throw new ConfigError(dedupe(problems));
  }
  const cfg: WithSource = normalize(data as RawConfig, fileName);
  if (fileName !== '<defaults>' && !fileName.startsWith('<')) cfg.source = fileName;
  Object.defineProperty(cfg, SOURCE, { value: { text, fileName }, enumerable: false });
  return cfg;
}

/** Where the first alias (*name) of the document is, for the alias-bomb message. */
function firstAliasPos(doc: Document, pos: (offset: number) => { line: number; col: number }): { line: number; col: number } {
  let at: number | undefined;
  visit(doc, {
    Alias(_key, node) {
      at = node.range?.[0];
      return visit.BREAK;
    },
  });
  return at === undefined ? { line: 1, col: 1 } : pos(at);
}

// ---------------------------------------------------------------------------------------------
// Locating nodes

class Locator {
  constructor(
    private readonly doc: Document,
    private readonly pos: (offset: number) => { line: number; col: number },
  ) {}

  /** Position of the value at `path`, or of its nearest existing ancestor. */
  value(path: Seg[]): { line: number; col: number } {
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? this.doc.contents : this.doc.getIn(path.slice(0, n), true);
      const r = nodeRange(node);
      if (r !== undefined) return this.pos(r);
    }
    return { line: 1, col: 1 };
  }

  /** Position of the key `key` inside the mapping at `path`. */
  key(path: Seg[], key: string): { line: number; col: number } {
    const parent = path.length === 0 ? this.doc.contents : this.doc.getIn(path, true);
    if (isMap(parent)) {
      for (const pair of parent.items) {
        const k = pair.key;
        const kv = isScalar(k) ? String(k.value) : k;
        if (kv === key) {
          const r = nodeRange(k);
          if (r !== undefined) return this.pos(r);
        }
      }
    }
    return this.value(path);
  }
}

function nodeRange(node: unknown): number | undefined {
  if (node !== null && typeof node === 'object' && 'range' in node) {
    const r = (node as YamlNode).range;
    if (Array.isArray(r)) return r[0];
  }
  return undefined;
}

function pointerToPath(pointer: string): Seg[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

export function formatPath(path: readonly Seg[]): string {
  let out = '';
  for (const s of path) {
    if (typeof s === 'number') out += `[${s}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(s)) out += out === '' ? s : `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Schema errors -> messages

type Add = (path: Seg[], message: string, keyOf?: string) => void;

function reportSchemaError(e: ErrorObject, add: Add): void {
  const path = pointerToPath(e.instancePath);
  const parent = (e.parentSchema ?? {}) as Record<string, unknown>;
  const hint = typeof parent.errorHint === 'string' ? parent.errorHint : undefined;
  const params = e.params as Record<string, unknown>;
  if (e.propertyName !== undefined) {
    // A key that breaks `propertyNames`: point at the key itself.
    add(path, `invalid key name "${e.propertyName}": ${hint ?? e.message ?? 'invalid'}`, e.propertyName);
    return;
  }
  switch (e.keyword) {
    case 'propertyNames':
      return; // reported through the nested error above
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const props = parent.properties as Record<string, unknown> | undefined;
      const valid = props ? Object.keys(props) : [];
      const near = nearest(key, valid);
      const tail = near !== undefined ? ` (did you mean "${near}"?)` : valid.length > 0 ? ` (valid keys: ${valid.join(', ')})` : '';
      add(path, `unknown key "${key}"${tail}`, key);
      return;
    }
    case 'required':
      add(path, `missing required key "${String(params.missingProperty)}"`);
      return;
    case 'type':
      {
        const expects = String(params.type).split(',');
        // An unquoted digest or id made only of digits becomes a YAML number.
        const quote = typeof e.data === 'number' && expects.includes('string') && !expects.includes('integer') ? ' (quote the value: YAML read it as a number)' : '';
        add(path, `${hint ?? `must be ${describeType(params.type)}`}, got ${describeValue(e.data)}${quote}`);
      }
      return;
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map(String);
      const near = typeof e.data === 'string' ? nearest(e.data, allowed) : undefined;
      const tail = near !== undefined ? ` (did you mean "${near}"?)` : '';
      add(path, `must be one of ${allowed.join(', ')}, got ${describeValue(e.data)}${tail}`);
      return;
    }
    case 'pattern':
      add(path, hint ? `${hint}, got ${describeValue(e.data)}` : `${describeValue(e.data)} ${e.message ?? ''}`);
      return;
    case 'minimum':
    case 'maximum':
      add(path, `must be an integer from ${String(parent.minimum)} to ${String(parent.maximum)}, got ${describeValue(e.data)}`);
      return;
    case 'minLength':
      add(path, 'must not be empty');
      return;
    case 'minItems':
      add(path, 'must list at least one entry');
      return;
    case 'uniqueItems':
      add(path, `lists the same entry twice (entries ${String(params.j)} and ${String(params.i)})`);
      return;
    default:
      add(path, e.message ?? `fails schema keyword ${e.keyword}`);
  }
}

function describeType(t: unknown): string {
  const names: Record<string, string> = {
    object: 'a mapping',
    array: 'a list',
    string: 'a string',
    integer: 'an integer',
    number: 'a number',
    boolean: 'true or false',
  };
  const list = Array.isArray(t) ? t : String(t).split(',');
  return list.map((x) => names[String(x)] ?? String(x)).join(' or ');
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}

/** The candidate closest to `word` by edit distance, when close enough to be a likely typo. */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  const limit = Math.max(2, Math.floor(word.length / 3));
  return bestD <= limit ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}

function dedupe(ps: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return ps.filter((p) => {
    const k = formatProblem(p);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

// ---------------------------------------------------------------------------------------------
// Semantic checks: run on whatever parts are well-typed, so every problem shows up in one pass.

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
const asObj = (v: unknown): Obj | undefined => (isObject(v) ? v : undefined);
const asArr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

function checkCidrs(list: unknown, path: Seg[], add: Add): void {
  asArr(list).forEach((c, i) => {
    if (typeof c !== 'string') return;
    const r = parseCidr(c);
    if (!r.ok) add([...path, i], `bad CIDR: ${r.reason}`);
  });
}

function checkPorts(list: unknown, path: Seg[], add: Add): void {
  asArr(list).forEach((p, i) => {
    if (typeof p !== 'string' && typeof p !== 'number') return;
    const r = parsePortRange(p);
    if (!r.ok) add([...path, i], `bad port: ${r.reason}`);
  });
}

function checkGlob(v: unknown, path: Seg[], add: Add): void {
  if (typeof v !== 'string' || v === '') return;
  try {
    picomatch.makeRe(v, { dot: true, strictBrackets: true });
  } catch (e) {
    add(path, `bad glob "${v}": ${(e as Error).message}`);
  }
}

function checkKeyRef(name: unknown, keys: Obj, path: Seg[], add: Add): void {
  if (typeof name !== 'string') return;
  if (Object.prototype.hasOwnProperty.call(keys, name)) return;
  const defined = Object.keys(keys);
  const near = nearest(name, defined);
  const tail = near !== undefined ? ` (did you mean "${near}"?)` : defined.length > 0 ? ` (defined: ${defined.join(', ')})` : ' (the keys section defines none)';
  add(path, `key "${name}" is not defined under keys${tail}`);
}

function parseMarkValue(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 && v <= 0xffffffff ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const s = v.trim();
  if (!/^(0x[0-9a-fA-F]{1,8}|\d{1,10})$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 0xffffffff ? n : undefined;
}

function checkQueues(section: Obj, path: Seg[], add: Add): void {
  const q = section.queues;
  const b = section.queue_base;
  const queues = typeof q === 'number' && Number.isInteger(q) ? q : 1;
  // A base or count outside its own range is the schema's to report.
  if (typeof b === 'number' && Number.isInteger(b) && b <= 65535 && queues <= 64 && b + queues - 1 > 65535) {
    add([...path, 'queue_base'], `queues ${b}..${b + queues - 1} run past the last queue number 65535`);
  }
}

/**
 * agent.mark: each value non-zero, no bit shared between two of them, and none inside the
 * verifier's mask (configured or default): on a host that runs both, the verifier takes a packet
 * with a bit of its mask set as already judged, so an agent bit there would let packets by.
 */
function checkAgentMarks(agent: Obj | undefined, verifier: Obj | undefined, add: Add): void {
  const given = asObj(agent?.mark);
  const vmark = asObj(verifier?.mark);
  if (!given && vmark?.mask === undefined) return; // both defaults: disjoint by construction
  const vals: Partial<Record<keyof AgentMarks, number>> = {};
  for (const k of ['done', 'deny', 'allow'] as const) {
    const raw = given?.[k];
    if (raw === undefined) vals[k] = DEFAULT_AGENT_MARK[k];
    else if (typeof raw === 'number' || typeof raw === 'string') {
      const n = parseMarkValue(raw);
      if (n === undefined) add(['agent', 'mark', k], `${describeValue(raw)} is not a 32-bit unsigned integer`);
      else if (n === 0) add(['agent', 'mark', k], 'mark value must not be 0 (0 is indistinguishable from "not marked")');
      else vals[k] = n;
    }
  }
  const hex = (n: number): string => `0x${n.toString(16)}`;
  const seen: Array<[keyof AgentMarks, number]> = [];
  for (const k of ['done', 'deny', 'allow'] as const) {
    const v = vals[k];
    if (v === undefined) continue;
    const clash = seen.find(([, o]) => (o & v) !== 0);
    if (clash) add(['agent', 'mark', k], `${hex(v)} shares bits ${hex((clash[1] & v) >>> 0)} with agent.mark.${clash[0]} (each mark needs bits of its own)`);
    seen.push([k, v]);
  }
  const vm = vmark?.mask === undefined ? DEFAULT_MARK.mask : parseMarkValue(vmark.mask);
  if (vm === undefined || vm === 0) return; // reported with verifier.mark
  const defaults: string[] = [];
  for (const [k, v] of seen) {
    if ((v & vm) === 0) continue;
    if (given?.[k] !== undefined) {
      add(['agent', 'mark', k], `${hex(v)} overlaps the verifier's mark mask ${hex(vm)}: a verifier on the same host would take the agent's packets as already judged`);
    } else defaults.push(`${k} ${hex(v)}`);
  }
  if (defaults.length > 0) {
    add(['verifier', 'mark', 'mask'], `${hex(vm)} overlaps the agent's default marks (${defaults.join(', ')}): set agent.mark to bits outside the mask`);
  }
}

/** The longest path a UNIX socket can have (sun_path holds 108 bytes with the NUL). */
const MAX_SOCKET_PATH = 107;

function semanticChecks(data: Obj, add: Add, flagAt: (path: readonly Seg[]) => string | undefined): void {
  const control = asObj(data.control);
  if (typeof control?.socket === 'string' && Buffer.byteLength(control.socket) > MAX_SOCKET_PATH) {
    add(['control', 'socket'], `is ${Buffer.byteLength(control.socket)} bytes long; a UNIX socket path has at most ${MAX_SOCKET_PATH}`);
  }
  checkAgentMarks(asObj(data.agent), asObj(data.verifier), add);
  const keys = asObj(data.keys) ?? {};
  const agent = asObj(data.agent);
  if (agent) {
    if (agent.key !== undefined) checkKeyRef(agent.key, keys, ['agent', 'key'], add);
    const label = asObj(agent.label);
    if (label) {
      checkCidrs(label.destinations, ['agent', 'label', 'destinations'], add);
      checkPorts(label.ports, ['agent', 'label', 'ports'], add);
    }
    checkQueues(agent, ['agent'], add);
    const egress = asObj(agent.egress);
    const names = new Map<string, number>();
    asArr(egress?.rules).forEach((r, i) => {
      const rule = asObj(r);
      if (!rule) return;
      const base: Seg[] = ['agent', 'egress', 'rules', i];
      const name = typeof rule.name === 'string' ? rule.name : `rule-${i + 1}`;
      if (names.has(name)) {
        add([...base, 'name'], `rule name "${name}" is already used by rules[${names.get(name)}]`);
      } else names.set(name, i);
      const app = asObj(rule.app);
      if (app) {
        if (typeof app.exe === 'string' && app.exe !== '') {
          checkGlob(app.exe, [...base, 'app', 'exe'], add);
          if (!app.exe.startsWith('/') && !app.exe.startsWith('*')) {
            add(
              [...base, 'app', 'exe'],
              `"${app.exe}" can never match: executable paths are absolute (write "/usr/bin/${app.exe}" or "**/${app.exe}")`,
            );
          }
        }
        checkGlob(app.cgroup, [...base, 'app', 'cgroup'], add);
        if (typeof app.cmdline === 'string' && app.cmdline !== '') {
          // The engine that matches it (RE2, linear time) decides what is valid: no backreferences, no lookaround.
          const err = cmdlinePatternError(app.cmdline);
          if (err !== undefined) add([...base, 'app', 'cmdline'], `bad regular expression (RE2 syntax: no backreferences or lookaround): ${err}`);
        }
        if (typeof app.user === 'number' && (!Number.isInteger(app.user) || app.user < 0 || app.user > 0xfffffffe)) {
          add([...base, 'app', 'user'], `uid ${app.user} is out of range`);
        }
      }
      const dst = asObj(rule.dst);
      if (dst) {
        checkCidrs(dst.cidr, [...base, 'dst', 'cidr'], add);
        checkPorts(dst.ports, [...base, 'dst', 'ports'], add);
        if (dst.proto === 'icmp' && asArr(dst.ports).length > 0) {
          add([...base, 'dst', 'ports'], 'ports do not apply to proto icmp');
        }
      }
    });
  }

  const verifier = asObj(data.verifier);
  if (verifier) {
    checkQueues(verifier, ['verifier'], add);
    const mark = asObj(verifier.mark);
    if (mark) {
      const vals: Partial<Record<keyof MarkBits, number>> = {};
      for (const k of ['mask', 'valid', 'invalid', 'unlabeled', 'malformed'] as const) {
        if (mark[k] === undefined) {
          vals[k] = DEFAULT_MARK[k];
          continue;
        }
        if (typeof mark[k] !== 'number' && typeof mark[k] !== 'string') continue; // schema reported it
        const n = parseMarkValue(mark[k]);
        if (n === undefined) add(['verifier', 'mark', k], `${describeValue(mark[k])} is not a 32-bit unsigned integer`);
        else vals[k] = n;
      }
      const mask = vals.mask;
      if (mask === 0) add(['verifier', 'mark', 'mask'], 'mask must not be 0');
      const seen = new Map<number, string>();
      for (const k of ['valid', 'invalid', 'unlabeled', 'malformed'] as const) {
        const v = vals[k];
        if (v === undefined) continue;
        const p: Seg[] = ['verifier', 'mark', k];
        if (v === 0) add(p, `mark value must not be 0 (0 is indistinguishable from "not judged")`);
        else if (mask !== undefined && (v & ~mask) >>> 0 !== 0) {
          add(p, `0x${v.toString(16)} has bits outside the mask 0x${mask.toString(16)}`);
        } else if (seen.has(v)) add(p, `0x${v.toString(16)} is the same value as ${seen.get(v)}`);
        if (v !== 0 && !seen.has(v)) seen.set(v, k);
      }
    }
    const hook = verifier.hook ?? 'forward';
    const names = new Map<string, number>();
    asArr(verifier.rules).forEach((r, i) => {
      const rule = asObj(r);
      if (!rule) return;
      const base: Seg[] = ['verifier', 'rules', i];
      const name = typeof rule.name === 'string' ? rule.name : `rule-${i + 1}`;
      if (names.has(name)) add([...base, 'name'], `rule name "${name}" is already used by rules[${names.get(name)}]`);
      else names.set(name, i);
      checkCidrs(rule.sources, [...base, 'sources'], add);
      checkCidrs(rule.destinations, [...base, 'destinations'], add);
      checkPorts(rule.ports, [...base, 'ports'], add);
      asArr(rule.keys).forEach((k, j) => checkKeyRef(k, keys, [...base, 'keys', j], add));
      if (hook === 'input' && asArr(rule.out_interfaces).length > 0) {
        const hookFrom = flagAt(['verifier', 'hook']) !== undefined ? '--hook input' : 'hook: input';
        add([...base, 'out_interfaces'], `out_interfaces does not apply with ${hookFrom} (packets there have no output interface)`);
      }
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Defaults and typed result (input already validated)

interface RawConfig {
  keys?: Record<string, string>;
  log?: { level?: LogLevel; file?: string; egress_decisions?: { allow_per_second?: number; deny_per_second?: number; summary_seconds?: number } };
  agent?: {
    key?: string;
    interfaces?: string[];
    families?: Family[];
    label?: { destinations?: string[]; ports?: (string | number)[] };
    fail?: FailMode;
    queues?: number;
    queue_base?: number;
    mark?: Partial<Record<keyof AgentMarks, number | string>>;
    identity?: { ebpf?: 'auto' | 'on' | 'off'; exhaustive?: boolean; hash?: boolean; index_interval_ms?: number };
    egress?: {
      default?: EgressAction;
      unknown?: EgressAction;
      rules?: {
        name?: string;
        app?: Omit<AppMatch, 'holders'> & { holders?: 'any' | 'all' };
        dst?: { cidr?: string[]; ports?: (string | number)[]; proto?: ProtoMatch };
        action: EgressAction;
      }[];
    };
  };
  verifier?: {
    hook?: 'input' | 'forward';
    action?: VerifierAction;
    families?: Family[];
    fail?: FailMode;
    queues?: number;
    queue_base?: number;
    mark?: Partial<Record<keyof MarkBits, number | string>>;
    rules?: {
      name?: string;
      in_interfaces?: string[];
      out_interfaces?: string[];
      sources?: string[];
      destinations?: string[];
      ports?: (string | number)[];
      keys?: string[];
      action?: VerifierAction;
    }[];
  };
  control?: { socket?: string };
}

function cidrs(list: string[] | undefined): Cidr[] {
  return (list ?? []).map((c) => {
    const r = parseCidr(c);
    if (!r.ok) throw new Error(`unreachable: ${r.reason}`);
    return r.value;
  });
}

function ports(list: (string | number)[] | undefined): PortRange[] {
  return (list ?? []).map((p) => {
    const r = parsePortRange(p);
    if (!r.ok) throw new Error(`unreachable: ${r.reason}`);
    return r.value;
  });
}

function normalize(raw: RawConfig, fileName: string): LabelwallConfig {
  const baseDir = fileName.startsWith('<') ? process.cwd() : dirname(resolve(fileName));
  const keys: Record<string, string> = {};
  for (const [k, p] of Object.entries(raw.keys ?? {})) keys[k] = isAbsolute(p) ? p : resolve(baseDir, p);
  const keyNames = Object.keys(keys);
  const a = raw.agent ?? {};
  const v = raw.verifier ?? {};
  const m = v.mark ?? {};
  const mark: MarkBits = { ...DEFAULT_MARK };
  for (const k of Object.keys(DEFAULT_MARK) as (keyof MarkBits)[]) {
    const val = m[k];
    if (val !== undefined) mark[k] = typeof val === 'number' ? val : Number(val.trim());
  }
  const agentMark: AgentMarks = { ...DEFAULT_AGENT_MARK };
  for (const k of Object.keys(DEFAULT_AGENT_MARK) as (keyof AgentMarks)[]) {
    const val = a.mark?.[k];
    if (val !== undefined) agentMark[k] = typeof val === 'number' ? val : Number(val.trim());
  }
  const verifierAction = v.action ?? 'drop';
  return {
    keys,
    log: {
      level: raw.log?.level ?? 'info',
      ...(raw.log?.file !== undefined ? { file: raw.log.file } : {}),
      egressDecisions: {
        allowPerSecond: raw.log?.egress_decisions?.allow_per_second ?? DEFAULT_DECISION_LOG_LIMITS.allowPerSecond,
        denyPerSecond: raw.log?.egress_decisions?.deny_per_second ?? DEFAULT_DECISION_LOG_LIMITS.denyPerSecond,
        summarySeconds: raw.log?.egress_decisions?.summary_seconds ?? DEFAULT_DECISION_LOG_LIMITS.summarySeconds,
      },
    },
    agent: {
      ...(a.key !== undefined ? { key: a.key } : keyNames.length === 1 ? { key: keyNames[0]! } : {}),
      interfaces: a.interfaces ?? [],
      families: a.families ?? ['ipv4', 'ipv6'],
      label: { destinations: cidrs(a.label?.destinations), ports: ports(a.label?.ports) },
      fail: a.fail ?? 'closed',
      queues: a.queues ?? 1,
      queueBase: a.queue_base ?? 100,
      mark: agentMark,
      identity: {
        bpf: a.identity?.ebpf ?? 'auto',
        exhaustive: a.identity?.exhaustive ?? false,
        hash: a.identity?.hash ?? true,
        indexIntervalMs: a.identity?.index_interval_ms ?? 1000,
      },
      egress: {
        default: a.egress?.default ?? 'allow',
        unknown: a.egress?.unknown ?? 'allow',
        rules: (a.egress?.rules ?? []).map((r, i) => {
          const rule: EgressRule = { name: r.name ?? `rule-${i + 1}`, action: r.action };
          if (r.app) {
            const app: AppMatch = { holders: r.app.holders ?? 'any' };
            if (r.app.exe !== undefined) app.exe = r.app.exe;
            if (r.app.sha256 !== undefined) app.sha256 = r.app.sha256.toLowerCase();
            if (r.app.user !== undefined) app.user = r.app.user;
            if (r.app.cgroup !== undefined) app.cgroup = r.app.cgroup;
            if (r.app.cmdline !== undefined) app.cmdline = r.app.cmdline;
            rule.app = app;
          }
          if (r.dst) rule.dst = { cidrs: cidrs(r.dst.cidr), ports: ports(r.dst.ports), proto: r.dst.proto ?? 'any' };
          return rule;
        }),
      },
    },
    verifier: {
      hook: v.hook ?? 'forward',
      action: verifierAction,
      families: v.families ?? ['ipv4', 'ipv6'],
      fail: v.fail ?? 'closed',
      queues: v.queues ?? 1,
      queueBase: v.queue_base ?? 200,
      mark,
      rules: (v.rules ?? []).map((r, i) => ({
        name: r.name ?? `rule-${i + 1}`,
        inInterfaces: r.in_interfaces ?? [],
        outInterfaces: r.out_interfaces ?? [],
        sources: cidrs(r.sources),
        destinations: cidrs(r.destinations),
        ports: ports(r.ports),
        ...(r.keys !== undefined ? { keys: r.keys } : {}),
        action: r.action ?? verifierAction,
      })),
    },
    control: { socket: raw.control?.socket ?? DEFAULT_CONTROL_SOCKET },
  };
}
