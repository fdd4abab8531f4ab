// The control endpoint of a running agent or verifier: HTTP on a UNIX socket (mode 0600).
//   GET /status   -> JSON: role, counters, rates, queue drops
//   GET /metrics  -> Prometheus text (prom-client)
//   GET /flows    -> JSON: the agent's flow table (when the role has one)
import { createServer, type Server } from 'node:http';
import { chmodSync, mkdirSync, rmSync, existsSync, lstatSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { connect } from 'node:net';

export interface ControlRoutes {
  [path: string]: () => Promise<{ type: string; body: string }> | { type: string; body: string };
}

/** True when something answers on the socket (another instance is running). */
export function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    if (!existsSync(path)) return resolve(false);
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class ControlPathError extends Error {}

/** Refuses a control socket path that names anything but a socket (or nothing): it would be deleted. */
export function checkControlPath(path: string): void {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new ControlPathError(`control socket ${path}: ${(err as Error).message}`);
  }
  if (!st.isSocket()) {
    const what = st.isFile()
      ? 'a regular file'
      : st.isDirectory()
        ? 'a directory'
        : st.isSymbolicLink()
          ? 'a symbolic link'
          : 'not a socket';
    throw new ControlPathError(
      `control socket ${path} exists and is ${what}, not a socket: refusing to replace it (choose another --control-socket)`,
    );
  }
}

export async function startControlServer(path: string, routes: ControlRoutes): Promise<Server> {
  checkControlPath(path);
  if (await socketInUse(path)) throw new Error(`control socket ${path} is in use: is another labelwall running? (use --control-socket)`);
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  checkControlPath(path);
  rmSync(path, { force: true }); // stale socket from a crashed run (checked above: a socket)
  const server = createServer(async (req, res) => {
    const url = (req.url ?? '/').split('?')[0]!;
    const route = routes[url];
    if (!route || req.method !== 'GET') {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end(`no such endpoint: ${req.method} ${url}\n`);
      return;
    }
    try {
      const r = await route();
      res.writeHead(200, { 'content-type': r.type });
      res.end(r.body);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`${(err as Error).message}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return server;
}

export async function closeControlServer(server: Server, path: string): Promise<void> {
  // A stopping daemon answers no one: a client's open connection (labelwall ui polls every
  // second) must not hold the exit until systemd's stop timeout kills it.
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
  try {
    if (lstatSync(path).isSocket()) rmSync(path, { force: true });
  } catch {
    // already gone
  }
}
