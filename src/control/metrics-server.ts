// The Prometheus listener (`--metrics-listen`, `metrics.listen`): plain HTTP on TCP serving
// GET /metrics and nothing else (404), so a scraper needs no access to the control socket. It
// reads no request body and answers only what the registry holds: no status, no flow table.
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { formatListen, type ListenAddress } from '../config/listen.js';

export class MetricsListenError extends Error {}

const REASONS: Record<string, string> = {
  EADDRINUSE: 'the address is in use (another labelwall, or another exporter?)',
  EADDRNOTAVAIL: 'no interface of this host has that address',
  EACCES: 'not allowed to listen there',
};

/** Starts listening; rejects with MetricsListenError (address in use, not local, ...). */
export async function startMetricsServer(listen: ListenAddress, registry: Registry, beforeScrape?: () => Promise<void>): Promise<Server> {
  const server = createServer(async (req, res) => {
    const url = (req.url ?? '/').split('?')[0]!;
    if (url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found: labelwall serves /metrics only\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { 'content-type': 'text/plain', allow: 'GET, HEAD' });
      res.end(`method not allowed: ${req.method}\n`);
      return;
    }
    try {
      await beforeScrape?.();
      const body = await registry.metrics();
      res.writeHead(200, { 'content-type': registry.contentType });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`${(err as Error).message}\n`);
    }
  });
  // A scraper that connects and sends nothing must not hold a socket for ever.
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  server.maxHeadersCount = 50;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      const why = (e.code && REASONS[e.code]) ?? e.message;
      reject(new MetricsListenError(`--metrics-listen ${formatListen(listen)}: cannot listen: ${why}${e.code ? ` (${e.code})` : ''}`));
    });
    server.listen({ host: listen.host, port: listen.port, exclusive: true }, () => resolve());
  });
  return server;
}

export function closeMetricsServer(server: Server): Promise<void> {
  server.closeAllConnections?.();
  return new Promise<void>((resolve) => server.close(() => resolve()));
}
