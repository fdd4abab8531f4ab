// Capture on the path and replay what was captured, as an attacker who saw it: tcpdump in a
// namespace, and lab/peers/replay.py resending the captured segments byte for byte (see its
// docstring). Used by the demo and the e2e attack tests.
import { PYTHON, peer } from './paths.js';
import type { Topology } from './netns.js';

export interface Replayed {
  sent: number;
  sport: number;
  segments: Array<{ seq: number; ack: number; flags: number; len: number; label_hex: string }>;
}

/** tcpdump on one interface of `host`; stop() ends it and returns the file. */
export async function capture(
  topo: Topology,
  host: string,
  ifname: string,
  file: string,
  filter: string,
): Promise<{ stop(): Promise<string> }> {
  // --immediate-mode: without it a capture stopped within a second of the traffic comes back empty.
  const cap = topo.spawn(host, ['tcpdump', '-i', ifname, '-nn', '--immediate-mode', '-U', '-s', '0', '-w', file, filter]);
  await cap.waitForOutput(/listening on/, 10_000, 'stderr');
  return {
    async stop() {
      await new Promise((r) => setTimeout(r, 300));
      await cap.stop(3000, 'SIGINT');
      return file;
    },
  };
}

/** lab/peers/replay.py in `host`: resends segments of a capture. */
export async function replay(topo: Topology, host: string, args: string[]): Promise<Replayed> {
  const r = await topo.exec(host, [PYTHON, peer('replay.py'), ...args]);
  if (r.code !== 0) throw new Error(`replay.py ${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Replayed;
}
