// `labelwall demo`: builds namespaces, runs agent and verifier on real traffic, tears down.
import type { Command } from 'commander';
import { CliError } from './errors.js';
import { intFlag } from './int-flag.js';

/** The iperf3 run's length: at least a second, at most ten minutes. */
export const IPERF_SECONDS = { min: 1, max: 600 } as const;

export function register(program: Command): void {
  program
    .command('demo')
    .description(
      'build a test network in namespaces (protected client, unprotected client, middlebox, server), run the agent and the verifier on real HTTP, SSH, iperf3 and forged traffic, print what happened, remove everything (root)',
    )
    .option(
      '--iperf-seconds <n>',
      `length of the iperf3 run, in seconds (${IPERF_SECONDS.min}-${IPERF_SECONDS.max})`,
      intFlag('--iperf-seconds', IPERF_SECONDS.min, IPERF_SECONDS.max),
      3,
    )
    .option('--ui', 'after the checks, keep the namespaces and traffic running and serve `labelwall ui` until Ctrl-C')
    .option('--listen <host:port>', 'address of the page with --ui (loopback)', '127.0.0.1:8080')
    .action(async (flags: { iperfSeconds: number; ui?: boolean; listen: string }) => {
      if (process.getuid?.() !== 0) {
        process.stderr.write('labelwall demo: needs root (network namespaces, iptables)\n');
        process.exitCode = 2;
        return;
      }
      let ui: import('../ui/listen.js').Listen | undefined;
      if (flags.ui) {
        const { parseListen } = await import('../ui/listen.js');
        try {
          ui = parseListen(flags.listen);
        } catch (err) {
          throw new CliError((err as Error).message);
        }
      }
      // Loaded lazily: the lab pieces are only needed here. An installed labelwall has no demo
      // (it needs the lab's Python peers): it runs from a clone of the repository.
      let runDemo: typeof import('../demo/demo.js').runDemo;
      try {
        ({ runDemo } = await import('../demo/demo.js'));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw err;
        process.stderr.write('labelwall demo: not part of an installed labelwall; run it from a clone of the repository (make demo)\n');
        process.exitCode = 2;
        return;
      }
      const r = await runDemo({ iperfSeconds: flags.iperfSeconds, ...(ui ? { ui } : {}) });
      process.exitCode = r.failed ? 1 : 0;
    });
}
