// The `labelwall` command tree. Each subcommand lives in its own module that exports
// `register(program)`; add new ones to SUBCOMMANDS below. src/cli/main.ts runs it.
import { Command, CommanderError } from 'commander';
import { KeyFileError } from '../label/keys.js';
import { LogFileError } from '../util/log.js';
import { labelwallVersion } from '../util/version.js';
import { CaptureError, OutputError } from '../pcap/errors.js';
import { CliError, EXIT_OK, EXIT_PIPE, EXIT_USAGE } from './errors.js';
import { register as registerPcap } from './pcap.js';
import { register as registerKeygen } from './keygen.js';
import { registerDaemons } from './daemons.js';
import { register as registerDemo } from './demo.js';
import { register as registerUi } from './ui.js';
import { register as registerCheckConfig } from './check-config.js';
import { register as registerVersion } from './version.js';

export type Register = (program: Command) => void;

const SUBCOMMANDS: Register[] = [
  registerDaemons,
  registerCheckConfig,
  registerVersion,
  registerPcap,
  registerKeygen,
  registerDemo,
  registerUi,
];

export function buildProgram(): Command {
  const program = new Command('labelwall');
  program
    .description('Label-based firewall: labels outgoing TCP segments with an HMAC option and verifies labels')
    .version(labelwallVersion(), '-V, --version')
    .showSuggestionAfterError(true)
    // Usage errors are thrown to run() instead of exiting, so every one of them exits 2.
    .exitOverride()
    .configureOutput({
      outputError: (str, write) => write(`labelwall: ${str.replace(/^error: /, '')}`),
    });
  for (const reg of SUBCOMMANDS) reg(program);
  return program;
}

const HELP_AND_VERSION = new Set(['-h', '--help', '-V', '--version']);

/**
 * Whether argv names a command that does not exist (`labelwall nosuch`, `labelwall pcap nosuch`).
 * Commander answers --help or --version before it looks at the command, so `labelwall nosuch
 * --help` printed the root help and exited 0; run() drops those flags then and commander reports
 * the unknown command (exit 2) as without them.
 */
export function namesUnknownCommand(program: Command, args: readonly string[]): boolean {
  let cmd = program;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') return false;
    if (a.startsWith('-')) {
      // An option of the command group: skip its value when it takes one (none do today).
      const name = a.split('=')[0];
      const opt = cmd.options.find((o) => o.long === name || o.short === name);
      if (opt && (opt.required || opt.optional) && !a.includes('=')) i++;
      continue;
    }
    if (cmd.commands.length === 0 || a === 'help') return false; // a command's own arguments, or `help X`
    const sub = cmd.commands.find((c) => c.name() === a || c.aliases().includes(a));
    if (!sub) return true;
    cmd = sub;
  }
  return false;
}

/** Parses argv, runs the command and returns the exit code; never throws. */
export async function run(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    const args = argv.slice(2);
    if (namesUnknownCommand(program, args)) argv = [...argv.slice(0, 2), ...args.filter((a) => !HELP_AND_VERSION.has(a))];
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version') return EXIT_OK;
      // 'commander.help' is `help <cmd>` (exit code 0) or help shown on stderr because no
      // subcommand was given (exit code 1: a usage error); the rest are usage errors, already printed.
      if (e.code === 'commander.help' && e.exitCode === 0) return EXIT_OK;
      return EXIT_USAGE;
    }
    if (e instanceof CliError) {
      process.stderr.write(`labelwall: ${e.message}\n`);
      return e.exitCode;
    }
    if (e instanceof KeyFileError || e instanceof CaptureError || e instanceof OutputError || e instanceof LogFileError) {
      process.stderr.write(`labelwall: ${e.message}\n`);
      return EXIT_USAGE;
    }
    const err = e as NodeJS.ErrnoException;
    if (err?.code === 'EPIPE') return EXIT_PIPE; // output closed by its reader (see main.ts)
    if (err && typeof err.code === 'string' && typeof err.syscall === 'string') {
      // File system errors from a command: one line, no stack.
      process.stderr.write(`labelwall: ${err.path ?? ''}${err.path ? ': ' : ''}${err.code} (${err.syscall})\n`);
      return EXIT_USAGE;
    }
    process.stderr.write(`labelwall: internal error: ${err?.stack ?? String(e)}\n`);
    return 70;
  }
}
