// Injection of forged segments into a live flow, and proof at the server of what arrived:
//   sink.py (server: records every byte its socket delivers),
//   flow_client.py (client: a connection driven from the test, reports its live seq numbers),
//   forge.py (scapy: crafts nolabel / wrongkey / tampered / replay / valid segments).
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { run, type NsProcess, type Topology } from './netns.js';
import { PYTHON, peer } from './paths.js';
import { makeTempDir } from './tmp.js';

interface JsonEvent {
  event: string;
  [k: string]: unknown;
}

function events(p: NsProcess): JsonEvent[] {
  const out: JsonEvent[] = [];
  for (const l of p.stdout.split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      out.push(JSON.parse(l) as JsonEvent);
    } catch {
      /* a line still being written, or cut by the output buffer */
    }
  }
  return out;
}

async function nextEvent(p: NsProcess, after: number, name: string, timeoutMs: number): Promise<JsonEvent> {
  // Only events after the `after`-th JSON line count, so an earlier answer is never reused.
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ev = events(p).slice(after);
    const err = ev.find((e) => e.event === 'error');
    if (err) throw new Error(`${p.describe()}\n  error: ${String(err.error)}`);
    const hit = ev.find((e) => e.event === name);
    if (hit) return hit;
    if (!p.running) throw new Error(`${p.describe()}\n  exited before "${name}"`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for "${name}" from ${p.describe()}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface Sink {
  proc: NsProcess;
  port: number;
  outFile: string;
  /** Bytes the server application has read so far (the file is flushed after every recv). */
  received(): Buffer;
  /** Wait for the connection to end (EOF, reset or idle timeout); returns the final summary. */
  done(timeoutMs?: number): Promise<{ total: number; sha256: string; end: string }>;
  /** Wait until at least n bytes arrived. */
  waitForBytes(n: number, timeoutMs?: number): Promise<void>;
}

/** Start sink.py in `host` on bind/port; resolves once it listens. */
export async function startSink(
  topo: Topology,
  host: string,
  opts: { bind?: string; port?: number; idleTimeoutSec?: number } = {},
): Promise<Sink> {
  const port = opts.port ?? 9000;
  const outFile = join(makeTempDir('lw-sink-'), 'received.bin');
  const proc = topo.spawn(host, [
    PYTHON,
    '-u',
    peer('sink.py'),
    opts.bind ?? '::',
    String(port),
    outFile,
    '--timeout',
    String(opts.idleTimeoutSec ?? 60),
  ]);
  await nextEvent(proc, 0, 'ready', 10_000);
  const received = (): Buffer => {
    try {
      return readFileSync(outFile);
    } catch {
      return Buffer.alloc(0);
    }
  };
  return {
    proc,
    port,
    outFile,
    received,
    async done(timeoutMs = 20_000) {
      const ev = await nextEvent(proc, 0, 'done', timeoutMs);
      return { total: ev.total as number, sha256: ev.sha256 as string, end: ev.end as string };
    },
    async waitForBytes(n, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      const size = (): number => {
        try {
          return statSync(outFile).size;
        } catch {
          return 0;
        }
      };
      while (size() < n) {
        if (Date.now() > deadline) throw new Error(`sink has ${size()} bytes, waited for ${n}`);
        if (!proc.running) throw new Error(`sink exited with ${size()} bytes, waited for ${n}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
  };
}

export interface FlowClient {
  proc: NsProcess;
  local: { address: string; port: number };
  remote: { address: string; port: number };
  /** Send blob(n, tag) and wait until the peer ACKed all of it. */
  send(n: number, tag?: string): Promise<void>;
  /** Next send / expected receive sequence numbers of the live socket (TCP_REPAIR). */
  seq(): Promise<{ sndNxt: number; rcvNxt: number }>;
  /** Half-close, wait for the peer's close, exit. */
  close(): Promise<void>;
}

/** Open a connection from `host` to dst:port with flow_client.py. */
export async function startFlowClient(topo: Topology, host: string, dst: string, port: number): Promise<FlowClient> {
  const proc = topo.spawn(host, [PYTHON, '-u', peer('flow_client.py'), dst, String(port)]);
  const conn = await nextEvent(proc, 0, 'connected', 10_000);
  const [la, lp] = conn.local as [string, number];
  const [ra, rp] = conn.remote as [string, number];
  let answered = 1;
  const ask = async (cmd: string, answer: string, timeoutMs = 15_000): Promise<JsonEvent> => {
    const from = answered;
    proc.write(`${cmd}\n`);
    const ev = await nextEvent(proc, from, answer, timeoutMs);
    answered = events(proc).length;
    return ev;
  };
  return {
    proc,
    local: { address: la.replace(/^::ffff:/, ''), port: lp },
    remote: { address: ra.replace(/^::ffff:/, ''), port: rp },
    async send(n, tag = 'flow') {
      await ask(`send ${n} ${tag}`, 'sent');
    },
    async seq() {
      const ev = await ask('seq', 'seq');
      return { sndNxt: ev.snd_nxt as number, rcvNxt: ev.rcv_nxt as number };
    },
    async close() {
      await ask('close', 'closed');
      await proc.exited;
    },
  };
}

export type ForgeKind = 'nolabel' | 'wrongkey' | 'tampered' | 'replay' | 'valid';

export interface ForgeOptions {
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  /** Key the verifier accepts, hex (needed for tampered, replay, valid). */
  keyHex?: string;
  wrongKeyHex?: string;
  /** Label profile of the forged labels (default compat); v1 takes a key id, tag and NAT flags (NAT_* bits). */
  profile?: 'compat' | 'v1';
  keyId?: number;
  tag?: number;
  nat?: number;
  payload?: Buffer;
  /** Default payload length ("FORGED-<KIND>-" repeated). */
  size?: number;
  count?: number;
  /** packet (default): AF_PACKET, bypasses the sender namespace's netfilter; raw: through its OUTPUT chain. */
  via?: 'packet' | 'raw';
  flags?: string;
  replayLabelHex?: string;
  /** Build and return the segment without sending it. */
  dryRun?: boolean;
}

export interface ForgeResult {
  kind: ForgeKind;
  seq: number;
  ack: number;
  payload: Buffer;
  optionHex: string | null;
  packetHex: string;
  iface?: string;
}

/**
 * Run forge.py in `host` and send one crafted segment (or `count` copies). With `topo`
 * null and `dryRun`, it only builds the segment, in the current namespace.
 */
export async function forge(topo: Topology | null, host: string, kind: ForgeKind, o: ForgeOptions): Promise<ForgeResult> {
  if (!topo && !o.dryRun) throw new Error('forge without a topology must be a dry run');
  const argv = [
    PYTHON,
    peer('forge.py'),
    'inject',
    kind,
    '--src',
    o.src,
    '--dst',
    o.dst,
    '--sport',
    String(o.sport),
    '--dport',
    String(o.dport),
    '--seq',
    String(o.seq),
    '--ack',
    String(o.ack),
    '--via',
    o.via ?? 'packet',
    '--count',
    String(o.count ?? 1),
  ];
  if (o.keyHex) argv.push('--key-hex', o.keyHex);
  if (o.wrongKeyHex) argv.push('--wrong-key-hex', o.wrongKeyHex);
  if (o.profile) argv.push('--profile', o.profile);
  if (o.keyId !== undefined) argv.push('--key-id', String(o.keyId));
  if (o.tag !== undefined) argv.push('--tag', String(o.tag));
  if (o.nat !== undefined) argv.push('--nat', String(o.nat));
  if (o.payload) argv.push('--payload-hex', o.payload.toString('hex'));
  if (o.size !== undefined) argv.push('--size', String(o.size));
  if (o.flags) argv.push('--flags', o.flags);
  if (o.replayLabelHex) argv.push('--replay-label-hex', o.replayLabelHex);
  if (o.dryRun) argv.push('--dry-run');
  const r = await (topo ? topo.check(host, argv, { timeoutMs: 30_000 }) : run(argv, { check: true, timeoutMs: 30_000 }));
  const info = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
    kind: ForgeKind;
    seq: number;
    ack: number;
    payload_hex: string;
    option_hex: string | null;
    packet_hex: string;
    iface?: string;
  };
  return {
    kind: info.kind,
    seq: info.seq,
    ack: info.ack,
    payload: Buffer.from(info.payload_hex, 'hex'),
    optionHex: info.option_hex,
    packetHex: info.packet_hex,
    ...(info.iface ? { iface: info.iface } : {}),
  };
}

/** The compat label option computed by forge.py's independent Python implementation (hex, 40 bytes). */
export async function pythonCompatLabel(keyHex: string, seq: number, payload: Buffer): Promise<string> {
  const r = await run(
    [PYTHON, peer('forge.py'), 'label', '--key-hex', keyHex, '--seq', String(seq), '--payload-hex', payload.toString('hex')],
    {
      check: true,
    },
  );
  return r.stdout.trim();
}

/**
 * Inject one forged segment at the exact next byte the server expects on a live flow.
 * Waits for the client to be idle (all data ACKed) first, so the seq numbers are current.
 */
export async function injectIntoFlow(
  topo: Topology,
  fromHost: string,
  flow: FlowClient,
  kind: ForgeKind,
  o: Omit<ForgeOptions, 'src' | 'dst' | 'sport' | 'dport' | 'seq' | 'ack'> = {},
): Promise<ForgeResult> {
  const { sndNxt, rcvNxt } = await flow.seq();
  return forge(topo, fromHost, kind, {
    ...o,
    src: flow.local.address,
    dst: flow.remote.address,
    sport: flow.local.port,
    dport: flow.remote.port,
    seq: sndNxt,
    ack: rcvNxt,
  });
}
