// What a config problem is and how it reads: the problem record, its one-line form, key paths,
// and ajv's schema errors turned into the messages labelwall prints.
import type { ErrorObject } from 'ajv';
import { KEY_MATERIAL_HEX } from '../label/keys.js';

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
    const shown = problems.map(redactProblem);
    super(shown.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
    this.problems = shown;
  }
}

/** What stands in a message for text that looks like a key. */
export const KEY_MATERIAL_SHOWN = '<looks like key material: not shown>';

/**
 * A key pasted where a name or a path belongs can come back in a message (a key path, "did you
 * mean", a list of the names defined): keys never appear in output, so any run of 32 or more hex
 * digits in what a config problem says is replaced.
 */
export function redactKeyMaterial(text: string): string {
  return text.replace(KEY_MATERIAL_ANYWHERE, KEY_MATERIAL_SHOWN);
}
const KEY_MATERIAL_ANYWHERE = new RegExp(KEY_MATERIAL_HEX, 'gi');

export function redactProblem(p: ConfigProblem): ConfigProblem {
  return { ...p, path: redactKeyMaterial(p.path), message: redactKeyMaterial(p.message) };
}

export function formatProblem(p: ConfigProblem): string {
  if (p.flag !== undefined) return `${p.flag}: ${p.message}`;
  return `${p.file}:${p.line}:${p.col}: ${p.path === '' ? '(document)' : p.path}: ${p.message}`;
}

/** One step of a key path: a mapping key or a list index. */
export type Seg = string | number;

/** Reports a problem at the value at `path`, or at the key `keyOf` inside the mapping there. */
export type Add = (path: Seg[], message: string, keyOf?: string) => void;

export function formatPath(path: readonly Seg[]): string {
  let out = '';
  for (const s of path) {
    if (typeof s === 'number') out += `[${s}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(s)) out += out === '' ? s : `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

function pointerToPath(pointer: string): Seg[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

// ---------------------------------------------------------------------------------------------
// Schema errors -> messages

export function reportSchemaError(e: ErrorObject, add: Add): void {
  const path = pointerToPath(e.instancePath);
  const parent = (e.parentSchema ?? {}) as Record<string, unknown>;
  const hint = typeof parent.errorHint === 'string' ? parent.errorHint : undefined;
  const params = e.params as Record<string, unknown>;
  if (e.propertyName !== undefined) {
    // A key that breaks `propertyNames`: point at the key itself.
    add(path, `invalid name "${e.propertyName}": ${hint ?? e.message ?? 'invalid'}`, e.propertyName);
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
        const quote =
          typeof e.data === 'number' && expects.includes('string') && !expects.includes('integer')
            ? ' (quote the value: YAML read it as a number)'
            : '';
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
      add(
        path,
        `lists the same entry twice (entries ${Math.min(Number(params.i), Number(params.j))} and ${Math.max(Number(params.i), Number(params.j))})`,
      );
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

export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return JSON.stringify(v);
  // Beyond 2^53 the number YAML read is not what was written (an unquoted key of hex or decimal
  // digits becomes one), and its leading digits are those of the key: not echoed.
  if (typeof v === 'number' && Number.isFinite(v) && !Number.isSafeInteger(v) && Math.abs(v) >= 2 ** 53)
    return 'a number too large to be read exactly (not shown)';
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

export function firstLine(s: string): string {
  return s.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}

export function dedupe(ps: ConfigProblem[]): ConfigProblem[] {
  const seen = new Set<string>();
  return ps.filter((p) => {
    const k = formatProblem(p);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
