// `labelwall check-config FILE [--role agent|verifier] [--json]`: the checks a daemon makes of its
// config at start, without starting: schema and semantic checks (every problem, FILE:LINE:COL:
// KEY: REASON, as the daemons print them), then each key file under `keys:` (mode, owner, size,
// content), and with --role what that daemon would resolve from the file alone (a labelling key,
// key ids per rule). Exit 0 when valid, 2 with every problem listed. For config management tools.
import type { Command } from 'commander';
import { Option } from 'commander';
import { loadConfig, positionIn } from '../config/load.js';
import { ConfigError, formatProblem, redactProblem, type ConfigProblem } from '../config/messages.js';
import type { LabelwallConfig } from '../config/model.js';
import { KeyFileError, loadKeyFile } from '../label/keys.js';
import { resolveAgent, resolveVerifier, UsageError } from '../daemon/resolve.js';
import { EXIT_OK, EXIT_USAGE } from './errors.js';

export interface CheckResult {
  file: string;
  valid: boolean;
  role?: 'agent' | 'verifier';
  /** Every problem with its position: a key file's at its entry under keys, a role's at its section. */
  problems: ConfigProblem[];
}

/** The check itself (pure apart from reading the file and its key files). */
export function checkConfigFile(file: string, role?: 'agent' | 'verifier'): CheckResult {
  const problems: ConfigProblem[] = [];
  let cfg: LabelwallConfig | undefined;
  try {
    cfg = loadConfig(file);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    problems.push(...e.problems);
  }
  if (cfg) {
    for (const [name, entry] of Object.entries(cfg.keys)) {
      try {
        loadKeyFile(entry.file, entry.id);
      } catch (e) {
        if (!(e instanceof KeyFileError)) throw e;
        // `{ file, id }`: at its file; a plain path: at the path (Locator falls back to the entry).
        const at = positionIn(cfg, ['keys', name, 'file']);
        problems.push({ file, ...at, path: `keys.${name}`, message: e.message });
      }
    }
    // The role's own resolution needs every key readable: only when the keys are.
    if (role && problems.length === 0) {
      try {
        if (role === 'agent') resolveAgent(cfg, { config: file });
        else resolveVerifier(cfg, { config: file });
      } catch (e) {
        if (e instanceof ConfigError) problems.push(...e.problems);
        else if (e instanceof UsageError || e instanceof KeyFileError)
          problems.push({ file, ...positionIn(cfg, [role]), path: role, message: e.message });
        else throw e;
      }
    }
  }
  return { file, valid: problems.length === 0, ...(role ? { role } : {}), problems: problems.map(redactProblem) };
}

/** FILE:LINE:COL: KEY: REASON, or FILE: KEY: REASON for a problem without a position. */
export function formatCheckProblem(p: ConfigProblem): string {
  return p.line === 0 && p.flag === undefined ? `${p.file}: ${p.path}: ${p.message}` : formatProblem(p);
}

export function register(program: Command): void {
  program
    .command('check-config')
    .description('check a config file as a daemon would at start (schema, values, key files), without starting; exit 0 if valid, 2 if not')
    .argument('<file>', 'YAML config file')
    .addOption(
      new Option(
        '--role <role>',
        'also resolve the file alone, without flags, as this daemon would at start: the agent needs a labelling key (agent.key, or the only key under keys), the verifier a key and, per v1 rule, keys with different key ids',
      ).choices(['agent', 'verifier']),
    )
    .option('--json', 'print one JSON object: { file, valid, role?, problems: [{ file, line, col, path, message }] }')
    .action((file: string, flags: { role?: 'agent' | 'verifier'; json?: boolean }) => {
      const r = checkConfigFile(file, flags.role);
      if (flags.json) process.stdout.write(`${JSON.stringify(r)}\n`);
      else if (r.valid) process.stdout.write(`${file}: valid${r.role ? ` for the ${r.role}` : ''}\n`);
      else for (const p of r.problems) process.stderr.write(`labelwall: ${formatCheckProblem(p)}\n`);
      process.exitCode = r.valid ? EXIT_OK : EXIT_USAGE;
    });
}
