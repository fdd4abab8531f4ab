// Loads and validates the labelwall YAML config: schema (ajv) first, then semantic checks;
// every problem is reported with file:line:col and its key path, all at once. Command-line
// flags are put into the same document (withOverrides) so that they pass the same checks.
import { Ajv } from 'ajv';
import { parseDocument, LineCounter } from 'yaml';
import { readRegularFile, ReadFileError } from '../util/files.js';
import { configSchema, type RawConfig } from './schema.js';
import type { LabelwallConfig } from './model.js';
import { ConfigError, dedupe, firstLine, formatPath, reportSchemaError, type ConfigProblem, type Seg } from './messages.js';
import { Locator, type Pos } from './positions.js';
import { isObject, semanticChecks, type Obj } from './checks.js';
import { normalize } from './normalize.js';

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

/**
 * Where the value at `path` (or its nearest ancestor present) is in the file `cfg` was read
 * from: for problems found after loading (a key file, what a role resolves). Line 0 when `cfg`
 * was not read from text.
 */
export function positionIn(cfg: LabelwallConfig, path: Seg[]): Pos {
  const src = (cfg as WithSource)[SOURCE];
  if (!src) return { line: 0, col: 0 };
  const lineCounter = new LineCounter();
  const doc = parseDocument(src.text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  return new Locator(doc, lineCounter).value(path);
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

const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, allowUnionTypes: true });
ajv.addKeyword({ keyword: 'errorHint', schemaType: 'string' });
const validateSchema = ajv.compile<RawConfig>(configSchema);

export function parseConfig(text: string, fileName: string, overrides: readonly ConfigOverride[] = []): LabelwallConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const problems: ConfigProblem[] = [];
  const where = new Locator(doc, lineCounter);

  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const { line, col } = where.at(e.pos[0]);
      problems.push({ file: fileName, line, col, path: '', message: `YAML syntax error: ${firstLine(e.message)}` });
    }
    throw new ConfigError(problems);
  }

  // An alias without its anchor: yaml's toJS would throw it as a ReferenceError, as it does an
  // alias bomb; named here at the alias.
  const unresolved = where.unresolvedAlias();
  if (unresolved) {
    const { line, col, name } = unresolved;
    problems.push({ file: fileName, line, col, path: '', message: `YAML alias *${name} has no anchor &${name} before it` });
    throw new ConfigError(problems);
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_YAML_ALIASES }) ?? {};
  } catch (e) {
    // The yaml library refuses exponential alias expansion with a ReferenceError.
    if (!(e instanceof ReferenceError)) throw e;
    const { line, col } = where.firstAlias();
    problems.push({
      file: fileName,
      line,
      col,
      path: '',
      message: `YAML aliases expand too much (more than ${MAX_YAML_ALIASES} aliased nodes): ${firstLine(e.message)}`,
    });
    throw new ConfigError(problems);
  }
  if (isObject(data)) for (const o of overrides) setIn(data, o.path, o.value);
  // The flag whose value is at `path` (the most specific override containing it), if any.
  const flagAt = (path: readonly Seg[]): string | undefined => {
    let best: ConfigOverride | undefined;
    for (const o of overrides) if (isPrefix(o.path, path) && (!best || o.path.length >= best.path.length)) best = o;
    return best?.flag;
  };
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
