// NFQUEUE handler module of the agent's labelling queues (loaded in each queue worker; see
// datapath/types.ts).
//
// With `countFlows` (egress policy on), labelled bytes are also counted per flow under a
// 32-bit flow key (flow-hash.ts) in a small map that goes to the main thread when it asks
// ({ kind: 'flows-query', id } → { kind: 'flow-bytes', id, entries }) or when it grows past
// FLOW_BYTES_FLUSH entries; the main thread joins them to the egress flow table.
//
// SIGHUP (key rollover): { kind: 'agent-key', generation, keyFile, keyId, nat } loads the new
// key first and then switches to it between two segments (messages are read between receive
// batches), so every segment is labelled with the old key or the new one, none with neither;
// answered with { kind: 'agent-key-applied', generation, ok, error? } (a key that does not load
// leaves the running one).
//
// GSO path (agent.gso: queues bound with NFQA_CFG_F_GSO; ctx.transmit present): a super-packet
// is cut into wire segments (segment.ts) at the size segment-size.ts finds from the socket's
// tcp_info, each is labelled in a transmitter slot (superpacket.ts), all are sent with one
// sendmmsg after the verdicts decided so far, and the original is dropped. A segment the kernel
// cut that would not fit the path MTU once labelled takes the same way (also with --no-gso);
// every other packet keeps the per-segment path.
//
// The app tag (v1) comes in the queued packet's mark under tagMask: the egress worker set
// it on the flow's first packet and CONNMARK restores it onto every later one (rules.ts).
import { loadKeyFile, type LabelKey } from '../label/keys.js';
import type { PacketContext } from '../label/profile.js';
import type { AgentNatRule } from '../config/model.js';
import { getProfile } from '../label/registry.js';
import { counterSlots, type HandlerContext, type PacketHandler, type QueuedPacket, type VerdictDecision } from '../datapath/types.js';
import { IfaceTable } from '../util/ifaces.js';
import { RateLimiter } from '../util/ratelimit.js';
import { AGENT_COUNTERS, NF_INET_LOCAL_OUT, decideAgentPacket, natFor } from './decide.js';
import { DEFAULT_AGENT_MARK, tagOfMark, withMark, type AgentMarks } from '../config/marks.js';
import { flowHashOfPacket } from './flow-hash.js';

import { parseIpPacket } from '../wire/packet.js';
import { TCP_RST, TCP_SYN } from '../wire/tcp.js';
import { SockDiag } from '../identity/sockdiag.js';
import { TCPI_OPT_TIMESTAMPS } from '../identity/sockdiag-proto.js';
import { PathInfoCache, labelledTcpHeaderBound, segmentPayloadSize, type TcpPathInfo } from './segment-size.js';
import { cutAndLabel } from './superpacket.js';
import { segmentCount } from './segment.js';
import type { RawTransmit } from '../datapath/raw-transmit.js';

export const counterNames = AGENT_COUNTERS;

// Fixed counter slots: the per-packet path indexes ctx.counters without a lookup by name.
const SLOT = counterSlots(AGENT_COUNTERS);

export interface AgentHandlerData {
  /** The label profile's name (label/registry.ts). */
  profile: string;
  keyFile: string;
  /** v1 key id of the key (0-7); default 0. */
  keyId?: number;
  /** v1 NAT flags per destination (agent.nat); default none (strict). */
  nat?: AgentNatRule[];
  /** Count labelled bytes per flow for `labelwall flows`. */
  countFlows?: boolean;
  /** The agent's mark bits (agent.mark). */
  marks?: AgentMarks;
  /** Mark bits that carry the flow's app tag (0 or absent: every label has tag 0). */
  tagMask?: number;
}

/** Per-flow byte deltas posted to the main thread: [flow key, bytes]. */
export interface FlowBytesMessage {
  kind: 'flow-bytes';
  /** The query answered, or -1 for a flush because the map grew. */
  id: number;
  entries: Array<[number, number]>;
}

export const FLOW_BYTES_FLUSH = 16384;

/** Below this many bytes a segment the kernel cut fits every path labelled (IPv6's minimum MTU less the largest label): no size check. */
const SURELY_FITS = 1280 - 40;

const DROP_DECISION: VerdictDecision = Object.freeze({ verdict: 'drop' });

/** SIGHUP: the labelling key (and NAT flags) for the next segments. */
export interface AgentKeyMessage {
  kind: 'agent-key';
  generation: number;
  keyFile: string;
  keyId: number;
  nat: AgentNatRule[];
}

export interface AgentKeyApplied {
  kind: 'agent-key-applied';
  generation: number;
  ok: boolean;
  error?: string;
  fingerprint?: string;
}

// What labels the next segment: replaced as a whole by onMessage (one assignment, between batches).
let state: { key: LabelKey; nat: AgentNatRule[] } | undefined;

let flowBytes: Map<number, number> | undefined;
let context: HandlerContext | undefined;

function flush(id: number): void {
  if (!flowBytes || !context) return;
  context.post({ kind: 'flow-bytes', id, entries: [...flowBytes] } satisfies FlowBytesMessage);
  flowBytes.clear();
}

export function createHandler(data: unknown, ctx: HandlerContext): PacketHandler {
  const { keyFile, keyId = 0, nat = [], countFlows, marks = DEFAULT_AGENT_MARK, tagMask = 0 } = data as AgentHandlerData;
  const profile = getProfile((data as AgentHandlerData).profile); // once: packets call it directly
  state = { key: loadKeyFile(keyFile, keyId), nat };
  const pctx: PacketContext = {}; // one object for every packet
  const ifaces = new IfaceTable();
  const events = new RateLimiter(20);
  const decision: VerdictDecision = { verdict: 'repeat' };
  context = ctx;
  const perFlow = countFlows ? new Map<number, number>() : undefined;
  flowBytes = perFlow;
  const tx = ctx.transmit;
  const paths = tx ? new PathInfoCache(pathInfoLookup()) : undefined;
  const countFlow = (pkt: Buffer, bytes: number): void => {
    if (!perFlow) return;
    const k = flowHashOfPacket(pkt);
    if (k >= 0) {
      perFlow.set(k, (perFlow.get(k) ?? 0) + bytes);
      if (perFlow.size >= FLOW_BYTES_FLUSH) flush(-1);
    }
  };
  /** A super-packet that could not be cut is dropped (fail closed), counted, and logged (rate-limited). */
  const notCut = (p: QueuedPacket, reason: string): VerdictDecision => {
    ctx.counters[SLOT.gso_dropped]!++;
    if (events.take()) ctx.post({ kind: 'log', level: 'warn', msg: 'agent: super-packet not cut', event: 'not-cut', reason, hook: p.hook });
    else ctx.counters[SLOT.log_suppressed]!++;
    return DROP_DECISION;
  };
  /** A packet that left unlabelled or was dropped by the decision, logged (rate-limited). */
  const notLabelled = (counter: string, reason: string, hook: number): void => {
    if (events.take())
      ctx.post({ kind: 'log', level: 'warn', msg: 'agent: packet not labelled', event: 'not-labelled', counter, reason, hook });
    else ctx.counters[SLOT.log_suppressed]!++;
  };
  /** The GSO path for `p`, or undefined when the packet keeps the per-segment path. */
  const cut = (p: QueuedPacket, tx: RawTransmit, paths: PathInfoCache): VerdictDecision | undefined => {
    const pkt = p.payload;
    if (!p.gso && pkt.length <= SURELY_FITS) return undefined;
    const c = ctx.counters;
    if (p.capLen > pkt.length) {
      // More than the queue copies (a GSO packet past 64 KiB): it cannot be cut; fail closed.
      c[SLOT.gso_dropped]!++;
      return DROP_DECISION;
    }
    const parsed = parseIpPacket(pkt);
    if (!parsed.ok || !parsed.tcp || parsed.tcp.payloadLen === 0) return undefined; // the per-segment path judges it
    // A SYN or RST with data (Fast Open) is never cut: its flags belong to one segment.
    if (!p.gso && (parsed.tcp.flags & (TCP_SYN | TCP_RST)) !== 0) return undefined;
    const key = flowHashOfPacket(pkt);
    const info = paths.get(key, pkt, parsed);
    if (!info) c[SLOT.segment_size_fallback]!++;
    const hdr = labelledTcpHeaderBound(parsed, profile.overhead);
    // Never more than a transmit slot holds, labelled (an MTU above 9 KiB would not fit).
    const size = Math.min(segmentPayloadSize(parsed, info, hdr, ifaces.get(p.outdev)?.mtu ?? 1500), tx.slotSize - parsed.l4Offset - hdr);
    const n = segmentCount(parsed.tcp.payloadLen, size);
    if (!p.gso && n === 1) return undefined;
    const s = state!;
    pctx.tag = tagOfMark(p.mark, tagMask);
    pctx.nat = s.nat.length > 0 ? natFor(s.nat, parsed.dst) : 0;
    const mark = withMark(p.mark, marks.done, marks.done);
    let bytes = 0;
    for (let first = 0; first < n; ) {
      const r = cutAndLabel(profile, pkt, parsed, size, first, s.key, pctx, tx.slots, tx.lens);
      // Nothing of this chunk leaves; earlier chunks did (TCP retransmits the rest).
      if (r.error !== undefined) return notCut(p, r.error);
      const sent = tx.send(r.written, parsed.family, parsed.dst, p.outdev, mark);
      c[SLOT.transmit_errors]! += r.written - sent;
      c[SLOT.gso_segments]! += r.written;
      c[SLOT.labelled]! += r.labelled;
      c[SLOT.unlabelled_no_room]! += r.unlabelled;
      if (r.unlabelled > 0) notLabelled('unlabelled_no_room', 'no-room-for-label', p.hook);
      c[SLOT.labelled_compact]! += r.compact;
      c[SLOT.sack_trimmed]! += r.sackTrimmed;
      c[SLOT.options_removed]! += r.optionsRemoved;
      c[SLOT.labelled_bytes]! += r.bytes;
      bytes += r.bytes;
      first += r.written;
    }
    c[p.gso ? SLOT.gso_packets : SLOT.oversize_cut]!++;
    countFlow(pkt, bytes);
    return DROP_DECISION;
  };
  return (p: QueuedPacket): VerdictDecision => {
    if (tx && p.hook === NF_INET_LOCAL_OUT) {
      let d: VerdictDecision | undefined;
      try {
        d = cut(p, tx, paths!);
      } catch (err) {
        // Not the fail-mode verdict: with fail-open that would let the super-packet leave
        // unlabelled (and repeat chunks already sent). Dropped; TCP retransmits.
        return notCut(p, (err as Error).message);
      }
      if (d) return d;
    }
    const mtu = ifaces.get(p.indev)?.mtu ?? 1500;
    const s = state!;
    pctx.tag = tagOfMark(p.mark, tagMask);
    pctx.nat = 0;
    const d = decideAgentPacket(profile, p.hook, p.payload, p.mark, mtu, s.key, ctx.scratch, marks, pctx, s.nat, p.csumNotReady);
    ctx.counters[SLOT[d.counter]]!++;
    if (d.counter === 'labelled') {
      // As sent, label included, like the GSO path's segments.
      const sent = d.payload?.length ?? p.payload.length;
      ctx.counters[SLOT.labelled_bytes]! += sent;
      if (d.compact) ctx.counters[SLOT.labelled_compact]!++;
      if (d.sackTrimmed) ctx.counters[SLOT.sack_trimmed]!++;
      if (d.optionsRemoved) ctx.counters[SLOT.options_removed]!++;
      countFlow(p.payload, sent);
    }
    if (d.reason) notLabelled(d.counter, d.reason, p.hook);
    decision.verdict = d.verdict;
    decision.mark = d.mark;
    decision.payload = d.payload;
    decision.payloadLength = undefined;
    return decision;
  };
}

export function onMessage(msg: unknown): void {
  const m = msg as { kind?: string; id?: number };
  if (m?.kind === 'flows-query') flush(m.id ?? -1);
  else if (m?.kind === 'agent-key') {
    const k = msg as AgentKeyMessage;
    let reply: AgentKeyApplied;
    try {
      const key = loadKeyFile(k.keyFile, k.keyId); // before anything changes: a bad key leaves the running one
      state = { key, nat: k.nat };
      reply = { kind: 'agent-key-applied', generation: k.generation, ok: true, fingerprint: key.fingerprint };
    } catch (err) {
      reply = { kind: 'agent-key-applied', generation: k.generation, ok: false, error: (err as Error).message };
    }
    context?.post(reply);
  }
}

/** tcp_info of a local TCP socket by its 4-tuple, through one sock_diag socket per worker (opened on first use). */
function pathInfoLookup(): (family: 4 | 6, src: Uint8Array, sport: number, dst: Uint8Array, dport: number) => TcpPathInfo | undefined {
  let diag: SockDiag | undefined;
  return (family, src, sport, dst, dport) => {
    try {
      const ti = (diag ??= new SockDiag()).lookupTcpInfo(family, src, sport, dst, dport)?.tcpInfo;
      return ti ? { sndMss: ti.sndMss, pmtu: ti.pmtu, timestamps: (ti.options & TCPI_OPT_TIMESTAMPS) !== 0 } : undefined;
    } catch {
      return undefined; // the fallback size is safe
    }
  };
}
