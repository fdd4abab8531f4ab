// How many egress decisions reach the log. Each decision record is ~600 bytes and any local
// user can open flows, so unbounded logging fills the disk (179 MB after 300k flows). Two token
// buckets: allow decisions (routine) and deny / log-action decisions (what an operator looks
// for), each refilled at its rate with room for a burst of 10 s worth. What a bucket refuses is
// counted by action and rule and reported in one summary line per period. Pure apart from the
// injected clock.
import type { DecisionLogLimits, EgressAction } from '../config/model.js';

/** A burst may use this many seconds' worth of the rate at once. */
export const BURST_SECONDS = 10;
/** Rules named in a summary, at most (the ones with most suppressed decisions). */
const SUMMARY_RULES = 10;

export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  take(now: number): boolean {
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
      this.last = now;
    }
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }
}

export interface SuppressedSummary {
  event: 'egress-suppressed';
  /** Decisions made but not logged in the period, by action. */
  suppressed: Record<EgressAction, number>;
  total: number;
  /** Up to 10 rules with the most suppressed decisions. */
  byRule: Record<string, number>;
  /** Length of the period (s). */
  periodSeconds: number;
  limits: { allowPerSecond: number; denyPerSecond: number; burstSeconds: number };
}

export class DecisionLogLimiter {
  private readonly allow: TokenBucket;
  private readonly important: TokenBucket;
  private counts: Record<EgressAction, number> = { allow: 0, deny: 0, log: 0 };
  private rules = new Map<string, number>();
  private periodStart: number;
  /** Decisions not logged since the start. */
  suppressedTotal = 0;

  constructor(
    private readonly limits: DecisionLogLimits,
    private readonly now: () => number = Date.now,
  ) {
    const t = now();
    this.allow = new TokenBucket(limits.allowPerSecond, limits.allowPerSecond * BURST_SECONDS, t);
    this.important = new TokenBucket(limits.denyPerSecond, limits.denyPerSecond * BURST_SECONDS, t);
    this.periodStart = t;
  }

  /** True: log this decision. False: it is counted for the next summary instead. */
  admit(action: EgressAction, rule: string): boolean {
    const bucket = action === 'allow' ? this.allow : this.important;
    if (bucket.take(this.now())) return true;
    this.counts[action]++;
    this.rules.set(rule, (this.rules.get(rule) ?? 0) + 1);
    this.suppressedTotal++;
    return false;
  }

  /**
   * The summary of the period, once the period is over and something was suppressed in it
   * (undefined otherwise; the period goes on until then).
   */
  summary(): SuppressedSummary | undefined {
    const now = this.now();
    if (now - this.periodStart < this.limits.summarySeconds * 1000) return undefined;
    const total = this.counts.allow + this.counts.deny + this.counts.log;
    const periodSeconds = Math.round((now - this.periodStart) / 100) / 10;
    this.periodStart = now;
    if (total === 0) return undefined;
    const byRule = Object.fromEntries([...this.rules].sort((a, b) => b[1] - a[1]).slice(0, SUMMARY_RULES));
    const out: SuppressedSummary = {
      event: 'egress-suppressed',
      suppressed: this.counts,
      total,
      byRule,
      periodSeconds,
      limits: { allowPerSecond: this.limits.allowPerSecond, denyPerSecond: this.limits.denyPerSecond, burstSeconds: BURST_SECONDS },
    };
    this.counts = { allow: 0, deny: 0, log: 0 };
    this.rules = new Map();
    return out;
  }
}
