// Main-thread side of `labelwall flows`: asks the labelling workers for their per-flow byte
// counts, relays them to the egress worker (which owns the flow table), then asks it for the
// table. Also relays policy reloads and reports when the worker applied them.
import type { QueueSet } from '../datapath/queue.js';
import type { FlowEntry, FlowHolderSummary } from '../policy/egress-gate.js';
import type { EgressMainMessage, EgressWorkerMessage } from './egress-handler.js';
import type { FlowBytesMessage } from './handler.js';
import type { EgressPolicy } from '../config/model.js';

/** One row of `labelwall flows` (GET /flows on the control socket). */
export interface FlowRow {
  proto: 'tcp' | 'udp' | 'icmp';
  family: 4 | 6;
  src: string;
  /** Local port; for ICMP the echo identifier. */
  sport: number;
  dst: string;
  /** 0 for ICMP. */
  dport: number;
  /** The application: executable of the first holder the deciding rule matched, else of the first holder; "unknown" without holders. */
  app: string;
  holders: FlowHolderSummary[];
  unknown: boolean;
  rule: string;
  verdict: 'allow' | 'deny' | 'log';
  /** The app tag in the flow's v1 labels (0 = unclassified) and its name under `tags`, if any. */
  tag: number;
  tagName?: string;
  /** IP bytes of this flow's segments that the labelling queues labelled (TCP only). */
  bytesLabelled: number;
  /** Packets the egress queue saw for the flow (TCP: the SYN; UDP/ICMP: those in conntrack state NEW). */
  egressPackets: number;
  firstSeen: string;
  lastSeen: string;
}

export interface FlowsReport {
  generatedAt: string;
  flows: FlowRow[];
  attribution: Record<string, number>;
  /** Labelling workers that did not answer in time (their newest byte counts are missing). */
  missingByteReports: number;
}

export function flowRow(e: FlowEntry, tagNames: Readonly<Record<number, string>> = {}): FlowRow {
  const app = e.holders.length === 0 ? 'unknown' : e.holders[0]!.exe;
  return {
    proto: e.tuple.proto,
    family: e.tuple.family,
    src: e.tuple.src,
    sport: e.tuple.sport,
    dst: e.tuple.dst,
    dport: e.tuple.proto === 'icmp' ? 0 : e.tuple.dport,
    app,
    holders: e.holders,
    unknown: e.unknown,
    rule: e.rule,
    verdict: e.action,
    tag: e.tag,
    ...(tagNames[e.tag] !== undefined ? { tagName: tagNames[e.tag] } : {}),
    bytesLabelled: e.bytesLabelled,
    egressPackets: e.packets,
    firstSeen: new Date(e.firstSeen).toISOString(),
    lastSeen: new Date(e.lastSeen).toISOString(),
  };
}

interface Pending<T> {
  resolve: (v: T) => void;
  timer: NodeJS.Timeout;
}

export class AgentFlowService {
  /** Tag numbers -> names (`tags:`), shown in the rows; replaced on SIGHUP. */
  tagNames: Readonly<Record<number, string>> = {};
  private seq = 0;
  private generation = 0;
  private readonly byteWaits = new Map<number, { left: number; done: () => void; timer: NodeJS.Timeout }>();
  private readonly flowWaits = new Map<number, Pending<EgressWorkerMessage & { kind: 'flows' }>>();
  private readonly applyWaits = new Map<number, Pending<EgressWorkerMessage & { kind: 'egress-policy-applied' }>>();

  constructor(
    private readonly labelling: QueueSet,
    private readonly egress: QueueSet,
    private readonly timeoutMs = 3000,
  ) {}

  private toEgress(m: EgressMainMessage): void {
    this.egress.post(m);
  }

  /** Feed every non-log worker message here. Returns true when it was one of ours. */
  onWorkerMessage(msg: unknown): boolean {
    const m = msg as FlowBytesMessage | EgressWorkerMessage | undefined;
    if (!m || typeof m !== 'object' || !('kind' in m)) return false;
    if (m.kind === 'flow-bytes') {
      if (m.entries.length > 0) this.toEgress({ kind: 'flow-bytes', entries: m.entries });
      const w = this.byteWaits.get(m.id);
      if (w && --w.left <= 0) w.done();
      return true;
    }
    if (m.kind === 'flows') {
      const w = this.flowWaits.get(m.id);
      if (w) {
        this.flowWaits.delete(m.id);
        clearTimeout(w.timer);
        w.resolve(m);
      }
      return true;
    }
    if (m.kind === 'egress-policy-applied') {
      const w = this.applyWaits.get(m.generation);
      if (w) {
        this.applyWaits.delete(m.generation);
        clearTimeout(w.timer);
        w.resolve(m);
      }
      return true;
    }
    return m.kind === 'egress-ready';
  }

  /** The live flow table (most recently seen last). */
  async query(): Promise<FlowsReport> {
    const id = ++this.seq;
    // 1. Labelling workers flush their byte counts (relayed to the egress worker on arrival).
    const missing = await new Promise<number>((resolve) => {
      const w = {
        left: this.labelling.queues.length,
        timer: setTimeout(() => {
          this.byteWaits.delete(id);
          resolve(w.left);
        }, this.timeoutMs / 2),
        done: () => {
          clearTimeout(w.timer);
          this.byteWaits.delete(id);
          resolve(0);
        },
      };
      this.byteWaits.set(id, w);
      this.labelling.post({ kind: 'flows-query', id });
    });
    // 2. The egress worker answers after the relayed byte counts (same port, in order).
    const reply = await new Promise<EgressWorkerMessage & { kind: 'flows' }>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.flowWaits.delete(id);
        reject(new Error(`the egress worker did not answer within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.flowWaits.set(id, { resolve, timer });
      this.toEgress({ kind: 'flows-query', id });
    });
    return {
      generatedAt: new Date().toISOString(),
      flows: reply.flows.map((e) => flowRow(e, this.tagNames)),
      attribution: { ...reply.attribution },
      missingByteReports: missing,
    };
  }

  /** Sends a new policy to the egress worker; resolves when it applied it. */
  applyPolicy(policy: EgressPolicy): Promise<EgressWorkerMessage & { kind: 'egress-policy-applied' }> {
    const generation = ++this.generation;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.applyWaits.delete(generation);
        reject(new Error(`the egress worker did not confirm policy generation ${generation} within ${this.timeoutMs} ms`));
      }, this.timeoutMs);
      this.applyWaits.set(generation, { resolve, timer });
      this.toEgress({ kind: 'egress-policy', generation, policy });
    });
  }
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function endpoint(addr: string, port: number, proto: string): string {
  const a = addr.includes(':') ? `[${addr}]` : addr;
  return proto === 'icmp' ? `${a} id ${port}` : `${a}:${port}`;
}

/** The human-readable table of `labelwall flows`. */
export function formatFlows(r: FlowsReport): string {
  const head = [
    'PROTO',
    'DESTINATION',
    'VERDICT',
    'RULE',
    'APPLICATION',
    'HOLDERS (pid exe user)',
    'BYTES LABELLED',
    'FIRST SEEN',
    'LAST SEEN',
  ];
  const rows = r.flows.map((f) => [
    `${f.proto}${f.family === 6 ? '6' : ''}`,
    f.proto === 'icmp' ? f.dst : endpoint(f.dst, f.dport, f.proto),
    f.verdict,
    f.rule,
    f.app,
    f.holders.length ? f.holders.map((h) => `${h.pid} ${h.exe} ${h.user ?? h.uid}`).join(', ') : f.unknown ? '(none found)' : '',
    String(f.bytesLabelled),
    f.firstSeen.slice(11, 23),
    f.lastSeen.slice(11, 23),
  ]);
  // The TAG column (v1 app tags) only when some flow has one: untagged agents print as before.
  if (r.flows.some((f) => f.tag)) {
    head.splice(4, 0, 'TAG');
    r.flows.forEach((f, i) => {
      rows[i]!.splice(4, 0, f.tagName ?? (f.tag ? String(f.tag) : '-'));
    });
  }
  const widths = head.map((h, i) => Math.min(60, Math.max(h.length, ...rows.map((row) => row[i]!.length))));
  const line = (cols: string[]): string =>
    cols
      .map((c, i) => (i === cols.length - 1 ? c : pad(c, widths[i]!)))
      .join('  ')
      .trimEnd();
  const out = [line(head), ...rows.map(line)];
  out.push(
    `${r.flows.length} flow(s)${r.missingByteReports ? `; ${r.missingByteReports} labelling worker(s) did not report bytes in time` : ''}`,
  );
  return `${out.join('\n')}\n`;
}
