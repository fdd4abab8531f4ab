// Flows exempted from the suspect limit. When a source is listed because someone sent bad
// segments under its address (possibly a forger: the address proves nothing), its genuine
// flows would share the per-source limit with the forgeries. The suspect worker reports every
// flow that delivers *valid* segments from a listed source; the main thread then inserts, at
// the top of the suspect chain, a rule that sends exactly that flow (both addresses and ports)
// to the main queue again. A forger would have to guess the genuine flow's ports to share it.
import { execFile } from 'node:child_process';
import { isIP } from 'node:net';
import type { Logger } from '../util/log.js';
import { SUSPECT_CHAIN } from './rules.js';

export interface ValidFlowReport {
  kind: 'suspect-valid';
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

/** At most this many exempted flows at once; a forger cannot create any (they need valid MACs). */
export const MAX_EXEMPT = 64;
/** Swept this often; an exemption whose rule counted no packet since the last sweep goes. */
const SWEEP_MS = 10_000;

function ipt(family: 4 | 6, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(family === 4 ? 'iptables' : 'ip6tables', ['-w', '2', ...args], { timeout: 5000 }, (err, out, stderr) =>
      err ? reject(new Error(String(stderr).trim() || err.message)) : resolve(out),
    );
  });
}

export class FlowExemptions {
  private readonly flows = new Map<string, { family: 4 | 6; rule: string[]; packets: number }>();
  private readonly timer: NodeJS.Timeout;
  private pending = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly mainTarget: readonly string[],
    private readonly log: Logger,
  ) {
    this.timer = setInterval(() => void this.sweep(), SWEEP_MS);
    this.timer.unref();
  }

  get size(): number {
    return this.flows.size;
  }

  note(r: ValidFlowReport): void {
    const family = isIP(r.src);
    if (this.stopped || (family !== 4 && family !== 6) || isIP(r.dst) !== family) return;
    if (!Number.isInteger(r.sport) || !Number.isInteger(r.dport)) return;
    const key = `${r.src} ${r.sport} ${r.dst} ${r.dport}`;
    if (this.flows.has(key) || this.flows.size >= MAX_EXEMPT) return;
    const bits = family === 4 ? 32 : 128;
    const rule = [
      '-s',
      `${r.src}/${bits}`,
      '-d',
      `${r.dst}/${bits}`,
      '-p',
      'tcp',
      '-m',
      'tcp',
      '--sport',
      String(r.sport),
      '--dport',
      String(r.dport),
      ...this.mainTarget,
    ];
    this.flows.set(key, { family, rule, packets: 0 });
    this.pending = this.pending.then(() =>
      ipt(family, ['-t', 'filter', '-I', SUSPECT_CHAIN, '1', ...rule]).then(
        () =>
          this.log.warn(
            { event: 'flow-exempted', flow: key },
            'verifier: a listed source sends valid segments on this flow (forged bad ones under its address?): flow exempted from the suspect limit',
          ),
        (err: Error) => {
          this.flows.delete(key);
          this.log.debug({ event: 'flow-exempt-failed', err: err.message }, 'exempting a flow failed');
        },
      ),
    );
  }

  /** Drops the exemptions whose rule saw no packet since the last sweep. */
  private async sweep(): Promise<void> {
    if (this.stopped || this.flows.size === 0) return;
    for (const family of [4, 6] as const) {
      const mine = [...this.flows].filter(([, f]) => f.family === family);
      if (mine.length === 0) continue;
      let listing: string;
      try {
        listing = await ipt(family, ['-t', 'filter', '-S', SUSPECT_CHAIN, '-v']);
      } catch {
        continue;
      }
      for (const [key, f] of mine) {
        const [, sport, , dport] = key.split(' ');
        const line = listing
          .split('\n')
          .find((l) => l.includes(` -s ${f.rule[1]} `) && l.includes(` --sport ${sport} `) && l.includes(` --dport ${dport} `));
        const n = Number(/ -c (\d+) /.exec(line ?? '')?.[1] ?? -1);
        if (n > f.packets) {
          f.packets = n;
          continue;
        }
        this.flows.delete(key);
        await ipt(family, ['-t', 'filter', '-D', SUSPECT_CHAIN, ...f.rule]).catch(() => undefined);
      }
    }
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
  }
}
