// iptables/ip6tables state owned by labelwall: every rule lives in chains named
// LABELWALL-<ROLE>-*, reached by one jump per built-in chain. Installing is atomic per
// family (iptables-restore --noflush) and replaces what a dead earlier run left in the same
// transaction; each jump's comment names the instance that installed it, and a process
// removes only its own jumps and chains, so rules that labelwall did not create are never touched.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Family } from '../wire/packet.js';

const run = promisify(execFile);

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

/**
 * The NFQUEUE rules of one selection match for several queues. Every segment of a flow must
 * reach the same worker (the agent sends what it labels in order; one verifier worker sees a
 * flow in order), and xt_NFQUEUE's --queue-balance hashes only the addresses, so every flow
 * between two hosts would share one queue. Flows whose source port is ephemeral (1024 and up: a
 * client's connect(); for the agent that is its local port) are spread by bits 1.. of that
 * port, read by u32 at the TCP header (IPv4 after its IHL; IPv6 at byte 40, so with extension
 * headers a flow still lands on one queue, just not a chosen one): Linux's connect() prefers
 * even ports and advances by two, so bit 0 says nothing. Low source ports (a server's replies)
 * keep the address hash. One queue: the plain target.
 */
export function queueRules(match: readonly string[], queues: readonly number[], failOpen: boolean, family: Family): string[][] {
  const sorted = [...queues].sort((a, b) => a - b);
  if (sorted.length === 1) return [[...match, ...nfqueueTarget(sorted, failOpen)]];
  const n = sorted.length;
  let pow = 1;
  while (pow < n) pow *= 2;
  const at = family === 4 ? '0>>22&0x3C@0>>17' : '40>>17';
  const rules: string[][] = [];
  for (let i = 0; i < n; i++) {
    const values: string[] = [];
    for (let v = i; v < pow; v += n) values.push(`0x${v.toString(16)}`);
    rules.push([
      ...match,
      // -m tcp: after a multiport match, a bare --sport would be read as multiport's --sports.
      '-m',
      'tcp',
      '--sport',
      '1024:65535',
      '-m',
      'u32',
      '--u32',
      `${at}&0x${(pow - 1).toString(16)}=${values.join(',')}`,
      ...nfqueueTarget([sorted[i]!], failOpen),
    ]);
  }
  rules.push([...match, ...nfqueueTarget(sorted, failOpen)]);
  return rules;
}

function quote(arg: string): string {
  return /^[A-Za-z0-9_.:/,!=+@%-]+$/.test(arg) ? arg : `"${arg.replace(/(["\\])/g, '\\$1')}"`;
}

/** What an earlier install left in one table: our chains and the jumps into them. */
export interface TableState {
  chains: string[];
  /** `iptables -S` arguments after `-A` of each jump into one of our chains. */
  jumps: string[][];
}

/** The comment of our jumps: the prefix, and the instance that installed them when known. */
export function jumpComment(prefix: string, owner?: string): string {
  return owner ? `labelwall ${prefix} owner=${owner}` : `labelwall ${prefix}`;
}

/** The instance id in a jump's comment (`owner=ID`), if it has one (pure). */
export function jumpOwner(jump: readonly string[]): string | undefined {
  const i = jump.indexOf('--comment');
  const m = i >= 0 ? /(?:^|\s)owner=(\S+)/.exec(jump[i + 1] ?? '') : null;
  return m ? m[1] : undefined;
}

/**
 * The iptables-restore text (for `--noflush`) that installs the plan and, in the same
 * transaction per table, takes away what `stale` holds (pure). A chain of the plan that
 * already exists is flushed and refilled by its `:CHAIN` line; stale jumps are deleted and
 * the new ones inserted; stale chains that the plan does not have are flushed and deleted.
 * So the filter is never without its jump: fail-closed holds across a restart.
 */
export function renderRestore(plan: RulePlan, opts: { owner?: string; stale?: ReadonlyMap<Table, TableState> } = {}): string {
  const byTable = new Map<Table, ChainPlan[]>();
  for (const c of plan.chains) {
    if (!c.chain.startsWith(plan.prefix)) throw new Error(`chain ${c.chain} outside prefix ${plan.prefix}`);
    if (c.chain.length > 28) throw new Error(`chain name too long: ${c.chain}`);
    const list = byTable.get(c.table) ?? [];
    list.push(c);
    byTable.set(c.table, list);
  }
  for (const t of opts.stale?.keys() ?? []) if (!byTable.has(t)) byTable.set(t, []);
  const lines: string[] = [];
  const comment = jumpComment(plan.prefix, opts.owner);
  for (const [table, chains] of byTable) {
    const stale = opts.stale?.get(table) ?? { chains: [], jumps: [] };
    if (chains.length === 0 && stale.chains.length === 0 && stale.jumps.length === 0) continue;
    lines.push(`*${table}`);
    for (const c of chains) lines.push(`:${c.chain} - [0:0]`);
    for (const c of chains) {
      for (const r of c.rules) lines.push(['-A', c.chain, ...r].map(quote).join(' '));
    }
    for (const j of stale.jumps) lines.push(['-D', ...j].map(quote).join(' '));
    for (const c of chains.filter((x) => !x.noJump)) {
      lines.push(['-I', c.hook, '1', '-m', 'comment', '--comment', comment, '-j', c.chain].map(quote).join(' '));
    }
    const gone = stale.chains.filter((n) => !chains.some((c) => c.chain === n));
    for (const n of gone) lines.push(`-F ${quote(n)}`);
    for (const n of gone) lines.push(`-X ${quote(n)}`);
    lines.push('COMMIT');
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/** The iptables-restore text that removes `state` (jumps first, then the chains), one transaction per table (pure). */
export function renderRemove(state: ReadonlyMap<Table, TableState>): string {
  const lines: string[] = [];
  for (const [table, s] of state) {
    if (s.chains.length === 0 && s.jumps.length === 0) continue;
    lines.push(`*${table}`);
    for (const j of s.jumps) lines.push(['-D', ...j].map(quote).join(' '));
    for (const n of s.chains) lines.push(`-F ${quote(n)}`);
    for (const n of s.chains) lines.push(`-X ${quote(n)}`);
    lines.push('COMMIT');
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/**
 * Of `state`, what one instance installed (pure): the jumps whose comment names `owner`, and
 * those of `chains` that nothing else jumps to once they are gone. `kept` lists the chains
 * left because another rule (another instance's, or the administrator's) still jumps to them.
 */
export function ownedBy(state: TableState, owner: string, chains: readonly string[]): { mine: TableState; kept: string[] } {
  const jumps = state.jumps.filter((j) => jumpOwner(j) === owner);
  const others = state.jumps.filter((j) => jumpOwner(j) !== owner);
  const target = (j: readonly string[]): string | undefined => j[j.indexOf('-j') + 1];
  const mine = state.chains.filter((c) => chains.includes(c) && !others.some((j) => target(j) === c));
  const kept = state.chains.filter((c) => chains.includes(c) && !mine.includes(c));
  return { mine: { chains: mine, jumps }, kept };
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
  while ((m = re.exec(line)) !== null) out.push(m[1]! !== undefined ? m[1]!.replace(/\\(.)/g, '$1') : m[2]!);
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

/** Thrown when iptables cannot be read or changed for lack of privilege. */
export class PrivilegeError extends Error {}

/** Our chains and jumps, per table, in one family's current ruleset. */
export async function readOwned(prefix: string, family: Family): Promise<Map<Table, TableState>> {
  const state = new Map<Table, TableState>();
  for (const table of TABLES) {
    let listing: string;
    try {
      listing = await iptables(family, ['-t', table, '-S']);
    } catch (err) {
      const msg = (err as Error).message;
      if (/permission denied|must be root|Operation not permitted/i.test(msg)) throw new PrivilegeError(msg);
      continue; // table or family not available here: nothing of ours can be in it
    }
    const s = findOwned(listing, prefix);
    if (s.chains.length || s.jumps.length) state.set(table, s);
  }
  return state;
}

function count(state: ReadonlyMap<Table, TableState>): number {
  let n = 0;
  for (const s of state.values()) n += s.chains.length + s.jumps.length;
  return n;
}

async function restore(family: Family, text: string): Promise<void> {
  if (!text) return;
  await new Promise<void>((resolve, reject) => {
    const child = execFile(tool(family, '-restore'), ['-w', '--noflush'], (err, _o, stderr) => {
      if (err) reject(new Error(`${tool(family, '-restore')}: ${String(stderr).trim() || err.message}\n--- rules ---\n${text}`));
      else resolve();
    });
    child.stdin?.end(text);
  });
}

/** Removes every jump to and every chain under `prefix`, in all tables, one transaction per family; returns how many. */
export async function removeOwned(prefix: string, families: readonly Family[] = [4, 6]): Promise<number> {
  let removed = 0;
  for (const family of families) {
    const state = await readOwned(prefix, family);
    await restore(family, renderRemove(state));
    removed += count(state);
  }
  return removed;
}

/**
 * Removes what the instance `owner` installed from the plans: its jumps, and its chains unless
 * something else still jumps to them (listed in `kept`). Nothing else is touched.
 */
export async function removeInstalled(plans: ReadonlyMap<Family, RulePlan>, owner: string): Promise<{ removed: number; kept: string[] }> {
  let removed = 0;
  const kept: string[] = [];
  for (const [family, plan] of plans) {
    const state = await readOwned(plan.prefix, family);
    const mine = new Map<Table, TableState>();
    for (const [table, s] of state) {
      const r = ownedBy(
        s,
        owner,
        plan.chains.filter((c) => c.table === table).map((c) => c.chain),
      );
      mine.set(table, r.mine);
      kept.push(...r.kept.map((c) => `ipv${family} ${table} ${c}`));
    }
    await restore(family, renderRemove(mine));
    removed += count(mine);
  }
  return { removed, kept };
}

/**
 * Installs the plan per family as instance `owner`, replacing in the same transaction
 * whatever an earlier run of the same prefix left (the caller holds the instance lock, so
 * that state belongs to a dead process). Returns how many stale chains and jumps it replaced.
 */
export async function installPlan(plans: ReadonlyMap<Family, RulePlan>, owner?: string): Promise<{ staleRemoved: number }> {
  let staleRemoved = 0;
  for (const [family, plan] of plans) {
    const stale = await readOwned(plan.prefix, family);
    staleRemoved += count(stale);
    await restore(family, renderRestore(plan, { owner, stale }));
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
  for (const i of ins)
    for (const o of outs)
      for (const s of srcs)
        for (const d of dsts)
          for (const p of ports) {
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
