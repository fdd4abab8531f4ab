// iptables/ip6tables state owned by labelwall: every rule lives in chains named
// LABELWALL-<ROLE>-*, reached by one jump per built-in chain. Installing is atomic per
// family (iptables-restore --noflush); removing deletes exactly those jumps and chains,
// so rules that labelwall did not create are never touched.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

export type Family = 4 | 6;
export type Table = 'raw' | 'mangle' | 'filter';

/** One of our chains, with the built-in chain that jumps to it. */
export interface ChainPlan {
  table: Table;
  /** Built-in chain that gets the jump (inserted first). */
  hook: 'PREROUTING' | 'INPUT' | 'FORWARD' | 'OUTPUT' | 'POSTROUTING';
  /** Our chain's name; must start with the plan's prefix. */
  chain: string;
  /** Rule arguments after `-A <chain>`, one array per rule. */
  rules: string[][];
  /** Reached only from our other chains (-g/-j): no jump from the built-in chain. */
  noJump?: boolean;
}

export interface RulePlan {
  /** e.g. LABELWALL-AGENT: all chains of the plan start with it. */
  prefix: string;
  chains: ChainPlan[];
}

export const CHAIN_PREFIX = 'LABELWALL';

export function rolePrefix(role: string): string {
  return `${CHAIN_PREFIX}-${role.toUpperCase()}`;
}

/** NFQUEUE target arguments for a set of queue numbers (contiguous). */
export function nfqueueTarget(queues: readonly number[], failOpen: boolean): string[] {
  if (queues.length === 0) throw new Error('no queue numbers');
  const sorted = [...queues].sort((a, b) => a - b);
  const args = ['-j', 'NFQUEUE'];
  if (sorted.length === 1) args.push('--queue-num', String(sorted[0]));
  else args.push('--queue-balance', `${sorted[0]}:${sorted[sorted.length - 1]}`);
  // Without a listener the kernel drops queued packets; --queue-bypass lets them pass.
  if (failOpen) args.push('--queue-bypass');
  return args;
}

function quote(arg: string): string {
  return /^[A-Za-z0-9_.:/,!=+@%-]+$/.test(arg) ? arg : `"${arg.replace(/(["\\])/g, '\\$1')}"`;
}

/** The iptables-restore text that creates the plan's chains and jumps (pure). */
export function renderRestore(plan: RulePlan): string {
  const byTable = new Map<Table, ChainPlan[]>();
  for (const c of plan.chains) {
    if (!c.chain.startsWith(plan.prefix)) throw new Error(`chain ${c.chain} outside prefix ${plan.prefix}`);
    if (c.chain.length > 28) throw new Error(`chain name too long: ${c.chain}`);
    const list = byTable.get(c.table) ?? [];
    list.push(c);
    byTable.set(c.table, list);
  }
  const lines: string[] = [];
  for (const [table, chains] of byTable) {
    lines.push(`*${table}`);
    for (const c of chains) lines.push(`:${c.chain} - [0:0]`);
    for (const c of chains) {
      for (const r of c.rules) lines.push(['-A', c.chain, ...r].map(quote).join(' '));
    }
    for (const c of chains.filter((x) => !x.noJump)) {
      lines.push(['-I', c.hook, '1', '-m', 'comment', '--comment', `labelwall ${plan.prefix}`, '-j', c.chain].map(quote).join(' '));
    }
    lines.push('COMMIT');
  }
  return lines.join('\n') + '\n';
}

function tool(family: Family, what: '' | '-save' | '-restore'): string {
  return (family === 4 ? 'iptables' : 'ip6tables') + what;
}

async function iptables(family: Family, args: string[]): Promise<string> {
  try {
    const { stdout } = await run(tool(family, ''), ['-w', ...args], { maxBuffer: 64 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${tool(family, '')} ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

/** Splits an `iptables -S` line into arguments, honouring double quotes. */
export function splitRuleLine(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line)) !== null) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]);
  return out;
}

/** From `iptables -t T -S` output: our chains and the jumps into them (pure). */
export function findOwned(saveOutput: string, prefix: string): { chains: string[]; jumps: string[][] } {
  const chains: string[] = [];
  const jumps: string[][] = [];
  for (const line of saveOutput.split('\n')) {
    const args = splitRuleLine(line.trim());
    if (args[0] === '-N' && args[1]?.startsWith(prefix)) chains.push(args[1]);
    if (args[0] === '-A' && !args[1]?.startsWith(prefix)) {
      const j = args.indexOf('-j');
      if (j >= 0 && args[j + 1]?.startsWith(prefix)) jumps.push(args.slice(1));
    }
  }
  return { chains, jumps };
}

const TABLES: Table[] = ['raw', 'mangle', 'filter'];

/** Removes every jump to and every chain under `prefix`, in all tables; returns how many. */
export async function removeOwned(prefix: string, families: readonly Family[] = [4, 6]): Promise<number> {
  let removed = 0;
  for (const family of families) {
    for (const table of TABLES) {
      let listing: string;
      try {
        listing = await iptables(family, ['-t', table, '-S']);
      } catch {
        continue; // table or family not available here: nothing of ours can be in it
      }
      const { chains, jumps } = findOwned(listing, prefix);
      for (const j of jumps) {
        await iptables(family, ['-t', table, '-D', ...j]);
        removed++;
      }
      for (const c of chains) await iptables(family, ['-t', table, '-F', c]);
      for (const c of chains) {
        await iptables(family, ['-t', table, '-X', c]);
        removed++;
      }
    }
  }
  return removed;
}

/** Clears stale state of the same prefix (a crashed run), then installs the plan per family. */
export async function installPlan(plans: ReadonlyMap<Family, RulePlan>): Promise<{ staleRemoved: number }> {
  let staleRemoved = 0;
  for (const [family, plan] of plans) {
    staleRemoved += await removeOwned(plan.prefix, [family]);
    const text = renderRestore(plan);
    await new Promise<void>((resolve, reject) => {
      const child = execFile(tool(family, '-restore'), ['-w', '--noflush'], (err, _o, stderr) => {
        if (err) reject(new Error(`${tool(family, '-restore')}: ${String(stderr).trim() || err.message}\n--- rules ---\n${text}`));
        else resolve();
      });
      child.stdin?.end(text);
    });
  }
  return { staleRemoved };
}

/** Port ranges as multiport lists of at most 15 slots (a range takes two). */
export function multiportChunks(ranges: readonly { lo: number; hi: number }[]): string[] {
  const chunks: string[] = [];
  let cur: string[] = [];
  let slots = 0;
  for (const r of ranges) {
    const item = r.lo === r.hi ? String(r.lo) : `${r.lo}:${r.hi}`;
    const need = r.lo === r.hi ? 1 : 2;
    if (slots + need > 15) {
      chunks.push(cur.join(','));
      cur = [];
      slots = 0;
    }
    cur.push(item);
    slots += need;
  }
  if (cur.length) chunks.push(cur.join(','));
  return chunks;
}

/** What one selection rule matches; empty lists mean "any". */
export interface Selection {
  inInterfaces?: readonly string[];
  outInterfaces?: readonly string[];
  sources?: readonly { family: Family; text: string }[];
  destinations?: readonly { family: Family; text: string }[];
  /** Destination ports (or source ports with `portsAreSource`). */
  ports?: readonly { lo: number; hi: number }[];
  portsAreSource?: boolean;
}

/**
 * Expands a selection into iptables match arguments for one family: the cross product of
 * interfaces, addresses and port chunks, in order. Returns [] when the selection names
 * addresses but none of this family (it cannot match this family's packets).
 */
export function selectionMatches(sel: Selection, family: Family): string[][] {
  const pick = (list: readonly { family: Family; text: string }[] | undefined): (string | undefined)[] | null => {
    if (!list || list.length === 0) return [undefined];
    const mine = list.filter((c) => c.family === family).map((c) => c.text);
    return mine.length ? mine : null;
  };
  const srcs = pick(sel.sources);
  const dsts = pick(sel.destinations);
  if (!srcs || !dsts) return [];
  const ins = sel.inInterfaces?.length ? sel.inInterfaces : [undefined];
  const outs = sel.outInterfaces?.length ? sel.outInterfaces : [undefined];
  const ports = sel.ports?.length ? multiportChunks(sel.ports) : [undefined];
  const out: string[][] = [];
  for (const i of ins) for (const o of outs) for (const s of srcs) for (const d of dsts) for (const p of ports) {
    const args: string[] = [];
    if (i) args.push('-i', i);
    if (o) args.push('-o', o);
    if (s) args.push('-s', s);
    if (d) args.push('-d', d);
    args.push('-p', 'tcp');
    if (p) args.push('-m', 'multiport', sel.portsAreSource ? '--sports' : '--dports', p);
    out.push(args);
  }
  return out;
}

export function hexMark(value: number, mask: number): string {
  return `0x${value.toString(16)}/0x${mask.toString(16)}`;
}
