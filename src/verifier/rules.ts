// The verifier's iptables rules (pure): filter INPUT or FORWARD -> LABELWALL-VERIFY.
// One NFQUEUE rule per selection of each configured rule, in order, so iptables' first match
// is the config's first match and unselected traffic never reaches userspace. A packet the
// verifier has judged comes back marked (NF_REPEAT) and the first rule returns it to the
// built-in chain, where the administrator's own rules can act on the mark.
import { hexMark, nfqueueTarget, rolePrefix, selectionMatches, type Family, type RulePlan } from '../datapath/iptables.js';
import type { Cidr, PortRange } from '../policy/match.js';

export interface VerifierSelection {
  inInterfaces: readonly string[];
  outInterfaces: readonly string[];
  sources: readonly Cidr[];
  destinations: readonly Cidr[];
  ports: readonly PortRange[];
}

export interface VerifierRuleOptions {
  hook: 'input' | 'forward';
  queues: readonly number[];
  failOpen: boolean;
  markMask: number;
  selections: readonly VerifierSelection[];
}

export const VERIFIER_PREFIX = rolePrefix('verify');

export function verifierRulePlan(family: Family, o: VerifierRuleOptions): RulePlan {
  const target = nfqueueTarget(o.queues, o.failOpen);
  const rules: string[][] = [['-m', 'mark', '!', '--mark', hexMark(0, o.markMask), '-j', 'RETURN']];
  if (o.hook === 'input') rules.push(['-i', 'lo', '-j', 'RETURN']);
  for (const s of o.selections) {
    for (const m of selectionMatches(s, family)) rules.push([...m, ...target]);
  }
  return {
    prefix: VERIFIER_PREFIX,
    chains: [{ table: 'filter', hook: o.hook === 'input' ? 'INPUT' : 'FORWARD', chain: `${VERIFIER_PREFIX}-${o.hook.toUpperCase()}`, rules }],
  };
}
