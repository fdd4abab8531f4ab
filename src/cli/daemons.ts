// `labelwall agent`, `labelwall verifier`, `labelwall status`, `labelwall cleanup`.
import { Command, Option, InvalidArgumentError } from 'commander';
import { ConfigError, defaultConfig, formatProblem, loadConfig, type LabelwallConfig } from '../policy/config.js';
import { policyNeedsHash } from '../policy/egress.js';
import { AgentFlowService } from '../agent/flows.js';
import { registerFlows } from './flows.js';
import type { Logger } from '../util/log.js';
import type { ResolvedAgent } from '../daemon/resolve.js';
import { KeyFileError } from '../label/keys.js';
import { nfqueueTarget, removeOwned } from '../datapath/iptables.js';
import { FlowExemptions, type ValidFlowReport } from '../verifier/exempt.js';
import { agentRulePlan, AGENT_PREFIX } from '../agent/rules.js';
import { readKernelCounters, verifierRulePlan, SUSPECT_LIST, SUSPECT_RATE, SUSPECT_SECONDS, VERIFIER_PREFIX } from '../verifier/rules.js';
import { defaultControlSocket, resolveAgent, resolveVerifier, UsageError, type AgentFlags, type VerifierFlags } from '../daemon/resolve.js';
import { createLogger } from '../util/log.js';
import { controlGet } from '../control/client.js';
import type { StatusReport } from '../daemon/run.js';
import type { Family, RulePlan } from '../datapath/iptables.js';

function int(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a whole number`);
    return n;
  };
}
const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

/** Prints a start-up problem in one line and exits 2 (usage, config, key file). */
function fail(err: unknown): never {
  if (err instanceof ConfigError) process.stderr.write(`labelwall: invalid config:\n${err.message}\n`);
  else if (err instanceof KeyFileError || err instanceof UsageError) process.stderr.write(`labelwall: ${err.message}\n`);
  else throw err;
  process.exit(2);
}

function readConfig(path: string | undefined): LabelwallConfig {
  return path ? loadConfig(path) : defaultConfig();
}

function commonOptions(cmd: Command): Command {
  return cmd
    .option('-c, --config <file>', 'YAML config file (see docs/config.md); flags override it')
    .option('--queues <n>', 'number of NFQUEUE queues / worker threads', int('--queues'))
    .option('--queue-base <n>', 'first NFQUEUE number', int('--queue-base'))
    .addOption(new Option('--fail <mode>', 'when labelwall cannot answer (not running, queue full): closed = traffic stops, open = it passes unseen').choices(['closed', 'open']))
    .addOption(new Option('--family <family>', 'address family to handle (repeatable; default both)').choices(['ipv4', 'ipv6']).argParser((v: string, prev: string[] | undefined) => collect(v, prev)))
    .option('--control-socket <path>', 'UNIX socket for `labelwall status` (default /run/labelwall/<role>.sock)')
    .addOption(new Option('--log-level <level>', 'log level').choices(['trace', 'debug', 'info', 'warn', 'error']))
    .option('--log-file <file>', 'append JSON log lines to this file instead of stderr');
}

function plans(families: Family[], build: (f: Family) => RulePlan): Map<Family, RulePlan> {
  return new Map(families.map((f) => [f, build(f)]));
}

export function registerDaemons(program: Command): void {
  commonOptions(
    program
      .command('agent')
      .description('protected host: label every outgoing TCP segment (compat profile) and rewrite inbound handshakes')
      .option('-k, --key-file <file>', 'labelling key (hex, mode 0600); default: agent.key of the config', collect)
      .option('-i, --interface <name>', 'label only on this outgoing interface (repeatable; default all but loopback)', collect)
      .option('-d, --destination <cidr>', 'label only traffic to this network (repeatable)', collect)
      .option('-p, --port <ports>', 'label only traffic to these destination ports, e.g. 80 or 8000-9000 (repeatable)', collect)
      .option('--egress', 'enforce the egress policy (agent.egress of the config; allow-all without one); default: on when --config is given')
      .option('--no-egress', 'no egress policy: no egress queue, every flow allowed, no flow table')
      .option('--egress-queue <n>', 'NFQUEUE number of the egress decisions (default: the one after the labelling queues)', int('--egress-queue')),
  ).action(async (flags: AgentFlags) => {
    let cfg: LabelwallConfig;
    let r;
    try {
      cfg = readConfig(flags.config);
      r = resolveAgent(cfg, flags);
    } catch (err) {
      fail(err);
    }
    const log = createLogger({ level: flags.logLevel ?? cfg.log.level, file: flags.logFile ?? cfg.log.file, name: 'labelwall-agent' });
    let flowService: AgentFlowService | undefined;
    const eg = r.egress;
    const hashOn = eg ? eg.identity.hash || policyNeedsHash(eg.policy) : false;
    // Loaded here, not at start-up: `pcap` and `keygen` need none of the datapath.
    const { runDaemon } = await import('../daemon/run.js');
    await runDaemon({
      role: 'agent',
      plans: plans(r.families, (f) =>
        agentRulePlan(f, {
          queues: r.queues,
          failOpen: r.failOpen,
          interfaces: r.interfaces,
          destinations: r.destinations,
          ports: r.ports,
          ...(eg ? { egressQueue: eg.queue } : {}),
        }),
      ),
      queues: r.queues,
      failOpen: r.failOpen,
      handlerModule: new URL('../agent/handler.js', import.meta.url).href,
      handlerData: { keyFile: r.keyFile, countFlows: eg !== undefined },
      extraQueueSets: eg
        ? [{ name: 'egress', queues: [eg.queue], failOpen: r.failOpen, handlerModule: new URL('../agent/egress-handler.js', import.meta.url).href, handlerData: { policy: eg.policy, identity: eg.identity } }]
        : [],
      onQueues: ({ main, extra }) => {
        if (extra.egress) {
          flowService = new AgentFlowService(main, extra.egress);
          extra.egress.post({ kind: 'hello' });
        }
      },
      onWorkerMessage: (msg) => {
        const m = msg as { kind?: string; bpf?: boolean; bpfError?: string; hash?: boolean };
        if (m?.kind === 'egress-ready') log.info({ bpf: m.bpf, bpfError: m.bpfError, hash: m.hash }, `agent: egress attribution ${m.bpf ? 'with eBPF socket tracking' : 'through /proc only (no eBPF)'}`);
        flowService?.onWorkerMessage(msg);
      },
      extraRoutes: {
        '/flows': async () => {
          if (!flowService) throw new Error('egress policy is off in this agent (started without --config, or with --no-egress): it keeps no flow table');
          return { type: 'application/json', body: JSON.stringify(await flowService.query()) + '\n' };
        },
      },
      onReload: () => reloadAgent(flags.config, cfg, r, hashOn, () => flowService, log),
      controlSocket: r.controlSocket,
      log,
      describe: {
        key: r.keyId,
        interfaces: r.interfaces.length ? r.interfaces : 'all but lo',
        destinations: r.destinations.length ? r.destinations.map((c) => c.text) : 'any',
        ports: r.ports.length ? r.ports.map((p) => (p.lo === p.hi ? `${p.lo}` : `${p.lo}-${p.hi}`)) : 'any',
        families: r.families.map((f) => `ipv${f}`),
        fail: r.failOpen ? 'open' : 'closed',
        egress: eg ? { queue: eg.queue, default: eg.policy.default, unknown: eg.policy.unknown, rules: eg.policy.rules.length, config: flags.config ?? null } : 'off',
      },
    });
  });

  registerFlows(program, defaultControlSocket('agent'));

  commonOptions(
    program
      .command('verifier')
      .description('middlebox or server: check labels and drop, mark or log what is unlabelled, forged or tampered')
      .option('-k, --key-file <file>', 'a valid key (repeatable: several keys are valid at once); default: the keys of the config', collect)
      .addOption(new Option('--hook <hook>', 'where to check: input (this host) or forward (a middlebox)').choices(['input', 'forward']))
      .addOption(new Option('--action <action>', 'drop: drop all but valid; mark: set mark bits per verdict and go on; log: accept and count').choices(['drop', 'mark', 'log']))
      .option('--in-interface <name>', 'check only traffic arriving on this interface (repeatable)', collect)
      .option('--out-interface <name>', 'check only traffic leaving on this interface (repeatable; forward hook)', collect)
      .option('-s, --source <cidr>', 'check only traffic from this network (repeatable)', collect)
      .option('-d, --destination <cidr>', 'check only traffic to this network (repeatable)', collect)
      .option('-p, --port <ports>', 'check only traffic to these destination ports (repeatable)', collect),
  ).action(async (flags: VerifierFlags) => {
    let cfg: LabelwallConfig;
    let r;
    try {
      cfg = readConfig(flags.config);
      r = resolveVerifier(cfg, flags);
    } catch (err) {
      fail(err);
    }
    const log = createLogger({ level: flags.logLevel ?? cfg.log.level, file: flags.logFile ?? cfg.log.file, name: 'labelwall-verifier' });
    // Loaded here, not at start-up: `pcap` and `keygen` need none of the datapath.
    const { runDaemon } = await import('../daemon/run.js');
    // Sources that sent bad segments get a queue of their own: the one after the main queues.
    // (None when the main queues end at 65535: listed sources then share the main queues.)
    const suspectQueue = Math.max(...r.queues) < 65535 ? Math.max(...r.queues) + 1 : undefined;
    let exemptions: FlowExemptions | undefined;
    const handlerData = { rules: r.rules, mark: r.mark, logBad: true };
    await runDaemon({
      role: 'verifier',
      plans: plans(r.families, (f) =>
        verifierRulePlan(f, {
          hook: r.hook, queues: r.queues, failOpen: r.failOpen, markMask: r.mark.mask, selections: r.rules,
          unlabeledMark: r.mark.unlabeled, suspectQueue,
        }),
      ),
      queues: r.queues,
      failOpen: r.failOpen,
      handlerModule: new URL('../verifier/handler.js', import.meta.url).href,
      handlerData,
      extraQueueSets: suspectQueue === undefined ? [] : [
        { name: 'suspect', queues: [suspectQueue], handlerModule: new URL('../verifier/handler.js', import.meta.url).href, handlerData: { ...handlerData, suspect: true }, failOpen: r.failOpen },
      ],
      kernelCounters: () => readKernelCounters(r.families, r.failOpen),
      onWorkerMessage: (msg, set) => {
        const m = msg as ValidFlowReport | undefined;
        if (set === 'suspect' && m?.type === 'suspect-valid') (exemptions ??= new FlowExemptions(nfqueueTarget(r.queues, r.failOpen), log)).note(m);
      },
      controlSocket: r.controlSocket,
      log,
      describe: {
        hook: r.hook,
        keys: Object.values(r.keyIds),
        rules: r.rules.map((x) => ({ name: x.name, action: x.action, keys: x.keyFiles.map((f) => r.keyIds[f]) })),
        mark: Object.fromEntries(Object.entries(r.mark).map(([k, v]) => [k, `0x${(v as number).toString(16)}`])),
        families: r.families.map((f) => `ipv${f}`),
        fail: r.failOpen ? 'open' : 'closed',
        suspects: { queue: suspectQueue, perSourceRate: SUSPECT_RATE, listedSeconds: SUSPECT_SECONDS, list: SUSPECT_LIST },
      },
    });
  });

  program
    .command('status')
    .description('counters, rates and queue drops of a running agent or verifier')
    .option('--control-socket <path>', 'socket of the daemon (default: the agent and the verifier sockets in /run/labelwall)', collect)
    .option('--json', 'print the raw status objects, one JSON line each')
    .action(async (flags: { controlSocket?: string[]; json?: boolean }) => {
      const sockets = flags.controlSocket ?? [defaultControlSocket('agent'), defaultControlSocket('verifier')];
      let found = 0;
      const errors: string[] = [];
      for (const s of sockets) {
        let report: StatusReport;
        try {
          report = JSON.parse(await controlGet(s, '/status')) as StatusReport;
        } catch (err) {
          errors.push((err as Error).message);
          continue;
        }
        found++;
        process.stdout.write(flags.json ? JSON.stringify(report) + '\n' : formatStatus(report, s));
      }
      if (found === 0) {
        process.stderr.write(`labelwall status: ${errors.join('; ')}\n`);
        process.exit(1);
      }
    });

  program
    .command('cleanup')
    .description('remove the iptables chains and jumps a crashed labelwall left behind (never touches other rules)')
    .addOption(new Option('--role <role>', 'whose rules').choices(['agent', 'verifier', 'all']).default('all'))
    .action(async (flags: { role: 'agent' | 'verifier' | 'all' }) => {
      let n = 0;
      if (flags.role !== 'verifier') n += await removeOwned(AGENT_PREFIX);
      if (flags.role !== 'agent') n += await removeOwned(VERIFIER_PREFIX);
      process.stdout.write(`removed ${n} labelwall chain(s) and jump(s)\n`);
    });
}

/**
 * SIGHUP: re-read the config file. A valid file replaces the egress policy in the egress worker
 * (new flows only); a bad one is refused with every problem (file:line:col: key: reason) and the
 * running policy stays. Only agent.egress is reloaded; other keys need a restart (logged).
 */
async function reloadAgent(
  file: string | undefined,
  running: LabelwallConfig,
  r: ResolvedAgent,
  hashOn: boolean,
  service: () => AgentFlowService | undefined,
  log: Logger,
): Promise<void> {
  if (!file) {
    log.warn('SIGHUP: the agent was started without --config: nothing to reload');
    return;
  }
  let next: LabelwallConfig;
  try {
    next = loadConfig(file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    log.error({ file, problems: err.problems.map(formatProblem) }, `SIGHUP: config rejected, the running egress policy stays: ${err.problems.map(formatProblem).join('; ')}`);
    return;
  }
  const fx = service();
  if (!fx || !r.egress) {
    log.warn({ file }, 'SIGHUP: config is valid, but egress policy is off in this agent (--no-egress): nothing to apply');
    return;
  }
  const applied = await fx.applyPolicy(next.agent.egress);
  log.info({ file, generation: applied.generation, rules: applied.rules, default: applied.default, unknown: applied.unknown }, 'SIGHUP: egress policy reloaded (applies to new flows)');
  if (!hashOn && policyNeedsHash(next.agent.egress)) {
    log.warn('SIGHUP: the new policy has sha256 rules but executables are not hashed (identity.hash: false at start): they match nothing until a restart');
  }
  const rest = (c: LabelwallConfig): string => JSON.stringify({ ...c, source: undefined, agent: { ...c.agent, egress: undefined } });
  if (rest(next) !== rest(running)) log.warn('SIGHUP: only agent.egress is reloaded; the other changes in the file take effect at the next start');
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

export function formatStatus(r: StatusReport, socket: string): string {
  const lines = [`${r.role} (pid ${r.pid}, up ${r.uptimeSeconds}s, ${socket})`];
  for (const [k, v] of Object.entries(r.config)) lines.push(`  ${pad(k + ':', 14)}${typeof v === 'string' ? v : JSON.stringify(v)}`);
  lines.push('  counter                       total        per second');
  for (const [k, v] of Object.entries(r.counters)) {
    lines.push(`  ${pad(k, 26)}${String(v).padStart(10)}  ${(r.ratesPerSecond[k] ?? 0).toFixed(1).padStart(14)}`);
  }
  const d = r.datapath;
  lines.push(`  packets received ${d.received} (${(r.ratesPerSecond.received ?? 0).toFixed(1)}/s), verdicts ${d.verdicts}`);
  lines.push(`  queue drops: queue_dropped ${d.queueDropped}, user_dropped ${d.userDropped}, socket overruns ${d.enobufs}; handler errors ${d.handlerErrors}, kernel errors ${d.kernelErrors}`);
  return lines.join('\n') + '\n';
}
