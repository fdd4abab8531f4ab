// `labelwall agent`, `labelwall verifier`, `labelwall status`, `labelwall cleanup`.
import { type Command, Option } from 'commander';
import type { EgressPolicy, LabelwallConfig } from '../config/model.js';
import { defaultConfig, loadConfig } from '../config/load.js';
import { ConfigError, formatProblem } from '../config/messages.js';
import { configSchema } from '../config/schema.js';
import { policyNeedsHash } from '../policy/egress.js';
import { AgentFlowService } from '../agent/flows.js';
import { registerFlows } from './flows.js';
import { CliError } from './errors.js';
import type { Logger } from '../util/log.js';
import type { ResolvedAgent, ResolvedVerifier } from '../daemon/resolve.js';
import { readFileSync } from 'node:fs';
import { acquireInstanceLock, LockHeldError, type InstanceLock } from '../daemon/lock.js';
import { missingToolsProblem } from '../daemon/deps.js';
import type { QueueSet } from '../datapath/queue.js';
import type { ReloadResult } from '../daemon/run.js';
import type { VerifierHandlerData, VerifierKeyData, VerifierRulesMessage } from '../verifier/handler.js';
import type { AgentHandlerData, AgentKeyApplied, AgentKeyMessage } from '../agent/handler.js';
import type { EgressDecisionCount, EgressWorkerMessage } from '../agent/egress-handler.js';
import { KeyFileError } from '../label/keys.js';
import { getProfile } from '../label/registry.js';
import { nfqueueTarget, removeOwned } from '../datapath/iptables.js';
import { FlowExemptions, type ValidFlowReport } from '../verifier/exempt.js';
import { agentRulePlan, AGENT_PREFIX } from '../agent/rules.js';
import { readKernelCounters, verifierRulePlan, SUSPECT_LIST, SUSPECT_RATE, SUSPECT_SECONDS, VERIFIER_PREFIX } from '../verifier/rules.js';
import { defaultControlSocket, resolveAgent, resolveVerifier, UsageError, type AgentFlags, type VerifierFlags } from '../daemon/resolve.js';
import { createLogger } from '../util/log.js';
import { RecentEvents } from '../control/recent.js';
import { egressRulesReport } from '../agent/policy-report.js';
import { controlGet } from '../control/client.js';
import type { StatusReport } from '../daemon/run.js';
import type { RulePlan } from '../datapath/iptables.js';
import type { Family } from '../wire/packet.js';
import { int } from './int-flag.js';

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

/** The values the config schema allows at a key, for the help text (the schema checks them). */
function choices(section: 'agent' | 'verifier' | 'log', key: string): string {
  const props = (
    configSchema.properties[section] as { properties: Record<string, { enum?: readonly string[]; items?: { enum?: readonly string[] } }> }
  ).properties;
  return (props[key]?.enum ?? props[key]?.items?.enum ?? []).join('|');
}

/** Prints a start-up problem in one line and exits 2 (usage, config, key file). */
function fail(err: unknown): never {
  if (err instanceof ConfigError && err.problems.every((p) => p.flag !== undefined)) {
    for (const p of err.problems) process.stderr.write(`labelwall: ${formatProblem(p)}\n`);
  } else if (err instanceof ConfigError) process.stderr.write(`labelwall: invalid config:\n${err.message}\n`);
  else if (err instanceof KeyFileError || err instanceof UsageError) process.stderr.write(`labelwall: ${err.message}\n`);
  else throw err;
  process.exit(2);
}

function readConfig(path: string | undefined): LabelwallConfig {
  return path ? loadConfig(path) : defaultConfig();
}

// Every flag value is checked by the config's schema and semantic checks (daemon/resolve.ts), not
// here: commander only collects text, so a flag and the same key in the file are refused alike.
function commonOptions(cmd: Command, role: 'agent' | 'verifier'): Command {
  return cmd
    .option('-c, --config <file>', 'YAML config file (see docs/config.md); flags override it')
    .option('--queues <n>', 'number of NFQUEUE queues / worker threads (1-64; default 1)', int)
    .option('--queue-base <n>', `first NFQUEUE number (default ${role === 'agent' ? 100 : 200})`, int)
    .option(
      '--fail <mode>',
      `when labelwall cannot answer (not running, queue full): closed = traffic stops, open = it passes unseen (${choices(role, 'fail')}; default closed)`,
    )
    .option('--family <family>', `address family to handle (repeatable; default both) (${choices(role, 'families')})`, collect)
    .option('--control-socket <path>', 'UNIX socket for `labelwall status` (default /run/labelwall/<role>.sock)')
    .option('--log-level <level>', `log level (${choices('log', 'level')}; default info)`)
    .option(
      '--log-format <format>',
      `json: one JSON object per line (default); text: one readable line each, for a terminal (${choices('log', 'format')})`,
    )
    .option('--log-file <file>', 'append log lines to this file instead of stderr')
    .option(
      '--metrics-listen <[addr:]port>',
      'serve Prometheus /metrics over HTTP on this TCP address (a port alone: 127.0.0.1; [::1]:PORT for IPv6); default: off',
    );
}

function plans(families: Family[], build: (f: Family) => RulePlan): Map<Family, RulePlan> {
  return new Map(families.map((f) => [f, build(f)]));
}

export function registerDaemons(program: Command): void {
  commonOptions(
    program
      .command('agent')
      .description('protected host: label every outgoing TCP segment and rewrite inbound handshakes')
      .option(
        '--profile <name>',
        `label profile (${choices('agent', 'profile')}; default v1; compat = the paper's 40-byte label, no TCP options)`,
      )
      .option(
        '-k, --key-file <[id=]file>',
        'labelling key (hex, mode 0600); ID=FILE gives the v1 key id 0-7 its labels carry (default 0); default: agent.key of the config',
        collect,
      )
      .option(
        '-i, --interface <name>',
        'label only on this outgoing interface (repeatable; default all but loopback; a trailing + matches every name with that prefix, as in iptables)',
        collect,
      )
      .option('-d, --destination <cidr>', 'label only traffic to this network (repeatable; default any)', collect)
      .option(
        '-p, --port <ports>',
        'label only traffic to these destination ports: a comma-separated list of ports and ranges, e.g. 80,443 or 8000-9000 (repeatable; default any)',
        collect,
      )
      .option(
        '--egress',
        'enforce the egress policy (agent.egress of the config; allow-all without one); default: on when --config is given',
      )
      .option('--gso', 'take GSO super-packets whole, cut and label them here, send the segments in one system call (default; agent.gso)')
      .option('--no-gso', 'let the kernel cut GSO packets before they are queued: one queue trip per segment (slower; agent.gso: false)')
      .option('--no-egress', 'no egress policy: no egress queue, every flow allowed, no flow table')
      .option('--egress-queue <n>', 'NFQUEUE number of the egress decisions (default: the one after the labelling queues)', int),
    'agent',
  ).action(async (flags: AgentFlags) => {
    let cfg: LabelwallConfig;
    let r: ReturnType<typeof resolveAgent>;
    try {
      cfg = readConfig(flags.config);
      r = resolveAgent(cfg, flags);
    } catch (err) {
      fail(err);
    }
    const log = createLogger({ level: r.log.level, format: r.log.format, file: r.log.file, name: 'labelwall-agent' });
    let egressCounts: EgressDecisionCount[] = [];
    let flowService: AgentFlowService | undefined;
    const eg = r.egress;
    const hashOn = eg ? eg.identity.hash || policyNeedsHash(eg.policy) : false;
    // Loaded here, not at start-up: `pcap` and `keygen` need none of the datapath.
    const { runDaemon } = await import('../daemon/run.js');
    const live = new AgentReloader(flags, r, hashOn, () => flowService, log);
    // The last denied flows (decision records the egress worker logs), for GET /events.
    const denials = new RecentEvents();
    await runDaemon({
      role: 'agent',
      plans: plans(r.families, (f) =>
        agentRulePlan(f, {
          queues: r.queues,
          failOpen: r.failOpen,
          interfaces: r.interfaces,
          destinations: r.destinations,
          ports: r.ports,
          marks: r.mark,
          tagMask: r.tagMask,
          ...(eg ? { egressQueue: eg.queue } : {}),
        }),
      ),
      queues: r.queues,
      failOpen: r.failOpen,
      gso: r.gso,
      transmit: true,
      handlerModule: new URL('../agent/handler.js', import.meta.url).href,
      handlerData: {
        profile: r.profile,
        keyFile: r.keyFile,
        keyId: r.keyId,
        nat: r.nat,
        countFlows: eg !== undefined,
        marks: r.mark,
        tagMask: r.tagMask,
      } satisfies AgentHandlerData,
      extraQueueSets: eg
        ? [
            {
              name: 'egress',
              queues: [eg.queue],
              failOpen: r.failOpen,
              handlerModule: new URL('../agent/egress-handler.js', import.meta.url).href,
              handlerData: {
                policy: eg.policy,
                identity: eg.identity,
                marks: r.mark,
                tagMask: r.tagMask,
                logLimits: cfg.log.egressDecisions,
              },
            },
          ]
        : [],
      onQueues: ({ main, extra }) => {
        live.setQueues(main);
        if (extra.egress) {
          flowService = new AgentFlowService(main, extra.egress);
          flowService.tagNames = r.tagNames;
          extra.egress.post({ kind: 'hello' });
          // The worker's loop runs no timers: this tick drives the summary of unlogged decisions.
          const egressSet = extra.egress;
          setInterval(() => egressSet.post({ kind: 'tick' }), 1000).unref();
        }
      },
      onWorkerMessage: (msg) => {
        const m = msg as { kind?: string; bpf?: boolean; bpfError?: string; hash?: boolean };
        if (m?.kind === 'egress-ready')
          log.info(
            { event: 'egress-attribution', bpf: m.bpf, bpfError: m.bpfError, hash: m.hash },
            `agent: egress attribution ${m.bpf ? 'with eBPF socket tracking' : 'through /proc only (no eBPF)'}`,
          );
        if ((msg as EgressWorkerMessage | undefined)?.kind === 'egress-decision-counts')
          egressCounts = (msg as Extract<EgressWorkerMessage, { kind: 'egress-decision-counts' }>).counts;
        live.onWorkerMessage(msg);
        flowService?.onWorkerMessage(msg);
      },
      onWorkerLog: (rec) => {
        if (rec.event === 'egress' && rec.action === 'deny') denials.add(rec);
      },
      profile: r.profile,
      ...(r.metricsListen ? { metricsListen: r.metricsListen } : {}),
      ...(eg ? { egressDecisions: () => egressCounts } : {}),
      tagNames: () => live.tagNames,
      extraRoutes: {
        '/events': () => ({ type: 'application/json', body: `${JSON.stringify(denials.report())}\n` }),
        '/rules': () => {
          const p = live.policy();
          if (!p) throw new Error('egress policy is off in this agent (started without --config, or with --no-egress): it has no rules');
          return { type: 'application/json', body: `${JSON.stringify(egressRulesReport(p.policy, p.tagNames))}\n` };
        },
        '/flows': async () => {
          if (!flowService)
            throw new Error('egress policy is off in this agent (started without --config, or with --no-egress): it keeps no flow table');
          return { type: 'application/json', body: `${JSON.stringify(await flowService.query())}\n` };
        },
      },
      onReload: () => live.reload(),
      controlSocket: r.controlSocket,
      log,
      describe: live.describe,
    });
  });

  registerFlows(program, defaultControlSocket('agent'));

  commonOptions(
    program
      .command('verifier')
      .description('middlebox or server: check labels and drop, mark or log what is unlabelled, forged or tampered')
      .option('--profile <name>', `label profile accepted (${choices('verifier', 'profile')}; default v1; any = v1 and compat labels)`)
      .option(
        '-k, --key-file <[id=]file>',
        'a valid key (repeatable: several keys are valid at once); ID=FILE gives its v1 key id 0-7 (default 0; the keys of a v1 verifier rule need different ids); default: the keys of the config',
        collect,
      )
      .option(
        '--hook <hook>',
        `where to check: input (this host) or forward (a middlebox) (${choices('verifier', 'hook')}; default forward)`,
      )
      .option(
        '--action <action>',
        `drop: drop all but valid; mark: set mark bits per verdict and go on; log: accept and count (${choices('verifier', 'action')}; default drop); replaces the action of every rule of the config`,
      )
      .option(
        '--in-interface <name>',
        'check only traffic arriving on this interface (repeatable; a trailing + matches every name with that prefix, as in iptables)',
        collect,
      )
      .option(
        '--out-interface <name>',
        'check only traffic leaving on this interface (repeatable; forward hook; trailing + as for --in-interface)',
        collect,
      )
      .option('-s, --source <cidr>', 'check only traffic from this network (repeatable)', collect)
      .option('-d, --destination <cidr>', 'check only traffic to this network (repeatable)', collect)
      .option(
        '-p, --port <ports>',
        'check only traffic to these destination ports: a comma-separated list of ports and ranges, e.g. 80,443 or 8000-9000 (repeatable)',
        collect,
      ),
    'verifier',
  ).action(async (flags: VerifierFlags) => {
    let cfg: LabelwallConfig;
    let r: ReturnType<typeof withVerifierExtras>;
    try {
      cfg = readConfig(flags.config);
      r = withVerifierExtras(cfg, resolveVerifier(cfg, flags));
    } catch (err) {
      fail(err);
    }
    const log = createLogger({ level: r.log.level, format: r.log.format, file: r.log.file, name: 'labelwall-verifier' });
    // Sources that sent bad segments get a queue of their own: the one after the main queues.
    // (None when the main queues end at 65535: listed sources then share the main queues.)
    const suspectQueue = Math.max(...r.queues) < 65535 ? Math.max(...r.queues) + 1 : undefined;
    const live = new VerifierReloader(flags, r, log, suspectQueue);
    // The last refused segments (the bad-segment records the workers log), for GET /events.
    const refusals = new RecentEvents();
    // Loaded here, not at start-up: `pcap` and `keygen` need none of the datapath.
    const { runDaemon } = await import('../daemon/run.js');
    let exemptions: FlowExemptions | undefined;
    const handlerData = {
      profile: r.profile,
      rules: r.rules,
      mark: r.mark,
      logBad: true,
      epochWindow: r.epochWindow,
      tagNames: r.tagNames,
    } satisfies VerifierHandlerData;
    await runDaemon({
      role: 'verifier',
      plans: verifierPlans(r, suspectQueue),
      queues: r.queues,
      failOpen: r.failOpen,
      handlerModule: new URL('../verifier/handler.js', import.meta.url).href,
      handlerData,
      extraQueueSets:
        suspectQueue === undefined
          ? []
          : [
              {
                name: 'suspect',
                queues: [suspectQueue],
                handlerModule: new URL('../verifier/handler.js', import.meta.url).href,
                handlerData: { ...handlerData, suspect: true },
                failOpen: r.failOpen,
              },
            ],
      kernelCounters: () => readKernelCounters(r.families, r.failOpen),
      profile: r.profile,
      ...(r.metricsListen ? { metricsListen: r.metricsListen } : {}),
      onQueues: ({ main, extra }) => live.setQueues([main, ...Object.values(extra)]),
      onWorkerMessage: (msg, set) => {
        live.onWorkerMessage(msg);
        const m = msg as ValidFlowReport | undefined;
        if (set === 'suspect' && m?.kind === 'suspect-valid')
          (exemptions ??= new FlowExemptions(nfqueueTarget(r.queues, r.failOpen), log)).note(m);
      },
      onWorkerLog: (rec) => {
        if (typeof rec.msg === 'string' && rec.msg.startsWith('verifier: ')) refusals.add(rec);
      },
      extraRoutes: {
        '/events': () => ({ type: 'application/json', body: `${JSON.stringify(refusals.report())}\n` }),
      },
      onReload: () => live.reload(),
      controlSocket: r.controlSocket,
      log,
      describe: live.describe,
    });
  });

  program
    .command('status')
    .description('counters, rates and queue drops of a running agent or verifier')
    .option(
      '--control-socket <path>',
      'socket of a daemon, repeatable (default: the agent and the verifier sockets in /run/labelwall)',
      collect,
    )
    .option('--json', 'print the raw status objects, one JSON line each')
    .action(async (flags: { controlSocket?: string[]; json?: boolean }) => {
      const sockets = flags.controlSocket ?? [defaultControlSocket('agent'), defaultControlSocket('verifier')];
      // Same rule as control.socket in the config; Node would read "" as a port.
      if (sockets.includes('')) throw new CliError('--control-socket: must not be empty');
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
        process.stdout.write(flags.json ? `${JSON.stringify(report)}\n` : formatStatus(report, s));
      }
      if (found === 0) {
        process.stderr.write(`labelwall status: ${errors.join('; ')}\n`);
        process.exit(1);
      }
    });

  program
    .command('cleanup')
    .description('remove the iptables chains and jumps a crashed labelwall left behind (never touches other rules)')
    .addOption(
      new Option('--role <role>', "whose rules: the agent's LABELWALL-AGENT-*, the verifier's LABELWALL-VERIFY-*, or both")
        .choices(['agent', 'verifier', 'all'])
        .default('all'),
    )
    .option('--force', 'remove them even while the labelwall that owns them runs (its traffic then passes unchecked, or stops)')
    .action(async (flags: { role: 'agent' | 'verifier' | 'all'; force?: boolean }) => {
      if (!hasNetAdmin()) {
        process.stderr.write('labelwall cleanup: needs root (CAP_NET_ADMIN) to read and change iptables rules; nothing removed\n');
        process.exit(1);
      }
      // Without the tools nothing can be read: say so rather than "removed 0".
      const noTools = missingToolsProblem([4, 6], process.env.PATH);
      if (noTools) {
        process.stderr.write(`labelwall cleanup: ${noTools}; nothing removed\n`);
        process.exit(1);
      }
      const roles = flags.role === 'all' ? (['agent', 'verifier'] as const) : ([flags.role] as const);
      let n = 0;
      let failed: string | undefined;
      const refused: string[] = [];
      for (const role of roles) {
        const prefix = role === 'agent' ? AGENT_PREFIX : VERIFIER_PREFIX;
        // Holding the role's lock keeps a daemon from starting while we remove its rules.
        let lock: InstanceLock | undefined;
        try {
          lock = acquireInstanceLock(role, `cleanup-${process.pid}`);
        } catch (err) {
          if (!(err instanceof LockHeldError)) throw err;
          const who = `the ${role}${err.holder.pid ? ` (pid ${err.holder.pid})` : ''} is running in this network namespace and owns ${prefix}-*`;
          if (!flags.force) {
            refused.push(who);
            continue;
          }
          process.stderr.write(`labelwall cleanup: --force: ${who}; removing its rules anyway\n`);
        }
        try {
          n += await removeOwned(prefix);
        } catch (err) {
          // iptables refused (no privilege in this namespace, a rule in use): one line, not a trace.
          failed = `${role}: ${(err as Error).message.split('\n')[0]}`;
        } finally {
          lock?.release({ unlink: true });
        }
        if (failed) break;
      }
      if (failed) {
        process.stderr.write(`labelwall cleanup: ${failed}; ${n} chain(s) and jump(s) removed before that\n`);
        process.exit(1);
      }
      if (n > 0 || refused.length === 0) process.stdout.write(`removed ${n} labelwall chain(s) and jump(s)\n`);
      if (refused.length) {
        process.stderr.write(
          `labelwall cleanup: ${refused.join('; ')}: its rules stay (stop it with SIGTERM to remove them, or give --force)\n`,
        );
        process.exit(1);
      }
    });
}

/** Whether this process may change iptables: CAP_NET_ADMIN (bit 12) in its effective set. */
function hasNetAdmin(): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? (BigInt(`0x${m[1]}`) & (1n << 12n)) !== 0n : false;
  } catch {
    return false;
  }
}

function describeVerifier(r: LiveVerifier, suspectQueue: number | undefined): Record<string, unknown> {
  // A rule's tags by name where `tags:` gives one (as flows and the verdict log show them).
  const nameOf = new Map(Object.entries(r.tagNames).map(([name, n]) => [n, name]));
  // A key file with a v1 key id other than 0 is shown as "id:fingerprint".
  const keyName = (k: VerifierKeyData): string | undefined =>
    typeof k === 'string' ? r.keyFingerprints[k] : k.id === 0 ? r.keyFingerprints[k.file] : `${k.id}:${r.keyFingerprints[k.file]}`;
  return {
    profile: r.profile,
    hook: r.hook,
    keys: Object.values(r.keyFingerprints),
    rules: r.rules.map((x) => ({
      name: x.name,
      action: x.action,
      keys: x.keys.map(keyName),
      ...(x.tags ? { tags: x.tags.map((t) => nameOf.get(t) ?? t) } : {}),
      ...(x.allowNat ? { allowNat: x.allowNat } : {}),
    })),
    mark: Object.fromEntries(Object.entries(r.mark).map(([k, v]) => [k, `0x${(v as number).toString(16)}`])),
    families: r.families.map((f) => `ipv${f}`),
    fail: r.failOpen ? 'open' : 'closed',
    suspects: { queue: suspectQueue, perSourceRate: SUSPECT_RATE, listedSeconds: SUSPECT_SECONDS, list: SUSPECT_LIST },
  };
}

/** A resolved verifier with what its queue workers need from the config besides rules and keys. */
type LiveVerifier = ResolvedVerifier & Required<Pick<VerifierHandlerData, 'epochWindow' | 'tagNames'>>;

function withVerifierExtras(cfg: LabelwallConfig, r: ResolvedVerifier): LiveVerifier {
  return { ...r, epochWindow: cfg.verifier.epochWindow, tagNames: cfg.tags };
}

/** The verifier's rule plans per family: the same at start and after a SIGHUP. */
function verifierPlans(r: ResolvedVerifier, suspectQueue: number | undefined): Map<Family, RulePlan> {
  return plans(r.families, (f) =>
    verifierRulePlan(f, {
      hook: r.hook,
      queues: r.queues,
      failOpen: r.failOpen,
      markMask: r.mark.mask,
      optionKind: getProfile(r.profile).optionKind,
      selections: r.rules,
      unlabelledMark: r.mark.unlabelled,
      suspectQueue,
    }),
  );
}

/**
 * SIGHUP of the verifier: re-read the config file (when given) and every key file. A valid
 * result goes to the queue workers first (rules, keys, mark bits; each worker loads all keys
 * before it switches), then, when the selection changed, the iptables chains are replaced in
 * one transaction. Anything wrong (file:line:col: key: reason, an unreadable key, a worker that
 * cannot load a key) leaves the running state as it was, and says why.
 */
class VerifierReloader {
  readonly describe: Record<string, unknown>;
  /** The main queues and the suspect queue: every worker judges with the same rules and keys. */
  private queues: QueueSet[] = [];
  private generation = 0;
  private waiting = new Map<number, { left: number; errors: string[]; done: () => void }>();

  constructor(
    private readonly flags: VerifierFlags,
    private running: LiveVerifier,
    private readonly log: Logger,
    private readonly suspectQueue: number | undefined,
  ) {
    this.describe = describeVerifier(running, suspectQueue);
  }

  setQueues(sets: QueueSet[]): void {
    this.queues = sets;
  }

  onWorkerMessage(msg: unknown): void {
    const m = msg as { kind?: string; generation?: number; ok?: boolean; error?: string };
    if (m?.kind !== 'verifier-rules-applied') return;
    const w = this.waiting.get(m.generation ?? -1);
    if (!w) return;
    if (!m.ok) w.errors.push(m.error ?? 'unknown error');
    if (--w.left === 0) w.done();
  }

  /** Posts rules to every worker and waits for all of them; returns the workers' errors. */
  private async toWorkers(r: LiveVerifier): Promise<string[]> {
    const sets = this.queues;
    if (sets.length === 0) return ['the queues are not bound yet'];
    const generation = ++this.generation;
    const acked = new Promise<string[]>((resolve) => {
      const w = { left: sets.reduce((n, q) => n + q.queues.length, 0), errors: [] as string[], done: () => resolve(w.errors) };
      this.waiting.set(generation, w);
      setTimeout(() => resolve([...w.errors, `${w.left} worker(s) did not answer within 5 s`]), 5000).unref();
    });
    for (const q of sets)
      q.post({
        kind: 'verifier-rules',
        generation,
        rules: r.rules,
        mark: r.mark,
        epochWindow: r.epochWindow,
        tagNames: r.tagNames,
      } satisfies VerifierRulesMessage);
    const errors = await acked;
    this.waiting.delete(generation);
    return errors;
  }

  async reload(): Promise<ReloadResult | undefined> {
    const file = this.flags.config;
    let next: LiveVerifier;
    try {
      const cfg = readConfig(file);
      next = withVerifierExtras(cfg, resolveVerifier(cfg, this.flags));
    } catch (err) {
      if (err instanceof ConfigError) {
        const problems = err.problems.map(formatProblem);
        this.log.error(
          { event: 'reload-rejected', file, problems },
          `SIGHUP: config rejected, the running rules and keys stay: ${problems.join('; ')}`,
        );
        return undefined;
      }
      if (err instanceof KeyFileError || err instanceof UsageError) {
        this.log.error({ event: 'reload-rejected', file }, `SIGHUP: ${err.message}; the running rules and keys stay`);
        return undefined;
      }
      throw err;
    }
    const errors = await this.toWorkers(next);
    if (errors.length) {
      // Some workers may have switched: give every worker the running state again.
      await this.toWorkers(this.running);
      this.log.error(
        { event: 'reload-rejected', errors },
        `SIGHUP: a queue worker could not load the new rules, the running rules and keys stay: ${errors.join('; ')}`,
      );
      return undefined;
    }
    const restartOnly = (x: ResolvedVerifier): string => JSON.stringify([x.queues, x.failOpen, x.families, x.controlSocket]);
    if (restartOnly(next) !== restartOnly(this.running)) {
      this.log.warn(
        { event: 'reload-restart-only' },
        'SIGHUP: queues, fail mode, families and the control socket are not reloaded: they take effect at the next start',
      );
    }
    const prev = this.running;
    this.running = { ...next, queues: prev.queues, failOpen: prev.failOpen, families: prev.families, controlSocket: prev.controlSocket };
    const before = { ...this.describe };
    Object.assign(this.describe, describeVerifier(this.running, this.suspectQueue));
    const r = this.running;
    this.log.info(
      {
        event: 'reload-applied',
        file,
        generation: this.generation,
        hook: r.hook,
        // As status shows them: "id:fingerprint" for a key with a v1 key id other than 0.
        keys: this.describe.keys,
        rules: (this.describe.rules as Array<{ name: string; action: string; keys: unknown }>).map((x) => ({
          name: x.name,
          action: x.action,
          keys: x.keys,
        })),
      },
      'SIGHUP: verifier rules and keys reloaded',
    );
    return {
      plans: verifierPlans(r, this.suspectQueue),
      revert: async () => {
        this.running = prev;
        Object.assign(this.describe, before);
        await this.toWorkers(prev);
      },
    };
  }
}

function describeAgent(r: ResolvedAgent, configFile: string | undefined): Record<string, unknown> {
  const eg = r.egress;
  return {
    profile: r.profile,
    key: r.keyFingerprint,
    keyId: r.keyId,
    gso: r.gso,
    interfaces: r.interfaces.length ? r.interfaces : 'all but lo',
    destinations: r.destinations.length ? r.destinations.map((c) => c.text) : 'any',
    ports: r.ports.length ? r.ports.map((p) => (p.lo === p.hi ? `${p.lo}` : `${p.lo}-${p.hi}`)) : 'any',
    families: r.families.map((f) => `ipv${f}`),
    fail: r.failOpen ? 'open' : 'closed',
    mark: Object.fromEntries(Object.entries(r.mark).map(([k, v]) => [k, `0x${(v as number).toString(16)}`])),
    ...(r.tagMask ? { tagMask: `0x${r.tagMask.toString(16)}` } : {}),
    egress: eg
      ? {
          queue: eg.queue,
          default: eg.policy.default,
          unknown: eg.policy.unknown,
          rules: eg.policy.rules.length,
          config: configFile ?? null,
          // The app tags the rules give (v1), by name where `tags` has one.
          tags: [...new Set(eg.policy.rules.flatMap((x) => (x.tag ? [x.tag] : [])))].map((t) => r.tagNames[t] ?? String(t)),
        }
      : 'off',
    ...(r.nat.length ? { nat: r.nat.map((n) => ({ destinations: n.destinations.map((c) => c.text), flags: n.nat })) } : {}),
  };
}

/**
 * SIGHUP of the agent: re-read the config file (when given) and the key file, resolved with the
 * same flags as at start. The labelling key (and agent.nat) goes to every labelling worker: each
 * loads the new key before it switches, between two segments, so every segment leaves labelled
 * with the old key or the new one; all must confirm, or all go back to the running key. Then a
 * new egress policy (agent.egress, with its tags) goes to the egress worker for new flows.
 * Anything wrong (file:line:col: key: reason, an unreadable key) keeps the running state.
 * Queues, interfaces, selection, marks, profile and fail mode take effect at the next start.
 */
class AgentReloader {
  readonly describe: Record<string, unknown>;
  private main: QueueSet | undefined;
  private generation = 0;
  private waiting = new Map<number, { left: number; errors: string[]; done: () => void }>();

  constructor(
    private readonly flags: AgentFlags,
    private running: ResolvedAgent,
    private readonly hashOn: boolean,
    private readonly service: () => AgentFlowService | undefined,
    private readonly log: Logger,
  ) {
    this.describe = describeAgent(running, flags.config);
  }

  setQueues(main: QueueSet): void {
    this.main = main;
  }

  /** The running egress policy and tag names (GET /rules), or undefined without one. */
  policy(): { policy: EgressPolicy; tagNames: Record<number, string> } | undefined {
    const eg = this.running.egress;
    return eg ? { policy: eg.policy, tagNames: this.running.tagNames } : undefined;
  }

  /** Tag names by number of the running config (they change with a SIGHUP). */
  get tagNames(): Record<number, string> {
    return this.running.tagNames;
  }

  onWorkerMessage(msg: unknown): void {
    const m = msg as AgentKeyApplied | undefined;
    if (m?.kind !== 'agent-key-applied') return;
    const w = this.waiting.get(m.generation);
    if (!w) return;
    if (!m.ok) w.errors.push(m.error ?? 'unknown error');
    if (--w.left === 0) w.done();
  }

  /** Posts the key to every labelling worker and waits for all of them; returns their errors. */
  private async toWorkers(r: ResolvedAgent): Promise<string[]> {
    const set = this.main;
    if (!set) return ['the queues are not bound yet'];
    const generation = ++this.generation;
    const acked = new Promise<string[]>((resolve) => {
      const w = { left: set.queues.length, errors: [] as string[], done: () => resolve(w.errors) };
      this.waiting.set(generation, w);
      setTimeout(() => resolve([...w.errors, `${w.left} worker(s) did not answer within 5 s`]), 5000).unref();
    });
    set.post({ kind: 'agent-key', generation, keyFile: r.keyFile, keyId: r.keyId, nat: r.nat } satisfies AgentKeyMessage);
    const errors = await acked;
    this.waiting.delete(generation);
    return errors;
  }

  async reload(): Promise<void> {
    const file = this.flags.config;
    const log = this.log;
    let cfg: LabelwallConfig;
    let next: ResolvedAgent;
    try {
      cfg = readConfig(file);
      next = resolveAgent(cfg, this.flags);
    } catch (err) {
      if (err instanceof ConfigError) {
        const problems = err.problems.map(formatProblem);
        log.error(
          { event: 'reload-rejected', file, problems },
          `SIGHUP: config rejected, the running key and egress policy stay: ${problems.join('; ')}`,
        );
        return;
      }
      if (err instanceof KeyFileError || err instanceof UsageError) {
        log.error({ event: 'reload-rejected', file }, `SIGHUP: ${err.message}; the running key and egress policy stay`);
        return;
      }
      throw err;
    }
    const prev = this.running;
    const errors = await this.toWorkers(next);
    if (errors.length) {
      await this.toWorkers(prev); // some workers may have switched: all back to the running key
      log.error(
        { event: 'reload-rejected', errors },
        `SIGHUP: a labelling worker could not load the new key, the running key stays: ${errors.join('; ')}`,
      );
      return;
    }
    log.info(
      {
        event: 'reload-applied',
        file,
        generation: this.generation,
        key: next.keyFingerprint,
        keyId: next.keyId,
        previousKey: prev.keyFingerprint,
        previousKeyId: prev.keyId,
      },
      'SIGHUP: labelling key reloaded (applies from the next segment)',
    );
    const fx = this.service();
    let egress = prev.egress;
    if (file && fx && prev.egress && next.egress) {
      fx.tagNames = next.tagNames;
      const applied = await fx.applyPolicy(next.egress.policy);
      egress = { ...prev.egress, policy: next.egress.policy };
      log.info(
        {
          event: 'egress-policy-reloaded',
          file,
          generation: applied.generation,
          rules: applied.rules,
          default: applied.default,
          unknown: applied.unknown,
        },
        'SIGHUP: egress policy reloaded (applies to new flows)',
      );
      if (!this.hashOn && policyNeedsHash(next.egress.policy)) {
        log.warn(
          { event: 'reload-restart-only' },
          'SIGHUP: the new policy has sha256 rules but executables are not hashed (identity.hash: false at start): they match nothing until a restart',
        );
      }
    } else if (file && !prev.egress) {
      log.warn(
        { event: 'reload-egress-off', file },
        'SIGHUP: config is valid, but egress policy is off in this agent (--no-egress): no egress policy to apply',
      );
    }
    const restartOnly = (x: ResolvedAgent): string =>
      JSON.stringify([
        x.profile,
        x.queues,
        x.failOpen,
        x.families,
        x.controlSocket,
        x.interfaces,
        x.destinations,
        x.ports,
        x.mark,
        x.tagMask,
        x.egress?.queue,
        x.egress?.identity,
      ]);
    if (restartOnly(next) !== restartOnly(prev)) {
      log.warn(
        { event: 'reload-restart-only' },
        'SIGHUP: profile, queues, interfaces, label selection, marks, identity, fail mode, families and the control socket are not reloaded: they take effect at the next start',
      );
    }
    this.running = {
      ...prev,
      keyFile: next.keyFile,
      keyId: next.keyId,
      keyFingerprint: next.keyFingerprint,
      nat: next.nat,
      tagNames: next.tagNames,
      ...(egress ? { egress } : {}),
    };
    Object.assign(this.describe, describeAgent(this.running, file));
  }
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

export function formatStatus(r: StatusReport, socket: string): string {
  const lines = [`${r.role} (pid ${r.pid}, up ${r.uptimeSeconds}s, ${socket})`];
  for (const [k, v] of Object.entries(r.config)) lines.push(`  ${pad(`${k}:`, 14)}${typeof v === 'string' ? v : JSON.stringify(v)}`);
  lines.push('  counter                       total        per second');
  for (const [k, v] of Object.entries(r.counters)) {
    // Per-reason counters (VERDICT:REASON) only when something was counted: the list is long.
    if (k.includes(':') && !v) continue;
    lines.push(`  ${pad(k, 26)}${String(v).padStart(10)}  ${(r.ratesPerSecond[k] ?? 0).toFixed(1).padStart(14)}`);
  }
  const d = r.datapath;
  lines.push(`  packets received ${d.received} (${(r.ratesPerSecond.received ?? 0).toFixed(1)}/s), verdicts ${d.verdicts}`);
  lines.push(
    // The kinds as labelwall_queue_drops_total names them (the kernel's queue_dropped, user_dropped).
    `  queue drops: queue_full ${d.queueDropped}, socket ${d.userDropped}, socket overruns ${d.enobufs}; handler errors ${d.handlerErrors}, kernel errors ${d.kernelErrors}`,
  );
  if (r.log)
    lines.push(
      `  log: ${r.log.destination}, ${r.log.dropped} line(s) dropped (could not be written)${r.log.lastError ? `, last error ${r.log.lastError}` : ''}`,
    );
  return `${lines.join('\n')}\n`;
}
