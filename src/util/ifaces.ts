// ifindex <-> interface name and MTU, read from /sys/class/net of the current network namespace.
// Cached; a miss re-reads once, since interfaces come and go while a daemon runs.
import { readdirSync, readFileSync } from 'node:fs';

export interface IfaceInfo {
  index: number;
  name: string;
  mtu: number;
}

/**
 * Whether interface `name` is selected by `pattern` the way iptables selects it (`-i`/`-o`,
 * libxtables xtables_parse_interface): a trailing "+" matches every name that starts with the
 * rest ("eth+" matches "eth", "eth0", "eth-x"; "+" alone matches any), otherwise the names must
 * be equal. "+" anywhere else is an ordinary character.
 */
export function ifaceMatches(pattern: string, name: string): boolean {
  return pattern.endsWith('+') ? name.startsWith(pattern.slice(0, -1)) : name === pattern;
}

export function ifaceMatchesAny(patterns: readonly string[], name: string): boolean {
  for (const p of patterns) if (ifaceMatches(p, name)) return true;
  return false;
}

export class IfaceTable {
  private byIndex = new Map<number, IfaceInfo>();
  private lastRefresh = 0;

  /**
   * `maxAgeMs`: re-read even on a hit once the table is that old, so that a renamed interface
   * (same ifindex, new name) is seen by name-based selection; 0 = only on a miss.
   */
  constructor(
    private readonly root = '/sys/class/net',
    private readonly maxAgeMs = 0,
  ) {
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

  /** Looks up an ifindex; re-reads /sys on a miss (at most every 100 ms) and when older than maxAgeMs. */
  get(index: number): IfaceInfo | undefined {
    if (index === 0) return undefined;
    if (this.maxAgeMs > 0 && Date.now() - this.lastRefresh > this.maxAgeMs) this.refresh();
    let info = this.byIndex.get(index);
    if (!info && Date.now() - this.lastRefresh > 100) {
      this.refresh();
      info = this.byIndex.get(index);
    }
    return info;
  }

  names(): string[] {
    return [...this.byIndex.values()].map((i) => i.name);
  }
}
