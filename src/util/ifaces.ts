// ifindex <-> interface name and MTU, read from /sys/class/net of the current network namespace.
// Cached; a miss re-reads once, since interfaces come and go while a daemon runs.
import { readdirSync, readFileSync } from 'node:fs';

export interface IfaceInfo { index: number; name: string; mtu: number }

export class IfaceTable {
  private byIndex = new Map<number, IfaceInfo>();
  private lastRefresh = 0;

  constructor(private readonly root = '/sys/class/net') {
    this.refresh();
  }

  refresh(): void {
    const map = new Map<number, IfaceInfo>();
    let names: string[] = [];
    try {
      names = readdirSync(this.root);
    } catch {
      names = [];
    }
    for (const name of names) {
      try {
        const index = Number(readFileSync(`${this.root}/${name}/ifindex`, 'utf8').trim());
        const mtu = Number(readFileSync(`${this.root}/${name}/mtu`, 'utf8').trim());
        if (Number.isInteger(index)) map.set(index, { index, name, mtu });
      } catch {
        // vanished while reading: skip
      }
    }
    this.byIndex = map;
    this.lastRefresh = Date.now();
  }

  /** Looks up an ifindex; re-reads /sys at most once a second on a miss. */
  get(index: number): IfaceInfo | undefined {
    if (index === 0) return undefined;
    let info = this.byIndex.get(index);
    if (!info && Date.now() - this.lastRefresh > 1000) {
      this.refresh();
      info = this.byIndex.get(index);
    }
    return info;
  }

  names(): string[] {
    return [...this.byIndex.values()].map((i) => i.name);
  }
}
