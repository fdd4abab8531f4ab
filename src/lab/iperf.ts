// iperf3 between namespaces, results parsed from its JSON output.
import type { NsProcess, Topology } from './netns.js';

export interface IperfServer {
  proc: NsProcess;
  port: number;
  stop(): Promise<void>;
}

export interface IperfResult {
  /** Receiver-side throughput, bits per second (what actually arrived). */
  receivedBps: number;
  sentBps: number;
  bytesReceived: number;
  retransmits: number;
  seconds: number;
  raw: unknown;
}

/** `iperf3 -s` in `host` (serves any number of tests until stopped). */
export async function startIperfServer(topo: Topology, host: string, port = 5201): Promise<IperfServer> {
  const proc = topo.spawn(host, ['iperf3', '-s', '-p', String(port)], { stdin: false });
  await topo.waitForPort(host, port, 10_000);
  return { proc, port, stop: () => proc.stop() };
}

/** Run an iperf3 client in `host` toward `address` for `seconds`; throws with iperf3's error text on failure. */
export async function runIperf(
  topo: Topology,
  host: string,
  address: string,
  opts: { port?: number; seconds?: number; reverse?: boolean; parallel?: number; extra?: string[] } = {},
): Promise<IperfResult> {
  const seconds = opts.seconds ?? 2;
  const argv = ['iperf3', '-c', address, '-p', String(opts.port ?? 5201), '-t', String(seconds), '-J'];
  if (opts.reverse) argv.push('-R');
  if (opts.parallel) argv.push('-P', String(opts.parallel));
  argv.push(...(opts.extra ?? []));
  const r = await topo.exec(host, argv, { timeoutMs: (seconds + 20) * 1000 });
  let j: {
    error?: string;
    end?: {
      sum_sent?: { bits_per_second: number; retransmits?: number };
      sum_received?: { bits_per_second: number; bytes: number; seconds: number };
    };
  };
  try {
    j = JSON.parse(r.stdout) as typeof j;
  } catch {
    throw new Error(`iperf3 gave no JSON (exit ${r.code}): ${r.command}\n${r.stderr.trim()}`);
  }
  if (j.error || r.code !== 0 || !j.end?.sum_received || !j.end.sum_sent) {
    throw new Error(`iperf3 failed (exit ${r.code}): ${j.error ?? r.stderr.trim()} — ${r.command}`);
  }
  return {
    receivedBps: j.end.sum_received.bits_per_second,
    sentBps: j.end.sum_sent.bits_per_second,
    bytesReceived: j.end.sum_received.bytes,
    retransmits: j.end.sum_sent.retransmits ?? 0,
    seconds: j.end.sum_received.seconds,
    raw: j,
  };
}
