// Per-application egress decision: a pure function of (policy, flow, attribution).
// Semantics are documented in docs/config.md ("agent.egress").
import picomatch from 'picomatch';
import type { AppMatch, EgressAction, EgressPolicy, EgressRule } from '../config/model.js';
import { compileCmdline, matchCidrs, matchPorts, MAX_CMDLINE_MATCH } from '../util/match.js';
import { bytesToIp, parseIp } from '../util/ip.js';
import type { Attribution, FlowProto, ProcessInfo } from '../identity/types.js';

export interface EgressFlow {
  family: 4 | 6;
  proto: FlowProto;
  /** Destination address: text or 4/16 raw bytes. */
  dst: string | Uint8Array;
  /** Destination port; ignored for ICMP. */
  dport: number;
}

export interface EgressDecision {
  action: EgressAction;
  /** Name of the rule that matched, or "default" / "unknown" when none did. */
  rule: string;
  /** Pids of the holders that satisfied the rule's app matcher (empty for rules without one). */
  matchedHolders: number[];
  /** The v1 app tag of the deciding rule (`tag:`); absent = 0, unclassified. */
  tag?: number;
}

interface CompiledApp {
  holders: 'any' | 'all';
  test: (p: ProcessInfo) => boolean;
}

const compiled = new WeakMap<EgressRule, CompiledApp | null>();

function compileApp(app: AppMatch): CompiledApp {
  const tests: ((p: ProcessInfo) => boolean)[] = [];
  if (app.exe !== undefined) {
    const m = picomatch(app.exe, { dot: true });
    tests.push((p) => m(p.exe));
  }
  if (app.sha256 !== undefined) {
    const want = app.sha256.toLowerCase();
    tests.push((p) => p.sha256 === want);
  }
  if (app.user !== undefined) {
    const u = app.user;
    tests.push(typeof u === 'number' ? (p) => p.uid === u : (p) => p.user === u);
  }
  if (app.cgroup !== undefined) {
    const m = picomatch(app.cgroup, { dot: true });
    tests.push((p) => (p.unit !== undefined && m(p.unit)) || (p.containerId !== undefined && m(p.containerId)) || m(p.cgroup));
  }
  if (app.cmdline !== undefined) {
    const test = compileCmdline(app.cmdline);
    tests.push((p) => test(p.cmdline));
  }
  return { holders: app.holders, test: (p) => tests.every((t) => t(p)) };
}

function appOf(rule: EgressRule): CompiledApp | null {
  let c = compiled.get(rule);
  if (c === undefined) {
    c = rule.app ? compileApp(rule.app) : null;
    compiled.set(rule, c);
  }
  return c;
}

function dstMatches(rule: EgressRule, flow: EgressFlow, dstBytes: Uint8Array | undefined): boolean {
  const d = rule.dst;
  if (!d) return true;
  if (d.proto !== 'any' && d.proto !== flow.proto) return false;
  if (d.cidrs.length > 0 && (dstBytes === undefined || !matchCidrs(d.cidrs, dstBytes))) return false;
  if (d.ports.length > 0 && (flow.proto === 'icmp' || !matchPorts(d.ports, flow.dport))) return false;
  return true;
}

/**
 * First matching rule wins. A rule matches when its `dst` matches the flow and its `app`
 * matches the holders (`any`: at least one holder matches; `all`: there is at least one holder
 * and every holder matches). A rule without `app` matches any flow to its destination, also an
 * unknown one; a rule with `app` never matches an unknown flow. No match: `default` for an
 * attributed flow, `unknown` for a flow without holders.
 */
export function decideEgress(policy: EgressPolicy, flow: EgressFlow, attribution: Attribution): EgressDecision {
  const dstBytes = typeof flow.dst === 'string' ? parseIp(flow.dst) : flow.dst;
  const holders = attribution.unknown ? [] : attribution.holders;
  for (const rule of policy.rules) {
    if (!dstMatches(rule, flow, dstBytes)) continue;
    const app = appOf(rule);
    const tag = rule.tag !== undefined ? { tag: rule.tag } : {};
    if (app === null) return { action: rule.action, rule: rule.name, matchedHolders: [], ...tag };
    if (holders.length === 0) continue;
    const matched = holders.filter(app.test);
    const ok = app.holders === 'any' ? matched.length > 0 : matched.length === holders.length;
    if (ok) return { action: rule.action, rule: rule.name, matchedHolders: matched.map((p) => p.pid), ...tag };
  }
  if (holders.length === 0) return { action: policy.unknown, rule: 'unknown', matchedHolders: [] };
  return { action: policy.default, rule: 'default', matchedHolders: [] };
}

/** True when some rule matches on the executable hash (the attributor can skip hashing otherwise). */
export function policyNeedsHash(policy: EgressPolicy): boolean {
  return policy.rules.some((r) => r.app?.sha256 !== undefined);
}

export interface EgressLogHolder {
  pid: number;
  ppid: number;
  exe: string;
  exeDeleted?: true;
  sha256?: string;
  uid: number;
  user?: string;
  cmdline: string[];
  cgroup: string;
  unit?: string;
  containerId?: string;
  /** The argv was longer than MAX_CMDLINE_MATCH characters: `cmdline` holds its start. */
  cmdlineTruncated?: true;
  /** This holder satisfied the deciding rule's app matcher. */
  matched: boolean;
}

/**
 * The argv as logged: what a cmdline rule sees (the first MAX_CMDLINE_MATCH characters), so
 * that one process with a huge argv does not make every record of its flows huge.
 */
export function capArgv(argv: string[]): string[] {
  let len = 0;
  for (let i = 0; i < argv.length; i++) {
    len += argv[i]!.length + (i > 0 ? 1 : 0);
    if (len > MAX_CMDLINE_MATCH) {
      const out = argv.slice(0, i + 1);
      out[i] = out[i]!.slice(0, Math.max(0, out[i]!.length - (len - MAX_CMDLINE_MATCH)));
      return out;
    }
  }
  return argv;
}

/** One JSON-able log line per decision: the flow, the identity and the rule. */
export interface EgressLogRecord {
  event: 'egress';
  action: EgressAction;
  rule: string;
  /** The app tag the flow's labels carry (v1), when the rule gives one. */
  tag?: number;
  proto: FlowProto;
  family: 4 | 6;
  src?: string;
  sport?: number;
  dst: string;
  dport: number;
  socket?: { inode: number; uid: number };
  unknown: boolean;
  reason?: string;
  holders: EgressLogHolder[];
}

export function egressLogRecord(
  flow: EgressFlow & { src?: string | Uint8Array; sport?: number },
  attribution: Attribution,
  decision: EgressDecision,
): EgressLogRecord {
  const text = (a: string | Uint8Array): string => (typeof a === 'string' ? a : bytesToIp(a));
  const matched = new Set(decision.matchedHolders);
  const rec: EgressLogRecord = {
    event: 'egress',
    action: decision.action,
    rule: decision.rule,
    ...(decision.tag !== undefined && decision.action !== 'deny' ? { tag: decision.tag } : {}),
    proto: flow.proto,
    family: flow.family,
    dst: text(flow.dst),
    dport: flow.dport,
    unknown: attribution.unknown,
    holders: attribution.holders.map((h) => {
      const o: EgressLogHolder = {
        pid: h.pid,
        ppid: h.ppid,
        exe: h.exe,
        uid: h.uid,
        cmdline: capArgv(h.cmdline),
        cgroup: h.cgroup,
        matched: matched.has(h.pid),
      };
      if (o.cmdline !== h.cmdline) o.cmdlineTruncated = true;
      if (h.exeDeleted) o.exeDeleted = true;
      if (h.sha256 !== undefined) o.sha256 = h.sha256;
      if (h.user !== undefined) o.user = h.user;
      if (h.unit !== undefined) o.unit = h.unit;
      if (h.containerId !== undefined) o.containerId = h.containerId;
      return o;
    }),
  };
  if (flow.src !== undefined) rec.src = text(flow.src);
  if (flow.sport !== undefined) rec.sport = flow.sport;
  if (attribution.socket) rec.socket = { ...attribution.socket };
  if (attribution.reason !== undefined) rec.reason = attribution.reason;
  return rec;
}
