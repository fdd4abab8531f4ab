/** At most `perSecond` events per second; for logging bad packets without flooding. */
export class RateLimiter {
  private windowStart = 0;
  private used = 0;
  suppressed = 0;

  constructor(private readonly perSecond: number) {}

  take(now = Date.now()): boolean {
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.used = 0;
    }
    if (this.used < this.perSecond) {
      this.used++;
      return true;
    }
    this.suppressed++;
    return false;
  }
}
