// The agent's iptables rules (pure): which segments reach its queue.
//   mangle OUTPUT -> LABELWALL-AGENT-OUT: every selected outgoing TCP segment is labelled.
//   mangle INPUT  -> LABELWALL-AGENT-IN:  inbound SYN / SYN-ACK of the same selection get their
//                                         options rewritten (see handshake.ts).
// Loopback is never touched, and a packet the agent has already handled (mark) is skipped.
import { hexMark, nfqueueTarget, rolePrefix, selectionMatches, type Family, type RulePlan } from '../datapath/iptables.js';
import { AGENT_MARK_DONE } from './marks.js';

export interface AgentRuleOptions {
  queues: readonly number[];
  failOpen: boolean;
  /** Outgoing interfaces to label on; empty = all but loopback. */
  interfaces: readonly string[];
  destinations: readonly { family: Family; text: string }[];
  ports: readonly { lo: number; hi: number }[];
}

export const AGENT_PREFIX = rolePrefix('agent');

export function agentRulePlan(family: Family, o: AgentRuleOptions): RulePlan {
  const target = nfqueueTarget(o.queues, o.failOpen);
  const skip = [['-m', 'mark', '--mark', hexMark(AGENT_MARK_DONE, AGENT_MARK_DONE), '-j', 'RETURN']];
  const out = selectionMatches({ outInterfaces: o.interfaces, destinations: o.destinations, ports: o.ports }, family);
  const inbound = selectionMatches(
    { inInterfaces: o.interfaces, sources: o.destinations, ports: o.ports, portsAreSource: true },
    family,
  );
  return {
    prefix: AGENT_PREFIX,
    chains: [
      {
        table: 'mangle',
        hook: 'OUTPUT',
        chain: `${AGENT_PREFIX}-OUT`,
        rules: [['-o', 'lo', '-j', 'RETURN'], ...skip, ...out.map((m) => [...m, ...target])],
      },
      {
        table: 'mangle',
        hook: 'INPUT',
        chain: `${AGENT_PREFIX}-IN`,
        rules: [
          ['-i', 'lo', '-j', 'RETURN'],
          ...skip,
          ...inbound.map((m) => [...m, '--tcp-flags', 'SYN', 'SYN', ...target]),
        ],
      },
    ],
  };
}
