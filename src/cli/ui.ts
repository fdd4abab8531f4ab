// `labelwall ui`: a read-only web page of the agent and verifier running on this host, served
// on loopback with a random token (src/ui/).
import type { Command } from 'commander';
import { CliError } from './errors.js';
import { defaultControlSocket } from '../daemon/resolve.js';

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

export function register(program: Command): void {
  program
    .command('ui')
    .description(
      'serve a read-only web page of the agent and verifier on this host (rates, flows by application, denials, rules), on loopback, with a random access token',
    )
    .option(
      '--listen <host:port>',
      'address to serve on; anything but loopback is reachable by others (they still need the token)',
      '127.0.0.1:8080',
    )
    .option(
      '--control-socket <path>',
      'control socket to read (repeatable; default the agent and the verifier sockets in /run/labelwall)',
      collect,
    )
    .action(async (flags: { listen: string; controlSocket?: string[] }) => {
      const { parseListen } = await import('../ui/listen.js');
      let listen: ReturnType<typeof parseListen>;
      try {
        listen = parseListen(flags.listen);
      } catch (err) {
        throw new CliError((err as Error).message);
      }
      const sockets = flags.controlSocket ?? [defaultControlSocket('agent'), defaultControlSocket('verifier')];
      if (sockets.includes('')) throw new CliError('--control-socket: must not be empty');
      const { startUiServer } = await import('../ui/server.js');
      const { newToken } = await import('../ui/auth.js');
      let ui: Awaited<ReturnType<typeof startUiServer>>;
      try {
        ui = await startUiServer({ host: listen.host, port: listen.port, sockets, token: newToken() });
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new CliError(`--listen ${flags.listen}: cannot listen: ${e.code ?? ''} ${e.message}`.replace(/\s+/g, ' '), 1);
      }
      if (!listen.loopback)
        process.stderr.write(
          `labelwall ui: warning: ${listen.host} is not a loopback address: others can reach the page (with the token)\n`,
        );
      process.stdout.write(`labelwall ui: reading ${sockets.join(', ')}\nlabelwall ui: open ${ui.openUrl}\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await ui.close();
    });
}
