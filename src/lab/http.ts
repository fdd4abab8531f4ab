// HTTP peers: the flask server (lab/peers/http_server.py) and a plan-driven client
// (lab/peers/http_client.py), both run inside topology namespaces.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NsProcess, Topology } from './netns.js';
import { PYTHON, peer } from './paths.js';
import { makeTempDir } from './tmp.js';

export interface HttpServer {
  proc: NsProcess;
  host: string;
  bind: string;
  port: number;
  /** Base URL for a client, e.g. http://10.200.3.2:8080 or http://[fd00:200:3::2]:8080. */
  url(address: string): string;
  stop(): Promise<void>;
}

export function httpUrl(address: string, port: number): string {
  return address.includes(':') ? `http://[${address}]:${port}` : `http://${address}:${port}`;
}

/** Start the flask server in `host`, bound to `bind` ('::' serves IPv4 and IPv6), and wait for READY. */
export async function startHttpServer(
  topo: Topology,
  host: string,
  opts: { bind?: string; port?: number; timeoutMs?: number } = {},
): Promise<HttpServer> {
  const bind = opts.bind ?? '::';
  const port = opts.port ?? 8080;
  const proc = topo.spawn(host, [PYTHON, '-u', peer('http_server.py'), bind, String(port)]);
  await proc.waitForOutput(/READY/, opts.timeoutMs ?? 15_000);
  await topo.waitForPort(host, port, 5000);
  return { proc, host, bind, port, url: (a: string) => httpUrl(a, port), stop: () => proc.stop() };
}

export interface HttpRequest {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  body?: Buffer;
  timeoutSec?: number;
}

export interface HttpResponse {
  /** null when the request failed (connection refused, timeout, reset). */
  status: number | null;
  body: Buffer;
  error?: string;
}

/**
 * Run requests from `host` against baseUrl with the Python client, one TCP connection each,
 * and return each full response body for byte-for-byte checks.
 */
export async function httpRequests(
  topo: Topology,
  host: string,
  baseUrl: string,
  requests: readonly HttpRequest[],
  opts: { timeoutMs?: number } = {},
): Promise<HttpResponse[]> {
  const dir = makeTempDir('lw-http-');
  const plan = requests.map((r, i) => {
    let bodyFile: string | undefined;
    if (r.body) {
      bodyFile = join(dir, `req${i}`);
      writeFileSync(bodyFile, r.body);
    }
    return { method: r.method, path: r.path, body_file: bodyFile, out_file: join(dir, `resp${i}`), timeout: r.timeoutSec ?? 10 };
  });
  const planFile = join(dir, 'plan.json');
  writeFileSync(planFile, JSON.stringify(plan));
  const res = await topo.check(host, [PYTHON, peer('http_client.py'), baseUrl, planFile], {
    timeoutMs: opts.timeoutMs ?? 120_000,
  });
  const lines = res.stdout.trim().split('\n');
  const parsed = JSON.parse(lines[lines.length - 1]!) as { status: number | null; length: number; error?: string }[];
  if (parsed.length !== requests.length) throw new Error(`http_client returned ${parsed.length} results for ${requests.length} requests`);
  return parsed.map((p, i) => ({
    status: p.status,
    body: p.status === null ? Buffer.alloc(0) : readFileSync(plan[i]!.out_file),
    ...(p.error ? { error: p.error } : {}),
  }));
}
