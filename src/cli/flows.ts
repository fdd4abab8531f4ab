// `labelwall flows`: the live table of flows a running agent has judged (GET /flows on its
// control socket): application, holders, destination, rule, verdict, bytes labelled.
import type { Command } from 'commander';
import { controlGet } from '../control/client.js';
import { CliError } from './errors.js';
import { formatFlows, type FlowsReport } from '../agent/flows.js';

export function registerFlows(program: Command, defaultSocket: string): void {
  program
    .command('flows')
    .description('flows the running agent has judged: application, holders, destination, rule, verdict, bytes labelled')
    .option('--control-socket <path>', `socket of the agent (default ${defaultSocket})`)
    .option(
      '--json',
      'print the report as one JSON object: {generatedAt, flows: [{proto, family, src, sport, dst, dport, app, holders, unknown, rule, verdict, tag, tagName, bytesLabelled, egressPackets, firstSeen, lastSeen}], attribution, missingByteReports}',
    )
    .action(async (flags: { controlSocket?: string; json?: boolean }) => {
      const socket = flags.controlSocket ?? defaultSocket;
      // Same rule as control.socket in the config; Node would read "" as a port.
      if (socket === '') throw new CliError('--control-socket: must not be empty');
      let report: FlowsReport;
      try {
        report = JSON.parse(await controlGet(socket, '/flows', 10_000)) as FlowsReport;
      } catch (err) {
        process.stderr.write(`labelwall flows: ${(err as Error).message}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(flags.json ? `${JSON.stringify(report)}\n` : formatFlows(report));
    });
}
