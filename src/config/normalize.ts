// The file as written (RawConfig, already validated) -> the typed model: defaults applied,
// snake_case keys to camelCase, CIDRs and ports parsed, key paths made absolute.
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseCidr, parsePortRange, type Cidr, type PortRange } from '../util/match.js';
import { DEFAULT_AGENT_MARK, DEFAULT_AGENT_TAG_MASK, type AgentMarks } from './marks.js';
import {
  DEFAULT_DECISION_LOG_LIMITS,
  DEFAULT_MARK,
  type AppMatch,
  type EgressRule,
  type KeyEntry,
  type LabelwallConfig,
  type MarkBits,
} from './model.js';
import type { NatPart, RawConfig } from './schema.js';
import { NAT_DST, NAT_PORTS, NAT_SRC } from './nat.js';
import { parseListen, type ListenAddress } from './listen.js';

const NAT_BIT: Record<NatPart, number> = { source: NAT_SRC, destination: NAT_DST, ports: NAT_PORTS };
/** `[source, ports]` -> NAT_SRC | NAT_PORTS. */
export function natBits(parts: readonly NatPart[] | undefined): number {
  return (parts ?? []).reduce((n, p) => n | NAT_BIT[p], 0);
}

/** A `tag:` value (a name under `tags` or a number; checks.ts refused anything else) as its number. */
function tagNumber(ref: string | number, tags: Record<string, number>): number {
  return typeof ref === 'number' ? ref : tags[ref]!;
}

function markNumber(val: number | string): number {
  return typeof val === 'number' ? val : Number(val.trim());
}

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
  for (const [k, e] of Object.entries(raw.keys ?? {})) {
    const p = typeof e === 'string' ? e : e.file;
    keys[k] = { file: isAbsolute(p) ? p : resolve(baseDir, p), id: typeof e === 'string' ? 0 : (e.id ?? 0) };
  }
  const tags: Record<string, number> = { ...(raw.tags ?? {}) };
  const keyNames = Object.keys(keys);
  const a = raw.agent ?? {};
  const v = raw.verifier ?? {};
  const m = v.mark ?? {};
  const mark: MarkBits = { ...DEFAULT_MARK };
  for (const k of ['mask', 'valid', 'invalid', 'unlabelled', 'malformed'] as const) {
    const val = m[k];
    if (val !== undefined) mark[k] = markNumber(val);
  }
  if (m.tag_mask !== undefined) mark.tagMask = markNumber(m.tag_mask);
  const agentMark: AgentMarks = { ...DEFAULT_AGENT_MARK };
  for (const k of ['done', 'deny', 'allow'] as const) {
    const val = a.mark?.[k];
    if (val !== undefined) agentMark[k] = markNumber(val);
  }
  const verifierAction = v.action ?? 'drop';
  return {
    keys,
    tags,
    log: {
      level: raw.log?.level ?? 'info',
      format: raw.log?.format ?? 'json',
      ...(raw.log?.file !== undefined ? { file: raw.log.file } : {}),
      egressDecisions: {
        allowPerSecond: raw.log?.egress_decisions?.allow_per_second ?? DEFAULT_DECISION_LOG_LIMITS.allowPerSecond,
        denyPerSecond: raw.log?.egress_decisions?.deny_per_second ?? DEFAULT_DECISION_LOG_LIMITS.denyPerSecond,
        summarySeconds: raw.log?.egress_decisions?.summary_seconds ?? DEFAULT_DECISION_LOG_LIMITS.summarySeconds,
      },
    },
    agent: {
      profile: a.profile ?? 'v1',
      gso: a.gso ?? true,
      ...(a.key !== undefined ? { key: a.key } : keyNames.length === 1 ? { key: keyNames[0]! } : {}),
      interfaces: a.interfaces ?? [],
      families: a.families ?? ['ipv4', 'ipv6'],
      label: { destinations: cidrs(a.label?.destinations), ports: ports(a.label?.ports) },
      fail: a.fail ?? 'closed',
      queues: a.queues ?? 1,
      queueBase: a.queue_base ?? 100,
      mark: agentMark,
      tagMask: a.mark?.tag_mask !== undefined ? markNumber(a.mark.tag_mask) : DEFAULT_AGENT_TAG_MASK,
      identity: {
        bpf: a.identity?.ebpf ?? 'auto',
        exhaustive: a.identity?.exhaustive ?? false,
        hash: a.identity?.hash ?? true,
        indexIntervalMs: a.identity?.index_interval_ms ?? 1000,
      },
      egress: {
        default: a.egress?.default ?? 'allow',
        unknown: a.egress?.unknown ?? 'allow',
        ...(a.egress?.queue !== undefined ? { queue: a.egress.queue } : {}),
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
          if (r.tag !== undefined) rule.tag = tagNumber(r.tag, tags);
          return rule;
        }),
      },
      nat: (a.nat ?? []).map((n) => ({ destinations: cidrs(n.destinations), nat: natBits(n.translated) })),
    },
    verifier: {
      profile: v.profile ?? 'v1',
      epochWindow: { before: v.epoch_window?.before ?? 2, after: v.epoch_window?.after ?? 1 },
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
        ...(r.tags !== undefined ? { tags: r.tags.map((t) => tagNumber(t, tags)) } : {}),
        ...(r.allow_nat !== undefined ? { allowNat: natBits(r.allow_nat) } : {}),
      })),
    },
    control: raw.control?.socket !== undefined ? { socket: raw.control.socket } : {},
    metrics: metricsListen(raw.metrics?.listen),
  };
}

/** `metrics.listen` as an address (checks.ts refused what does not parse). */
function metricsListen(v: string | number | undefined): { listen?: ListenAddress } {
  if (v === undefined) return {};
  const r = parseListen(v);
  return r.ok ? { listen: r.listen } : {};
}
