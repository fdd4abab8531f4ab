// The agent's per-flow egress state: the first packet of a flow is attributed and judged
// (decideEgress) and the decision logged; later packets of the flow reuse it. Also the live
// table behind `labelwall flows`. Attribution and the clock are injected, so this is testable
// without processes or sockets.
import type { Attribution, FlowTuple } from '../identity/types.js';
import type { EgressAction, EgressPolicy } from '../config/model.js';
import { decideEgress, egressLogRecord, type EgressLogRecord } from './egress.js';

export interface FlowHolderSummary {
  pid: number;
  exe: string;
  user?: string;
  uid: number;
  /** systemd unit and container id, when the holder's cgroup names one. */
  unit?: string;
  containerId?: string;
}

export interface FlowEntry {
  tuple: FlowTuple;
  action: EgressAction;
  rule: string;
  /** v1 app tag of the flow's labels (the allowing rule's `tag`); 0 = unclassified. */
  tag: number;
  unknown: boolean;
  holders: FlowHolderSummary[];
  firstSeen: number;
  lastSeen: number;
  packets: number;
  bytesLabelled: number;
}

export interface EgressGateOptions {
  policy: EgressPolicy;
  attribute: (t: FlowTuple) => Attribution;
  /** Called once per decision with its JSON-able record. */
  log?: (rec: EgressLogRecord) => void;
  /** Table bound; the least recently seen flow is dropped past it. Default 65,536. */
  maxFlows?: number;
  /** A flow unseen for this long is forgotten (ms). Default tcp 300 s, udp 60 s, icmp 30 s. */
  idleMs?: Partial<Record<FlowTuple['proto'], number>>;
  /** A new-flow packet (SYN) for a known flow older than this is judged again (ms). Default 3 s. */
  retransmitMs?: number;
  now?: () => number;
}

export function flowKey(t: FlowTuple): string {
  return `${t.proto} ${t.src} ${t.sport} ${t.dst} ${t.proto === 'icmp' ? 0 : t.dport}`;
}

export class EgressGate {
  private policy: EgressPolicy;
  private readonly flows = new Map<string, FlowEntry>();
  private readonly opts: Required<Omit<EgressGateOptions, 'log' | 'idleMs'>> & Pick<EgressGateOptions, 'log'>;
  private readonly idle: Record<FlowTuple['proto'], number>;
  decisions = 0;

  constructor(o: EgressGateOptions) {
    this.policy = o.policy;
    this.opts = { maxFlows: 65536, retransmitMs: 3000, now: Date.now, ...o };
    this.idle = { tcp: 300_000, udp: 60_000, icmp: 30_000, ...o.idleMs };
  }

  /** New flows are judged by `p`; flows already judged keep their decision. */
  setPolicy(p: EgressPolicy): void {
    this.policy = p;
  }

  /**
   * The decision for one outgoing packet. `newFlow`: the packet opens a flow (TCP SYN): judged
   * unless it is a retransmission of a flow judged within retransmitMs. Other packets reuse the
   * flow's decision; a packet of a flow never seen (UDP, ICMP, or TCP begun before the agent)
   * is judged as new.
   */
  packet(t: FlowTuple, newFlow = false): FlowEntry {
    const now = this.opts.now();
    const key = flowKey(t);
    let e = this.flows.get(key);
    if (e && now - e.lastSeen > this.idle[t.proto]) e = undefined;
    if (e && newFlow && now - e.firstSeen > this.opts.retransmitMs) e = undefined;
    if (!e) e = this.judge(t, key, now);
    else {
      // Refresh LRU position.
      this.flows.delete(key);
      this.flows.set(key, e);
    }
    e.lastSeen = now;
    e.packets++;
    return e;
  }

  /** Adds labelled payload bytes to a flow's counter (no-op for an unknown flow). */
  labelled(t: FlowTuple, bytes: number): void {
    const e = this.flows.get(flowKey(t));
    if (e) e.bytesLabelled += bytes;
  }

  /** The live table, most recently seen last; expired flows are dropped first. */
  table(): FlowEntry[] {
    this.expire();
    return [...this.flows.values()];
  }

  expire(): void {
    const now = this.opts.now();
    for (const [k, e] of this.flows) if (now - e.lastSeen > this.idle[e.tuple.proto]) this.flows.delete(k);
  }

  get size(): number {
    return this.flows.size;
  }

  private judge(t: FlowTuple, key: string, now: number): FlowEntry {
    const attribution = this.opts.attribute(t);
    const flow = { family: t.family, proto: t.proto, dst: t.dst, dport: t.dport, src: t.src, sport: t.sport };
    const d = decideEgress(this.policy, flow, attribution);
    this.decisions++;
    this.opts.log?.(egressLogRecord(flow, attribution, d));
    const e: FlowEntry = {
      tuple: { ...t },
      action: d.action,
      rule: d.rule,
      tag: d.action === 'deny' ? 0 : (d.tag ?? 0),
      unknown: attribution.unknown,
      holders: attribution.holders.map((h) => ({
        pid: h.pid,
        exe: h.exe,
        uid: h.uid,
        ...(h.user !== undefined ? { user: h.user } : {}),
        ...(h.unit !== undefined ? { unit: h.unit } : {}),
        ...(h.containerId !== undefined ? { containerId: h.containerId } : {}),
      })),
      firstSeen: now,
      lastSeen: now,
      packets: 0,
      bytesLabelled: 0,
    };
    this.flows.delete(key);
    this.flows.set(key, e);
    while (this.flows.size > this.opts.maxFlows) this.flows.delete(this.flows.keys().next().value as string);
    return e;
  }
}
