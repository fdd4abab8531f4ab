// The file as written (RawConfig, already validated) -> the typed model: defaults applied,
// snake_case keys to camelCase, CIDRs and ports parsed, key paths made absolute.
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseCidr, parsePortRange, type Cidr, type PortRange } from '../util/match.js';
import { DEFAULT_AGENT_MARK, type AgentMarks } from './marks.js';
import { DEFAULT_CONTROL_SOCKET, DEFAULT_DECISION_LOG_LIMITS, DEFAULT_MARK, type AppMatch, type EgressRule, type KeyEntry, type LabelwallConfig, type MarkBits } from './model.js';
import type { RawConfig } from './schema.js';

function cidrs(list: string[] | undefined): Cidr[] {
  return (list ?? []).map((c) => {
    const r = parseCidr(c);
    if (!r.ok) throw new Error(`unreachable: ${r.reason}`);
    return r.value;
  });
}

function ports(list: (string | number)[] | undefined): PortRange[] {
  return (list ?? []).map((p) => {
    const r = parsePortRange(p);
    if (!r.ok) throw new Error(`unreachable: ${r.reason}`);
    return r.value;
  });
}

export function normalize(raw: RawConfig, fileName: string): LabelwallConfig {
  const baseDir = fileName.startsWith('<') ? process.cwd() : dirname(resolve(fileName));
  const keys: Record<string, KeyEntry> = {};
  for (const [k, p] of Object.entries(raw.keys ?? {})) keys[k] = { file: isAbsolute(p) ? p : resolve(baseDir, p), id: 0 };
  const keyNames = Object.keys(keys);
  const a = raw.agent ?? {};
  const v = raw.verifier ?? {};
  const m = v.mark ?? {};
  const mark: MarkBits = { ...DEFAULT_MARK };
  for (const k of Object.keys(DEFAULT_MARK) as (keyof MarkBits)[]) {
    if (k === 'tagMask') continue; // not in the schema yet
    const val = m[k];
    if (val !== undefined) mark[k] = typeof val === 'number' ? val : Number(val.trim());
  }
  const agentMark: AgentMarks = { ...DEFAULT_AGENT_MARK };
  for (const k of Object.keys(DEFAULT_AGENT_MARK) as (keyof AgentMarks)[]) {
    const val = a.mark?.[k];
    if (val !== undefined) agentMark[k] = typeof val === 'number' ? val : Number(val.trim());
  }
  const verifierAction = v.action ?? 'drop';
  return {
    keys,
    tags: {},
    log: {
      level: raw.log?.level ?? 'info',
      ...(raw.log?.file !== undefined ? { file: raw.log.file } : {}),
      egressDecisions: {
        allowPerSecond: raw.log?.egress_decisions?.allow_per_second ?? DEFAULT_DECISION_LOG_LIMITS.allowPerSecond,
        denyPerSecond: raw.log?.egress_decisions?.deny_per_second ?? DEFAULT_DECISION_LOG_LIMITS.denyPerSecond,
        summarySeconds: raw.log?.egress_decisions?.summary_seconds ?? DEFAULT_DECISION_LOG_LIMITS.summarySeconds,
      },
    },
    agent: {
      profile: 'v1',
      ...(a.key !== undefined ? { key: a.key } : keyNames.length === 1 ? { key: keyNames[0]! } : {}),
      interfaces: a.interfaces ?? [],
      families: a.families ?? ['ipv4', 'ipv6'],
      label: { destinations: cidrs(a.label?.destinations), ports: ports(a.label?.ports) },
      fail: a.fail ?? 'closed',
      queues: a.queues ?? 1,
      queueBase: a.queue_base ?? 100,
      mark: agentMark,
      identity: {
        bpf: a.identity?.ebpf ?? 'auto',
        exhaustive: a.identity?.exhaustive ?? false,
        hash: a.identity?.hash ?? true,
        indexIntervalMs: a.identity?.index_interval_ms ?? 1000,
      },
      egress: {
        default: a.egress?.default ?? 'allow',
        unknown: a.egress?.unknown ?? 'allow',
        rules: (a.egress?.rules ?? []).map((r, i) => {
          const rule: EgressRule = { name: r.name ?? `rule-${i + 1}`, action: r.action };
          if (r.app) {
            const app: AppMatch = { holders: r.app.holders ?? 'any' };
            if (r.app.exe !== undefined) app.exe = r.app.exe;
            if (r.app.sha256 !== undefined) app.sha256 = r.app.sha256.toLowerCase();
            if (r.app.user !== undefined) app.user = r.app.user;
            if (r.app.cgroup !== undefined) app.cgroup = r.app.cgroup;
            if (r.app.cmdline !== undefined) app.cmdline = r.app.cmdline;
            rule.app = app;
          }
          if (r.dst) rule.dst = { cidrs: cidrs(r.dst.cidr), ports: ports(r.dst.ports), proto: r.dst.proto ?? 'any' };
          return rule;
        }),
      },
      nat: [],
    },
    verifier: {
      profile: 'v1',
      epochWindow: { before: 2, after: 1 },
      hook: v.hook ?? 'forward',
      action: verifierAction,
      families: v.families ?? ['ipv4', 'ipv6'],
      fail: v.fail ?? 'closed',
      queues: v.queues ?? 1,
      queueBase: v.queue_base ?? 200,
      mark,
      rules: (v.rules ?? []).map((r, i) => ({
        name: r.name ?? `rule-${i + 1}`,
        inInterfaces: r.in_interfaces ?? [],
        outInterfaces: r.out_interfaces ?? [],
        sources: cidrs(r.sources),
        destinations: cidrs(r.destinations),
        ports: ports(r.ports),
        keys: r.keys,
        action: r.action ?? verifierAction,
      })),
    },
    control: { socket: raw.control?.socket ?? DEFAULT_CONTROL_SOCKET },
  };
}
