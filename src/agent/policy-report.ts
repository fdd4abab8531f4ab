// GET /rules on the agent's control socket: the running egress policy as the ui shows it, one
// line per rule (what it matches, its action and tag), without anything secret (pure).
import type { EgressPolicy, EgressRule } from '../config/model.js';

export interface EgressRuleRow {
  name: string;
  action: string;
  /** What the rule matches, e.g. `exe **\/curl, tcp port 443`, or `any flow`. */
  match: string;
  tag?: number;
  tagName?: string;
}

export interface EgressRulesReport {
  default: string;
  unknown: string;
  rules: EgressRuleRow[];
}

function matchText(r: EgressRule): string {
  const parts: string[] = [];
  const a = r.app;
  if (a) {
    if (a.exe !== undefined) parts.push(`exe ${a.exe}`);
    if (a.sha256 !== undefined) parts.push(`sha256 ${a.sha256.slice(0, 12)}…`);
    if (a.user !== undefined) parts.push(`user ${a.user}`);
    if (a.cgroup !== undefined) parts.push(`cgroup ${a.cgroup}`);
    if (a.cmdline !== undefined) parts.push(`cmdline /${a.cmdline}/`);
    if (a.holders === 'all') parts.push('(all holders)');
  }
  const d = r.dst;
  if (d) {
    if (d.proto !== 'any') parts.push(d.proto);
    if (d.cidrs.length) parts.push(`to ${d.cidrs.map((c) => c.text).join(', ')}`);
    if (d.ports.length) parts.push(`port ${d.ports.map((p) => (p.lo === p.hi ? `${p.lo}` : `${p.lo}-${p.hi}`)).join(', ')}`);
  }
  return parts.length ? parts.join(', ') : 'any flow';
}

export function egressRulesReport(policy: EgressPolicy, tagNames: Readonly<Record<number, string>>): EgressRulesReport {
  return {
    default: policy.default,
    unknown: policy.unknown,
    rules: policy.rules.map((r) => ({
      name: r.name,
      action: r.action,
      match: matchText(r),
      ...(r.tag ? { tag: r.tag, ...(tagNames[r.tag] !== undefined ? { tagName: tagNames[r.tag] } : {}) } : {}),
    })),
  };
}
