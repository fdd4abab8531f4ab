// `labelwall ui`'s HTTP server: one page, a small JSON API and a Server-Sent-Events stream,
// read-only. Every request must show the token (query, cookie or Bearer header) or gets 401;
// anything but GET and HEAD gets 405. Nothing here changes a daemon: it only reads the sockets.
//   GET /                 the page (with ?token=: sets the cookie and redirects to /)
//   GET /api/overview     sources, warnings, recent denials and refusals, rules, applications
//   GET /api/history?source=ID    the last hour of rates, one point a second (uPlot columns)
//   GET /api/flows?q=&app=&sort=&dir=&offset=&limit=   one page of the flows table
//   GET /api/stream       SSE: one `tick` event a second with each source's newest rates
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { authorized, COOKIE } from './auth.js';
import { loadAssets } from './assets.js';
import { liveFlows, overview } from './overview.js';
import { parseFlowQuery, queryFlows, type UiFlow } from './flows-query.js';
import { Sources, type SourcesOptions } from './sources.js';

export interface UiServerOptions {
  host: string;
  port: number;
  sockets: readonly string[];
  token: string;
  sources?: SourcesOptions;
  /** At most this many pages streaming at once (each costs a connection). */
  maxStreams?: number;
}

export interface UiServer {
  url: string;
  /** The URL with the token: what to open. */
  openUrl: string;
  sources: Sources;
  close(): Promise<void>;
}

/** Host part of a URL for an address (IPv6 in brackets). */
export function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

export async function startUiServer(o: UiServerOptions): Promise<UiServer> {
  const { assets, importMapHash } = loadAssets();
  const sources = new Sources(o.sockets, o.sources);
  const streams = new Set<ServerResponse>();
  const maxStreams = o.maxStreams ?? 16;
  const csp = `default-src 'self'; script-src 'self' '${importMapHash}'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'`;
  const common = {
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
  };

  const send = (res: ServerResponse, code: number, type: string, body: string | Buffer, extra: Record<string, string> = {}): void => {
    res.writeHead(code, { ...common, 'content-type': type, 'content-length': Buffer.byteLength(body), ...extra });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  };
  const json = (res: ServerResponse, v: unknown): void => send(res, 200, 'application/json', JSON.stringify(v));

  const allFlows = (): UiFlow[] => liveFlows(sources.list);

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'http://ui.invalid');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain', 'labelwall ui is read-only: GET only\n', { allow: 'GET, HEAD' });
      return;
    }
    const how = authorized(o.token, url, req.headers);
    if (!how) {
      send(res, 401, 'text/plain', 'labelwall ui: open the URL `labelwall ui` printed (it carries ?token=...)\n');
      return;
    }
    if (how === 'query') {
      // The token goes into a cookie for the page's own requests and out of the address bar.
      const rest = new URLSearchParams(url.searchParams);
      rest.delete('token');
      const q = rest.toString();
      res.writeHead(302, {
        ...common,
        location: `${url.pathname}${q ? `?${q}` : ''}`,
        'set-cookie': `${COOKIE}=${o.token}; Path=/; HttpOnly; SameSite=Strict`,
      });
      res.end();
      return;
    }
    const path = url.pathname;
    if (path === '/api/overview') {
      json(res, overview(sources.list));
      return;
    }
    if (path === '/api/history') {
      const s = sources.list[Number(url.searchParams.get('source'))];
      if (!s) {
        send(res, 404, 'text/plain', 'no such source\n');
        return;
      }
      json(res, { source: s.id, role: s.role ?? null, ...(s.history?.columns() ?? { series: [], columns: [[]] }) });
      return;
    }
    if (path === '/api/flows') {
      sources.wantFlows();
      const flowsAt = Math.max(0, ...sources.list.map((s) => s.flowsAt ?? 0));
      json(res, { flowsAt, ...queryFlows(allFlows(), parseFlowQuery(url.searchParams)) });
      return;
    }
    if (path === '/api/stream') {
      if (streams.size >= maxStreams) {
        send(res, 503, 'text/plain', `at most ${maxStreams} pages at once\n`);
        return;
      }
      sources.wantFlows();
      res.writeHead(200, { ...common, 'content-type': 'text/event-stream', connection: 'keep-alive' });
      res.write('retry: 2000\n\n');
      streams.add(res);
      req.on('close', () => streams.delete(res));
      return;
    }
    const a = assets.get(path);
    if (a) {
      send(res, 200, a.type, a.body, path === '/' ? { 'content-security-policy': csp } : {});
      return;
    }
    send(res, 404, 'text/plain', `no such page: ${path}\n`);
  };

  sources.on('tick', () => {
    if (streams.size === 0) return;
    sources.wantFlows();
    const msg = {
      t: Date.now(),
      flowsAt: Math.max(0, ...sources.list.map((s) => s.flowsAt ?? 0)),
      sources: sources.list.map((s) => ({ id: s.id, role: s.role ?? null, ok: s.ok, point: s.point ?? null })),
    };
    const text = `event: tick\ndata: ${JSON.stringify(msg)}\n\n`;
    for (const r of streams) r.write(text);
  });

  const server: Server = createServer((req, res) => {
    try {
      handle(req, res);
    } catch (err) {
      send(res, 500, 'text/plain', `${(err as Error).message}\n`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  sources.start();
  const port = (server.address() as AddressInfo).port;
  const url = `http://${urlHost(o.host)}:${port}/`;
  return {
    url,
    openUrl: `${url}?token=${o.token}`,
    sources,
    close: async () => {
      sources.stop();
      for (const r of streams) r.end();
      streams.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
