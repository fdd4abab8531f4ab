// Debian's Prometheus in a lab namespace: storage and config in a directory of the caller's,
// 1 s scrapes of the given targets, its HTTP API on the namespace's loopback; queries go through
// curl in the same namespace. Used by the metrics and install e2e tests.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor, type NsProcess, type Topology } from './netns.js';

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface Prometheus {
  proc: NsProcess;
  /** An instant query; throws with Prometheus' error when it is not a success. */
  query(q: string): Promise<PromSample[]>;
  stop(): Promise<void>;
}

/** Starts `prometheus` in `host` scraping `targets` (job name -> host:port) every second; resolves once it is ready. */
export async function startPrometheus(
  topo: Topology,
  host: string,
  dir: string,
  targets: Record<string, string>,
  port = 9090,
): Promise<Prometheus> {
  const data = join(dir, 'prom-data');
  mkdirSync(data, { recursive: true });
  const cfg = join(dir, 'prometheus.yml');
  writeFileSync(
    cfg,
    [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      'scrape_configs:',
      ...Object.entries(targets).map(([job, t]) => `  - { job_name: ${job}, static_configs: [ { targets: ["${t}"] } ] }`),
      '',
    ].join('\n'),
  );
  const proc = topo.spawn(host, [
    'prometheus',
    `--config.file=${cfg}`,
    `--storage.tsdb.path=${data}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ]);
  await waitFor(
    async () => {
      if (!proc.running) throw new Error(`prometheus exited:\n${proc.describe()}`);
      const r = await topo.exec(host, ['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${port}/-/ready`]);
      return r.stdout === '200';
    },
    30_000,
    { what: 'prometheus ready', intervalMs: 250 },
  );
  return {
    proc,
    async query(q: string): Promise<PromSample[]> {
      const r = await topo.check(host, [
        'curl',
        '-sS',
        '--max-time',
        '5',
        '--get',
        '--data-urlencode',
        `query=${q}`,
        `http://127.0.0.1:${port}/api/v1/query`,
      ]);
      const body = JSON.parse(r.stdout) as { status: string; data: { result: PromSample[] }; error?: string };
      if (body.status !== 'success') throw new Error(`prometheus query ${q}: ${body.error}`);
      return body.data.result;
    },
    stop: () => proc.stop(5000),
  };
}
