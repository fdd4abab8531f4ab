// Buffered line output to stdout that respects backpressure (a verify of a large capture with
// --json prints one line per frame).
import { once } from 'node:events';
import type { Writable } from 'node:stream';

export class LineOutput {
  private buf: string[] = [];
  private size = 0;
  constructor(private readonly out: Writable = process.stdout) {}

  /** Queues a line; returns a promise only when a flush had to wait for the stream to drain. */
  line(s: string): Promise<void> | undefined {
    this.buf.push(s);
    this.size += s.length + 1;
    if (this.size >= 1 << 16) return this.flush();
    return undefined;
  }

  async flush(): Promise<void> {
    if (this.buf.length === 0) return;
    const text = `${this.buf.join('\n')}\n`;
    this.buf = [];
    this.size = 0;
    if (!this.out.write(text)) await once(this.out, 'drain');
  }
}
