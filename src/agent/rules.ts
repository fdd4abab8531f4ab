// The agent's iptables rules (pure): which packets reach its queues.
//   mangle OUTPUT -> LABELWALL-AGENT-OUT: new outbound flows (TCP SYN, UDP and ICMP echo in
//                    conntrack state NEW) go to the egress queue first; then every selected
//                    outgoing TCP segment goes to the labelling queues.
//   mangle INPUT  -> LABELWALL-AGENT-IN:  inbound SYN / SYN-ACK of the labelling selection get
//                    their options rewritten (see handshake.ts).
//   filter OUTPUT -> LABELWALL-AGENT-EGRESS: packets the egress queue marked DENY are rejected
//                    (TCP reset, ICMP port unreachable, ICMP admin prohibited), so applications
//                    fail fast. REJECT only exists in the filter table, hence the second chain.
// Loopback is never touched. Each queue answers NF_REPEAT with its mark bit (marks.ts), and the
// rule that queued a packet skips it the second time. The egress decision comes before
// labelling, so a denied SYN is never labelled.
import type { Family } from '../wire/packet.js';
import { hexMark, nfqueueTarget, queueRules, rolePrefix, selectionMatches, type RulePlan } from '../datapath/iptables.js';
import { DEFAULT_AGENT_MARK, egressBits, type AgentMarks } from '../config/marks.js';

export interface AgentRuleOptions {
  queues: readonly number[];
  failOpen: boolean;
  /** Outgoing interfaces to label on; empty = all but loopback. */
  interfaces: readonly string[];
  destinations: readonly { family: Family; text: string }[];
  ports: readonly { lo: number; hi: number }[];
  /** Queue of the egress decisions; undefined = no egress policy (nothing is queued for it). */
  egressQueue?: number;
  /** The agent's mark bits (agent.mark); default DEFAULT_AGENT_MARK. */
  marks?: AgentMarks;
  /** Mark bits that carry app tags through conntrack (0 or absent: no tag rules). */
  tagMask?: number;
}

export const AGENT_PREFIX = rolePrefix('agent');

/** iptables match arguments of the packets that open a flow, per protocol (pure). */
export function newFlowMatches(family: Family): Array<{ proto: 'tcp' | 'udp' | 'icmp'; match: string[] }> {
  const ct = ['-m', 'conntrack', '--ctstate', 'NEW'];
  return [
    { proto: 'tcp', match: ['-p', 'tcp', '--syn', ...ct] },
    { proto: 'udp', match: ['-p', 'udp', ...ct] },
    {
      proto: 'icmp',
      match:
        family === 4 ? ['-p', 'icmp', '--icmp-type', 'echo-request', ...ct] : ['-p', 'ipv6-icmp', '--icmpv6-type', 'echo-request', ...ct],
    },
  ];
}

/** How a denied packet is refused, per protocol and family. */
export function rejectArgs(family: Family): string[][] {
  return family === 4
    ? [
        ['-p', 'tcp', '-j', 'REJECT', '--reject-with', 'tcp-reset'],
        ['-p', 'udp', '-j', 'REJECT', '--reject-with', 'icmp-port-unreachable'],
        ['-p', 'icmp', '-j', 'REJECT', '--reject-with', 'icmp-admin-prohibited'],
        ['-j', 'DROP'],
      ]
    : [
        ['-p', 'tcp', '-j', 'REJECT', '--reject-with', 'tcp-reset'],
        ['-p', 'udp', '-j', 'REJECT', '--reject-with', 'icmp6-port-unreachable'],
        ['-p', 'ipv6-icmp', '-j', 'REJECT', '--reject-with', 'icmp6-adm-prohibited'],
        ['-j', 'DROP'],
      ];
}

export function agentRulePlan(family: Family, o: AgentRuleOptions): RulePlan {
  const target = nfqueueTarget(o.queues, o.failOpen);
  const m = o.marks ?? DEFAULT_AGENT_MARK;
  const skip = [['-m', 'mark', '--mark', hexMark(m.done, m.done), '-j', 'RETURN']];
  const out = selectionMatches({ outInterfaces: o.interfaces, destinations: o.destinations, ports: o.ports }, family);
  const inbound = selectionMatches({ inInterfaces: o.interfaces, sources: o.destinations, ports: o.ports, portsAreSource: true }, family);
  const egress: string[][] = [];
  // The app tag (v1): the egress verdict sets it in the mark of a flow's first packet; the
  // conntrack mark keeps it (save, on the packet the egress queue allowed) and every packet of
  // the flow gets it back (restore, which also clears what a socket's SO_MARK put there), so the
  // labelling workers read it from the queued packet's mark. Only with an egress queue: without
  // one, or when no egress rule gives a tag (the daemon passes tagMask 0 then), no flow has one.
  const tagRules: string[][] = [];
  if (o.egressQueue !== undefined && o.tagMask) {
    const t = `0x${o.tagMask.toString(16)}`;
    tagRules.push(['-m', 'mark', '--mark', hexMark(m.allow, m.allow), '-j', 'CONNMARK', '--save-mark', '--nfmask', t, '--ctmask', t]);
    tagRules.push(['-j', 'CONNMARK', '--restore-mark', '--nfmask', t, '--ctmask', t]);
  }
  if (o.egressQueue !== undefined) {
    const eq = nfqueueTarget([o.egressQueue], o.failOpen);
    // A denied packet is never labelled; filter OUTPUT rejects it.
    egress.push(['-m', 'mark', '--mark', hexMark(m.deny, m.deny), '-j', 'RETURN']);
    for (const { match } of newFlowMatches(family)) {
      egress.push(['-m', 'mark', '--mark', hexMark(0, egressBits(m)), ...match, ...eq]);
    }
  }
  const plan: RulePlan = {
    prefix: AGENT_PREFIX,
    chains: [
      {
        table: 'mangle',
        hook: 'OUTPUT',
        chain: `${AGENT_PREFIX}-OUT`,
        rules: [
          ['-o', 'lo', '-j', 'RETURN'],
          ...tagRules,
          ...egress,
          ...skip,
          ...out.flatMap((m) => queueRules(m, o.queues, o.failOpen, family)),
        ],
      },
      {
        table: 'mangle',
        hook: 'INPUT',
        chain: `${AGENT_PREFIX}-IN`,
        rules: [['-i', 'lo', '-j', 'RETURN'], ...skip, ...inbound.map((m) => [...m, '--tcp-flags', 'SYN', 'SYN', ...target])],
      },
    ],
  };
  if (o.egressQueue !== undefined) {
    plan.chains.push({
      table: 'filter',
      hook: 'OUTPUT',
      chain: `${AGENT_PREFIX}-EGRESS`,
      rules: [['-m', 'mark', '!', '--mark', hexMark(m.deny, m.deny), '-j', 'RETURN'], ...rejectArgs(family)],
    });
  }
  return plan;
}
