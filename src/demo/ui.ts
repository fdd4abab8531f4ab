// `labelwall demo --ui`: after the demo's checks, keep its namespaces, daemons and traffic
// going and serve `labelwall ui` on the host's loopback until Ctrl-C (or SIGTERM). The traffic
// shows each outcome the page tells apart: pc's HTTP to srv:8080 (allowed, tagged web, valid
// at mb), curl on pc (denied by the agent's policy), pc to srv:8081 (labelled without the tag,
// refused at mb: tag-denied) and uc's unlabelled HTTP (dropped at mb).
import type { Topology } from '../lab/netns.js';
import type { Daemon } from '../lab/labelwall.js';
import { httpRequests, type HttpServer } from '../lab/http.js';
import { blob } from '../lab/blob.js';
import type { Listen } from '../ui/listen.js';

export interface DemoUiOptions {
  topo: Topology;
  agent: Daemon;
  verifier: Daemon;
  listen: Listen;
  web: HttpServer;
  untagged: HttpServer;
  say: (line: string) => void;
}

export async function serveUiUntilInterrupted(o: DemoUiOptions): Promise<void> {
  const { startUiServer } = await import('../ui/server.js');
  const { newToken } = await import('../ui/auth.js');
  const srv = o.topo.addr('srv');
  const upload = blob(2_000_000, 'ui');
  const ui = await startUiServer({
    host: o.listen.host,
    port: o.listen.port,
    sockets: [o.agent.socket, o.verifier.socket],
    token: newToken(),
  });
  let stopped = false;
  let wake: () => void = () => undefined;
  const interrupted = new Promise<void>((resolve) => {
    wake = resolve;
  });
  const loop = async (everyMs: number, fn: () => Promise<unknown>): Promise<void> => {
    while (!stopped) {
      await fn().catch(() => undefined);
      await Promise.race([interrupted, new Promise((r) => setTimeout(r, everyMs))]);
    }
  };
  const loops = [
    // Uploads: what pc sends is what the agent labels and the verifier checks.
    loop(300, () => httpRequests(o.topo, 'pc', o.web.url(srv), [{ method: 'POST', path: '/echo', body: upload, timeoutSec: 5 }])),
    loop(4000, () => o.topo.exec('pc', ['curl', '-s', '-o', '/dev/null', '-m', '2', o.web.url(srv)], { timeoutMs: 5000 })),
    loop(5000, () => httpRequests(o.topo, 'pc', o.untagged.url(srv), [{ method: 'GET', path: '/blob/100', timeoutSec: 2 }])),
    loop(6000, () => httpRequests(o.topo, 'uc', o.web.url(srv), [{ method: 'GET', path: '/blob/100', timeoutSec: 2 }])),
  ];
  o.say('\nlabelwall ui (read-only) is serving the agent on pc and the verifier on mb:');
  o.say(`  open ${ui.openUrl}`);
  o.say('  traffic keeps flowing: pc -> srv:8080 (allowed, tag web), curl on pc (denied by the agent),');
  o.say('  pc -> srv:8081 (refused at mb: tag-denied), uc -> srv (unlabelled, dropped at mb).');
  o.say('  Ctrl-C stops it and removes everything.');
  // The lab's own handlers would tear the namespaces down at once (src/lab/netns.ts); the first
  // Ctrl-C is ours: the daemons stop cleanly and the demo checks they removed their rules.
  // Theirs are back for a second Ctrl-C during that teardown.
  const signals = ['SIGINT', 'SIGTERM'] as const;
  const saved = signals.map((sig) => [sig, process.listeners(sig)] as const);
  for (const [sig, ls] of saved) for (const l of ls) process.removeListener(sig, l);
  await new Promise<void>((resolve) => {
    const done = (): void => {
      for (const sig of signals) process.removeListener(sig, done);
      resolve();
    };
    for (const sig of signals) process.on(sig, done);
  });
  for (const [sig, ls] of saved) for (const l of ls) process.on(sig, l as () => void);
  stopped = true;
  wake();
  o.say('\nCtrl-C: stopping the traffic and the ui ...');
  await Promise.all(loops);
  await ui.close();
}
