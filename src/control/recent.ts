// The last few noteworthy events of a daemon (the agent's denied flows, the verifier's refused
// segments), kept for GET /events on the control socket: a fixed-size ring, so a flood costs
// nothing but overwriting. Fed from log records the workers already post (rate-limited there).

/** One event as GET /events returns it: when, and the worker's log record without its log fields. */
export interface RecentEvent {
  time: string;
  [field: string]: unknown;
}

export interface RecentEventsReport {
  generatedAt: string;
  /** Events seen since start (also those that no longer fit). */
  total: number;
  /** Oldest first, at most `capacity`. */
  events: RecentEvent[];
}

export class RecentEvents {
  private readonly ring: RecentEvent[] = [];
  private next = 0;
  total = 0;

  constructor(readonly capacity = 256) {}

  add(rec: Record<string, unknown>, now = Date.now()): void {
    const { kind: _k, level: _l, ...fields } = rec;
    const e: RecentEvent = { time: new Date(now).toISOString(), ...fields };
    if (this.ring.length < this.capacity) this.ring.push(e);
    else this.ring[this.next] = e;
    this.next = (this.next + 1) % this.capacity;
    this.total++;
  }

  report(): RecentEventsReport {
    const events = this.ring.length < this.capacity ? [...this.ring] : [...this.ring.slice(this.next), ...this.ring.slice(0, this.next)];
    return { generatedAt: new Date().toISOString(), total: this.total, events };
  }
}
