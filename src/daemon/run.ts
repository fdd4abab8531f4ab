// The life of a running agent or verifier: bind the queues, install the iptables rules, serve
// the control socket, and on SIGINT/SIGTERM (or a fatal error) take down exactly what it set up.
// Queues are bound before rules exist, so no packet is queued to nobody at start.
// One instance per role and network namespace (lock.ts) owns the role's rules; each jump names
// the instance that installed it, and a process removes only what it installed.
import type { Family } from '../wire/packet.js';
import type { Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { Registry } from 'prom-client';
import { installPlan, removeInstalled, renderRestore, type RulePlan } from '../datapath/iptables.js';
import { acquireInstanceLock, LockHeldError, type InstanceLock } from './lock.js';
import { takeEarlyHups } from './early-hup.js';
import { startQueues, type QueueSet } from '../datapath/queue.js';
import type { QueueStats } from '../datapath/types.js';
import {
  startControlServer,
  closeControlServer,
  socketInUse,
  checkControlPath,
  ControlPathError,
  type ControlRoutes,
} from '../control/server.js';
import { logStats, type Logger, type LogStats } from '../util/log.js';
import { createMetrics } from '../control/metrics.js';
import { closeMetricsServer, MetricsListenError, startMetricsServer } from '../control/metrics-server.js';
import { formatListen, type ListenAddress } from '../config/listen.js';
import type { EgressDecisionCount } from '../agent/egress-handler.js';
import { labelwallVersion } from '../util/version.js';

/** The kernel queue length the queue sets ask for (datapath/queue.ts default). */
const MAX_QUEUE_LENGTH = 8192;
import { ServiceNotifier } from './notify.js';
import { libcryptoWarning, missingToolsProblem, queueBindHint } from './deps.js';
import { loadLibcrypto } from '../sys/libcrypto.js';

export interface DaemonSpec {
  role: 'agent' | 'verifier';
  plans: Map<Family, RulePlan>;
  queues: number[];
  failOpen: boolean;
  /** Bind the queues with NFQA_CFG_F_GSO (the agent's GSO path). */
  gso?: boolean;
  /** Give the handlers a raw transmitter (the agent: segments it cuts). */
  transmit?: boolean;
  handlerModule: string;
  handlerData: unknown;
  controlSocket: string;
  log: Logger;
  /** Non-secret description of the running configuration, shown by `status`. */
  describe: Record<string, unknown>;
  extraRoutes?: ControlRoutes;
  /**
   * More queue sets with handlers of their own (the agent's egress queue), bound before the
   * rules exist like the main one, stopped with it; their counters join the status.
   */
  extraQueueSets?: ExtraQueueSet[];
  /** Called once every queue set is bound (before the rules are installed). */
  onQueues?: (sets: { main: QueueSet; extra: Record<string, QueueSet> }) => void;
  /** Called for messages of the workers other than log lines; `set` is 'main' or the extra set's name. */
  onWorkerMessage?: (msg: unknown, set: string) => void;
  /** Called with each log record a worker posts, after it is logged (GET /events keeps some). */
  onWorkerLog?: (rec: Record<string, unknown>, set: string) => void;
  /**
   * Called on SIGHUP (also once after start when one came during start-up). May return new rule
   * plans: they replace the installed ones in one iptables-restore transaction per family.
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: a reload hook may return nothing
  onReload?: () => void | ReloadResult | Promise<void | ReloadResult>;
  /**
   * Counters of packets decided in the kernel by the role's own rules (read from iptables rule
   * counters); added to the handler counters of the same names in `status` and /metrics.
   */
  kernelCounters?: () => Promise<Record<string, number>>;
  /** The label profile, for the metrics' `profile` label. */
  profile: string;
  /** Serve /metrics on TCP here too (--metrics-listen); bound before anything is installed. */
  metricsListen?: ListenAddress;
  /** The agent's egress decisions by action, rule and tag (for labelwall_egress_decisions_total). */
  egressDecisions?: () => EgressDecisionCount[];
  tagNames?: () => Record<number, string>;
}

export interface ReloadResult {
  plans?: Map<Family, RulePlan>;
  /** Puts the workers back on the running state when the new plans cannot be installed. */
  revert?: () => Promise<void>;
}

export interface ExtraQueueSet {
  name: string;
  queues: number[];
  handlerModule: string;
  handlerData: unknown;
  failOpen: boolean;
}

/** Workers and kernel counters of several queue sets as one (pure). */
export function mergeStats(list: readonly QueueStats[]): QueueStats {
  return { workers: list.flatMap((s) => s.workers), kernel: Object.assign({}, ...list.map((s) => s.kernel)) as QueueStats['kernel'] };
}

export interface StatusReport {
  role: string;
  pid: number;
  /** Instance id in the comments of the jumps this process installed. */
  owner?: string;
  startedAt: string;
  uptimeSeconds: number;
  config: Record<string, unknown>;
  counters: Record<string, number>;
  ratesPerSecond: Record<string, number>;
  /** Per queue worker: packets, recvmmsg batches (received/batches = mean batch size), sends. */
  queues: Array<{ queue: number; received: number; batches: number; sends: number; handlerErrors: number }>;
  datapath: {
    received: number;
    verdicts: number;
    handlerErrors: number;
    kernelErrors: number;
    enobufs: number;
    queueDropped: number;
    userDropped: number;
    queueTotal: number;
  };
  /** The log destination: lines dropped because they could not be written (util/log.ts). */
  log?: LogStats;
}

/** Adds `more` into `counters`, name by name (pure apart from `counters`). */
function addCounters(counters: Record<string, number>, more: Readonly<Record<string, number>>): void {
  for (const [k, v] of Object.entries(more)) counters[k] = (counters[k] ?? 0) + v;
}

/** Sums the handler counters and datapath counters of all workers (pure). */
export function summarize(stats: QueueStats): { counters: Record<string, number>; datapath: StatusReport['datapath'] } {
  const counters: Record<string, number> = {};
  const dp = { received: 0, verdicts: 0, handlerErrors: 0, kernelErrors: 0, enobufs: 0, queueDropped: 0, userDropped: 0, queueTotal: 0 };
  for (const w of stats.workers) {
    addCounters(counters, w.handler);
    dp.received += w.received;
    dp.verdicts += w.verdicts;
    dp.handlerErrors += w.handlerErrors;
    dp.kernelErrors += w.kernelErrors;
    dp.enobufs += w.enobufs;
  }
  for (const k of Object.values(stats.kernel)) {
    dp.queueDropped += k.queueDropped;
    dp.userDropped += k.userDropped;
    dp.queueTotal += k.queueTotal;
  }
  return { counters, datapath: dp };
}

export async function runDaemon(spec: DaemonSpec): Promise<void> {
  const { log } = spec;
  // The id in our jumps' comments: which rules this process installed.
  const owner = `${process.pid}-${randomBytes(3).toString('hex')}`;
  let plans = spec.plans;
  let lock: InstanceLock | undefined;
  let running = false;
  let installing: Promise<unknown> = Promise.resolve();
  const started = new Date();
  let queues: QueueSet | undefined;
  const extra: Record<string, QueueSet> = {};
  const allStats = (): QueueStats => mergeStats([queues!, ...Object.values(extra)].map((q) => q.stats()));
  let server: Server | undefined;
  let metricsServer: Server | undefined;
  let stopping = false;
  // The kernel rules' counters, read once more at stop before the rules (and their counters) go.
  let finalKernel = async (): Promise<Record<string, number>> => ({});
  // systemd's Type=notify (a no-op without NOTIFY_SOCKET): READY=1 once rules and workers are up.
  const notifier = new ServiceNotifier(process.env, (m) => log.warn({ event: 'notify-failed' }, `${spec.role}: ${m}`));

  /**
   * Stops the daemon. A clean stop removes our rules. After a fatal error in fail-closed mode
   * the rules stay, so that nothing passes unseen while labelwall is down; the next start (or
   * `labelwall cleanup`) removes them.
   */
  const teardown = async (why: string, code: number, keepRules = false): Promise<never> => {
    if (stopping) return new Promise<never>(() => undefined);
    stopping = true;
    notifier.send('STOPPING=1', `STATUS=stopping (${why})`);
    log.info({ event: 'stopping', why }, `${spec.role}: stopping`);
    let removed = 0;
    if (keepRules)
      log.warn(
        { event: 'rules-kept' },
        `${spec.role}: fail-closed: iptables rules left in place; run \`labelwall cleanup\` or start again to remove them`,
      );
    // An install or reload under way finishes first, so that what it adds is removed too.
    await Promise.all([installing, reloading].map((p) => p.catch(() => undefined)));
    const kernelAtStop = queues ? await finalKernel() : {};
    // Without the lock we installed nothing: the rules there belong to the instance that holds it.
    if (!keepRules && lock) {
      try {
        const r = await removeInstalled(plans, owner);
        removed = r.removed;
        if (r.kept.length)
          log.warn({ event: 'chains-kept', kept: r.kept }, `${spec.role}: chains left in place: other rules still jump to them`);
      } catch (err) {
        log.error({ event: 'rules-remove-failed', err: (err as Error).message }, 'removing iptables rules failed');
        code = code || 1;
      }
    }
    if (queues) {
      const final = summarize(allStats());
      // As status and /metrics count them: the packets the kernel rules decided without queueing.
      addCounters(final.counters, kernelAtStop);
      log.info(
        { event: 'final-counters', counters: final.counters, datapath: final.datapath, rulesRemoved: removed },
        `${spec.role}: final counters`,
      );
    }
    await Promise.all([queues, ...Object.values(extra)].map((q) => q?.stop().catch(() => undefined)));
    if (server) await closeControlServer(server, spec.controlSocket).catch(() => undefined);
    if (metricsServer) await closeMetricsServer(metricsServer).catch(() => undefined);
    // After a clean stop nothing of ours is left: the lock file goes too.
    lock?.release({ unlink: !keepRules });
    log.flush?.();
    // Give pino's async destination a moment to drain.
    await new Promise((r) => setTimeout(r, 50));
    process.exit(code);
  };

  process.on('SIGINT', () => void teardown('SIGINT', 0));
  process.on('SIGTERM', () => void teardown('SIGTERM', 0));
  process.on('uncaughtException', (err) => {
    log.fatal({ event: 'fatal', err: err.message, stack: err.stack }, 'uncaught exception');
    void teardown('fatal error', 1, !spec.failOpen);
  });
  process.on('unhandledRejection', (err) => {
    log.fatal({ event: 'fatal', err: String(err) }, 'unhandled rejection');
    void teardown('fatal error', 1, !spec.failOpen);
  });
  // SIGHUP never ends the daemon: before it runs, a reload is noted and done once it runs;
  // reloads run one after the other.
  let hupDuringStart = false;
  let reloading: Promise<void> = Promise.resolve();
  const reload = (): void => {
    // RELOADING=1 ... READY=1 around the reload: `systemctl reload` shows it in the unit's state.
    let notified = false;
    reloading = reloading
      .then(async () => {
        if (stopping) return;
        if (!spec.onReload) {
          log.warn({ event: 'reload-nothing' }, `SIGHUP: the ${spec.role} has nothing to reload`);
          return;
        }
        notifier.send('RELOADING=1', 'STATUS=reloading (SIGHUP)');
        notified = true;
        const r = await spec.onReload();
        if (r?.plans && !stopping) {
          const same =
            [...r.plans].every(([f, p]) => plans.has(f) && renderRestore(p) === renderRestore(plans.get(f)!)) &&
            r.plans.size === plans.size;
          if (same) log.info({ event: 'reload-rules-unchanged' }, `SIGHUP: ${spec.role}: iptables selection unchanged`);
          else {
            try {
              await installPlan(r.plans, owner);
            } catch (err) {
              await r.revert?.();
              throw err;
            }
            plans = r.plans;
            log.info({ event: 'reload-rules-replaced' }, `SIGHUP: ${spec.role}: iptables rules replaced (one transaction per family)`);
          }
        }
      })
      .catch((err: Error) => log.error({ event: 'reload-failed', err: err.message }, 'SIGHUP: reload failed; the running state stays'))
      .then(() => {
        if (notified && !stopping) notifier.send('READY=1', `STATUS=${spec.role} running`);
      });
  };
  const duringStart = (): void => {
    if (!hupDuringStart) log.info({ event: 'reload-deferred' }, `SIGHUP during start-up: the ${spec.role} reloads once it runs`);
    hupDuringStart = true;
  };
  process.on('SIGHUP', () => {
    if (running) reload();
    else duringStart();
  });
  // Ours is in place before the early handler goes: no moment without one.
  if (takeEarlyHups() > 0) duringStart();

  const refuse = (msg: string, code: number, extra: Record<string, unknown> = {}): never => {
    log.error({ event: 'start-refused', ...extra }, `${spec.role}: ${msg}`);
    log.flush?.();
    lock?.release({ unlink: true }); // refused before installing anything: nothing of ours remains
    // A plain line too for a person at a terminal, or when the log goes to a file; not when the
    // log line itself goes to a pipe (journald): the same message twice.
    if (process.stderr.isTTY || logStats(log)?.destination !== 'stderr') process.stderr.write(`labelwall ${spec.role}: ${msg}\n`);
    process.exit(code);
  };

  // What the host must provide (Debian: iptables, libssl3), before anything is touched.
  const noTools = missingToolsProblem([...plans.keys()], process.env.PATH);
  if (noTools) refuse(`${noTools}; not starting`, 1);
  const noCrypto = libcryptoWarning(loadLibcrypto() !== null, process.env.LABELWALL_HMAC === 'node');
  if (noCrypto) log.warn({ event: 'libcrypto-missing' }, `${spec.role}: ${noCrypto}`);

  // The role's rules in this namespace belong to one instance: a second one refuses here,
  // before it binds a queue or touches a rule.
  try {
    lock = acquireInstanceLock(spec.role, owner);
  } catch (err) {
    if (err instanceof LockHeldError) refuse(`${err.message}; not starting`, 2, { lock: err.path, holder: err.holder });
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EACCES' || e.code === 'EPERM') refuse(`needs root (CAP_NET_ADMIN): cannot take the instance lock: ${e.message}`, 1);
    throw err;
  }
  try {
    checkControlPath(spec.controlSocket);
  } catch (err) {
    if (err instanceof ControlPathError) refuse(`${err.message}; not starting`, 2);
    throw err;
  }
  if (await socketInUse(spec.controlSocket)) {
    refuse(`another labelwall answers on the control socket ${spec.controlSocket}; not starting`, 2, { control: spec.controlSocket });
  }

  // Built before the queues exist (it reads them when scraped), so that the TCP listener is
  // bound, or refused, before any queue or rule: a taken port changes nothing on the host.
  let status: (() => StatusReport) | undefined;
  let refreshKernel: () => Promise<void> = async () => undefined;
  const registry: Registry = createMetrics({
    role: spec.role,
    profile: spec.profile,
    version: labelwallVersion(),
    failOpen: spec.failOpen,
    maxQueueLength: MAX_QUEUE_LENGTH,
    sets: () =>
      queues ? [{ name: 'main', stats: queues.stats() }, ...Object.entries(extra).map(([name, q]) => ({ name, stats: q.stats() }))] : [],
    counters: () => status?.().counters ?? {},
    log: () => logStats(log),
    ...(spec.egressDecisions ? { egressDecisions: spec.egressDecisions } : {}),
    ...(spec.tagNames ? { tagNames: spec.tagNames } : {}),
  });
  if (spec.metricsListen) {
    try {
      metricsServer = await startMetricsServer(spec.metricsListen, registry, () => refreshKernel());
    } catch (err) {
      if (err instanceof MetricsListenError) refuse(`${err.message}; not starting`, 2);
      throw err;
    }
  }

  try {
    queues = await startQueues({
      queues: spec.queues,
      handlerModule: spec.handlerModule,
      handlerData: spec.handlerData,
      failOpen: spec.failOpen,
      gso: spec.gso ?? false,
      transmit: spec.transmit ?? false,
    });
  } catch (err) {
    const hint = queueBindHint((err as Error).message);
    log.error(
      { event: 'queue-bind-failed', err: (err as Error).message, hint },
      `${spec.role}: cannot bind NFQUEUE ${spec.queues.join(',')}`,
    );
    if (hint) process.stderr.write(`labelwall ${spec.role}: cannot bind NFQUEUE ${spec.queues.join(',')}: ${hint}\n`);
    return teardown('start failed', 1);
  }
  for (const x of spec.extraQueueSets ?? []) {
    try {
      extra[x.name] = await startQueues({
        queues: x.queues,
        handlerModule: x.handlerModule,
        handlerData: x.handlerData,
        failOpen: x.failOpen,
      });
    } catch (err) {
      log.error(
        { event: 'queue-bind-failed', err: (err as Error).message },
        `${spec.role}: cannot bind NFQUEUE ${x.queues.join(',')} (${x.name})`,
      );
      return teardown('start failed', 1);
    }
  }
  const relay = (set: QueueSet, name: string): void => {
    set.on('workerError', (index: number, err: Error) => {
      log.error(
        { event: 'worker-failed', worker: index, set: name, err: err.message },
        `${spec.role}: queue worker failed; its queue's traffic ${spec.failOpen ? 'passes unseen' : 'is dropped'}`,
      );
    });
    set.on('message', (_index: number, msg: unknown) => {
      const m = msg as { kind?: string; level?: string; msg?: string } | undefined;
      if (m?.kind === 'log') {
        const { kind: _k, level, msg: text, ...rest } = m as Record<string, unknown>;
        const fn = (log as unknown as Record<string, (o: unknown, s?: string) => void>)[String(level ?? 'info')] ?? log.info;
        fn.call(log, rest, String(text ?? ''));
        spec.onWorkerLog?.(m as Record<string, unknown>, name);
      } else spec.onWorkerMessage?.(msg, name);
    });
  };
  relay(queues, 'main');
  for (const [name, set] of Object.entries(extra)) relay(set, name);
  spec.onQueues?.({ main: queues, extra });

  try {
    const install = installPlan(plans, owner);
    installing = install;
    const { staleRemoved } = await install;
    if (staleRemoved)
      log.warn(
        { event: 'stale-rules-replaced', staleRemoved },
        'replaced the iptables state left by an earlier run (one iptables-restore transaction per family: no gap)',
      );
  } catch (err) {
    log.error({ event: 'rules-install-failed', err: (err as Error).message }, `${spec.role}: installing iptables rules failed`);
    return teardown('start failed', 1);
  }

  // Counters decided in the kernel (iptables rule counters): read every KERNEL_EVERY sampler
  // ticks (each read runs iptables once per family) and before every status answer; their
  // rates are taken between reads at least a second apart.
  let kernel: Record<string, number> = {};
  let kernelAt = 0;
  let rateBase: Record<string, number> = {};
  let kernelRates: Record<string, number> = {};
  const KERNEL_EVERY = 5;
  /** Reads the kernel counters into `kernel`; false when there are none or the read failed. */
  const readKernel = async (): Promise<boolean> => {
    if (!spec.kernelCounters) return false;
    try {
      kernel = await spec.kernelCounters();
      return true;
    } catch (err) {
      log.debug({ event: 'kernel-counters-failed', err: (err as Error).message }, 'reading kernel counters failed');
      return false;
    }
  };
  refreshKernel = async (): Promise<void> => {
    if (stopping || !(await readKernel())) return;
    const now = Date.now();
    if (!kernelAt || now - kernelAt >= 1000) {
      if (kernelAt)
        kernelRates = Object.fromEntries(Object.entries(kernel).map(([k, v]) => [k, (v - (rateBase[k] ?? 0)) / ((now - kernelAt) / 1000)]));
      rateBase = kernel;
      kernelAt = now;
    }
  };
  finalKernel = async (): Promise<Record<string, number>> => {
    await readKernel();
    return kernel;
  };
  const withKernel = (s: ReturnType<typeof summarize>): ReturnType<typeof summarize> => {
    addCounters(s.counters, kernel);
    return s;
  };
  await refreshKernel();
  let ticks = 0;

  // Rates over the last sampling interval.
  let last = summarize(allStats());
  let lastAt = Date.now();
  let rates: Record<string, number> = {};
  const sampler = setInterval(() => {
    if (!queues) return;
    if (++ticks % KERNEL_EVERY === 0) void refreshKernel();
    const now = summarize(allStats());
    const dt = (Date.now() - lastAt) / 1000;
    const r: Record<string, number> = { received: (now.datapath.received - last.datapath.received) / dt };
    for (const [k, v] of Object.entries(now.counters)) r[k] = (v - (last.counters[k] ?? 0)) / dt;
    for (const [k, v] of Object.entries(kernelRates)) r[k] = (r[k] ?? 0) + v;
    rates = r;
    last = now;
    lastAt = Date.now();
  }, 1000);
  sampler.unref();

  status = (): StatusReport => {
    const qs = allStats();
    const s = withKernel(summarize(qs));
    return {
      role: spec.role,
      pid: process.pid,
      owner,
      startedAt: started.toISOString(),
      uptimeSeconds: Math.round((Date.now() - started.getTime()) / 1000),
      config: spec.describe,
      counters: s.counters,
      ratesPerSecond: rates,
      queues: qs.workers.map((w) => ({
        queue: w.queueNum,
        received: w.received,
        batches: w.batches,
        sends: w.sends,
        handlerErrors: w.handlerErrors,
      })),
      datapath: s.datapath,
      log: logStats(log),
    };
  };

  try {
    server = await startControlServer(spec.controlSocket, {
      '/status': async () => {
        await refreshKernel();
        return { type: 'application/json', body: `${JSON.stringify(status!())}\n` };
      },
      '/metrics': async () => {
        await refreshKernel();
        return { type: registry.contentType, body: await registry.metrics() };
      },
      ...spec.extraRoutes,
    });
  } catch (err) {
    log.error({ event: 'control-socket-failed', err: (err as Error).message }, `${spec.role}: control socket`);
    return teardown('start failed', 1);
  }
  // Every worker answers from its receive loop, now that the rules send it packets: only then
  // is the daemon ready (READY=1), so units ordered after it start with it in force.
  try {
    await Promise.all([queues, ...Object.values(extra)].map((q) => q.ping()));
  } catch (err) {
    log.error({ event: 'worker-unresponsive', err: (err as Error).message }, `${spec.role}: a queue worker does not answer`);
    return teardown('start failed', 1);
  }
  log.info(
    {
      event: 'started',
      queues: spec.queues,
      failOpen: spec.failOpen,
      control: spec.controlSocket,
      ...(spec.metricsListen ? { metrics: `http://${formatListen(spec.metricsListen)}/metrics` } : {}),
      owner,
      ...spec.describe,
    },
    `${spec.role}: running`,
  );
  running = true;
  notifier.send('READY=1', `STATUS=${spec.role} running: rules installed, ${spec.queues.length} queue worker(s) answering`);
  if (hupDuringStart) reload();
}
