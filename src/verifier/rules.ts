// The verifier's iptables rules (pure): filter INPUT or FORWARD -> LABELWALL-VERIFY.
// One NFQUEUE rule per selection of each configured rule, in order, so iptables' first match
// is the config's first match and unselected traffic never reaches userspace. A packet the
// verifier has judged comes back marked (NF_REPEAT) and the first rule returns it to the
// built-in chain, where the administrator's own rules can act on the mark.
//
// What the kernel can decide stays in the kernel (availability under flood):
//   - a selected segment without the profile's option kind (253) is unlabelled whatever userspace would say, so it
//     goes (`-g`) to UDROP (drop action: dropped) or UMARK (mark, log: the unlabelled mark set,
//     back to the built-in chain); the counters of those rules are the kernel's share of the
//     `unlabelled` count;
//   - a source the verifier has seen send a judged-bad segment (listed by the workers in the
//     xt_recent list SUSPECT_LIST) is limited per source address (hashlimit) and served by a
//     queue of its own, so a bad-MAC flood neither fills the main queue nor eats all the CPU.
import type { Family } from '../wire/packet.js';
import { hexMark, nfqueueTarget, queueRules, rolePrefix, selectionMatches, type RulePlan } from '../datapath/iptables.js';
import type { VerifierRule } from '../config/model.js';

/**
 * What iptables selects by, of a verifier rule; its action (default drop) decides what the
 * kernel does with unlabelled segments.
 */
export type VerifierSelection = Pick<VerifierRule<unknown>, 'inInterfaces' | 'outInterfaces' | 'sources' | 'destinations' | 'ports'> &
  Partial<Pick<VerifierRule<unknown>, 'action'>>;

export interface VerifierRuleOptions {
  hook: 'input' | 'forward';
  queues: readonly number[];
  failOpen: boolean;
  markMask: number;
  /** TCP option kind of the label profile's option (LabelProfile.optionKind). */
  optionKind: number;
  /** Mark bits of the `unlabelled` verdict, set by the kernel in mark and log mode. */
  unlabelledMark?: number;
  /** The queue of listed (suspect) sources; without it they share the main queues. */
  suspectQueue?: number;
  /** Labelled segments per second a listed source may send to the suspect queue (hashlimit). */
  suspectRate?: number;
  selections: readonly VerifierSelection[];
}

export const VERIFIER_PREFIX = rolePrefix('verify');
/** Chains whose rule counters count unlabelled segments decided in the kernel. */
/** Runs before the main chain: what the kernel decides without userspace. */
export const KERNEL_CHAIN = `${VERIFIER_PREFIX}-KERNEL`;
export const UNLABELLED_DROP_CHAIN = `${VERIFIER_PREFIX}-UDROP`;
export const UNLABELLED_MARK_CHAIN = `${VERIFIER_PREFIX}-UMARK`;
/** First rule: segments of listed sources over the rate, dropped (counted as `rate_limited`). */
export const SUSPECT_CHAIN = `${VERIFIER_PREFIX}-SUSPECT`;
/** xt_recent list of sources that sent bad segments (/proc/net/xt_recent/<name>). */
export const SUSPECT_LIST = `${VERIFIER_PREFIX}-BAD`;
/** How long a source stays listed after its last bad segment. */
export const SUSPECT_SECONDS = 10;
export const SUSPECT_RATE = 2000;
const HASHLIMIT_NAME = 'lw-verify-bad'; // at most 15 characters

export function verifierRulePlan(family: Family, o: VerifierRuleOptions): RulePlan {
  const skips: string[][] = [['-m', 'mark', '!', '--mark', hexMark(0, o.markMask), '-j', 'RETURN']];
  if (o.hook === 'input') skips.push(['-i', 'lo', '-j', 'RETURN']);
  const rules: string[][] = [...skips];
  // KERNEL_CHAIN runs first (its jump comes before the main chain's): per selection, in the
  // same order, what the kernel decides; the rest returns to be queued by the main chain.
  const kernel: string[][] = [...skips];
  for (const s of o.selections) {
    const unlabelled = (s.action ?? 'drop') === 'drop' ? UNLABELLED_DROP_CHAIN : UNLABELLED_MARK_CHAIN;
    for (const m of selectionMatches(s, family)) {
      kernel.push([...m, '-m', 'tcp', '!', '--tcp-option', String(o.optionKind), '-g', unlabelled]);
      kernel.push([...m, '-m', 'recent', '--name', SUSPECT_LIST, '--rcheck', '--seconds', String(SUSPECT_SECONDS), '-g', SUSPECT_CHAIN]);
      // Selected by this rule and not decided here: no later selection may claim it.
      kernel.push([...m, '-j', 'RETURN']);
      rules.push(...queueRules(m, o.queues, o.failOpen, family));
    }
  }
  const rate = o.suspectRate ?? SUSPECT_RATE;
  const suspect: string[][] = [
    // Over the rate: fail-closed drops (as a full queue would), fail-open lets it pass unseen.
    [
      '-m',
      'hashlimit',
      '--hashlimit-above',
      `${rate}/sec`,
      '--hashlimit-burst',
      String(rate),
      '--hashlimit-mode',
      'srcip',
      '--hashlimit-name',
      HASHLIMIT_NAME,
      '--hashlimit-htable-expire',
      String(SUSPECT_SECONDS * 1000),
      '-j',
      o.failOpen ? 'RETURN' : 'DROP',
    ],
    nfqueueTarget(o.suspectQueue !== undefined ? [o.suspectQueue] : o.queues, o.failOpen),
  ];
  const hookChain = o.hook === 'input' ? 'INPUT' : 'FORWARD';
  return {
    prefix: VERIFIER_PREFIX,
    chains: [
      // Chains reached by -g only: no jump from the built-in chain. A chain entered with -g
      // returns, at its end, to the built-in chain, where the main chain returns marked packets.
      { table: 'filter', hook: hookChain, chain: UNLABELLED_DROP_CHAIN, rules: [['-j', 'DROP']], noJump: true },
      {
        table: 'filter',
        hook: hookChain,
        chain: UNLABELLED_MARK_CHAIN,
        noJump: true,
        rules: [['-j', 'MARK', '--set-xmark', hexMark(o.unlabelledMark ?? 0x300, o.markMask)]],
      },
      { table: 'filter', hook: hookChain, chain: SUSPECT_CHAIN, rules: suspect, noJump: true },
      { table: 'filter', hook: hookChain, chain: `${VERIFIER_PREFIX}-${o.hook.toUpperCase()}`, rules },
      // Listed last: jumps are inserted at position 1 in this order, so this one ends up first.
      { table: 'filter', hook: hookChain, chain: KERNEL_CHAIN, rules: kernel },
    ],
  };
}

/** Kernel counters of the verifier's rules, from `iptables -t filter -S -v` (pure). */
export function kernelCountersFromListing(listing: string): { unlabelledDropped: number; unlabelledMarked: number; rateLimited: number } {
  const out = { unlabelledDropped: 0, unlabelledMarked: 0, rateLimited: 0 };
  for (const line of listing.split('\n')) {
    const m = /^-A (\S+) .*-c (\d+) \d+/.exec(line.trim());
    if (!m) continue;
    const n = Number(m[2]);
    if (m[1] === UNLABELLED_DROP_CHAIN) out.unlabelledDropped += n;
    else if (m[1] === UNLABELLED_MARK_CHAIN) out.unlabelledMarked += n;
    else if (m[1] === SUSPECT_CHAIN && /hashlimit/.test(line)) out.rateLimited += n;
  }
  return out;
}

/**
 * Reads the kernel-side counters of the verifier's rules for the given families and returns
 * them under the handler's counter names, so `status` and /metrics add them to userspace's.
 */
export async function readKernelCounters(families: readonly Family[], failOpen: boolean): Promise<Record<string, number>> {
  const { execFile } = await import('node:child_process');
  const sum = { unlabelledDropped: 0, unlabelledMarked: 0, rateLimited: 0 };
  for (const f of families) {
    const listing = await new Promise<string>((resolve, reject) => {
      // Bounded: a status answer must not wait on someone else's xtables lock for ever.
      execFile(
        f === 4 ? 'iptables' : 'ip6tables',
        ['-w', '2', '-t', 'filter', '-S', '-v'],
        { timeout: 3000, maxBuffer: 64 << 20 },
        (err, out) => (err ? reject(err) : resolve(out)),
      );
    });
    const c = kernelCountersFromListing(listing);
    sum.unlabelledDropped += c.unlabelledDropped;
    sum.unlabelledMarked += c.unlabelledMarked;
    sum.rateLimited += c.rateLimited;
  }
  return {
    unlabelled: sum.unlabelledDropped + sum.unlabelledMarked,
    dropped: sum.unlabelledDropped + (failOpen ? 0 : sum.rateLimited),
    passed: sum.unlabelledMarked + (failOpen ? sum.rateLimited : 0),
    kernel_unlabelled: sum.unlabelledDropped + sum.unlabelledMarked,
    rate_limited: sum.rateLimited,
  };
}
