// Latency histograms kept in shared memory by the queue workers and read by the main thread for
// /metrics: one Float64Array region per histogram, [count per bucket (not cumulative) ...,
// count above the last bound, sum, count]. An observation is a few comparisons and three
// stores, so a worker can record one per receive batch (or per new flow) without a message to
// the main thread; the main thread reads the slots racily, as it reads the counters.

/** Upper bounds (seconds) of the per-batch decision time: 10 µs to 1 s. */
export const DECISION_BUCKETS: readonly number[] = [
  0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1,
];
/** Upper bounds (seconds) of the egress attribution time: 50 µs to 2.5 s (cold caches, hashing an executable). */
export const ATTRIBUTION_BUCKETS: readonly number[] = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];

/** Float64 slots a histogram with these bounds takes. */
export function histogramSlots(bounds: readonly number[]): number {
  return bounds.length + 3;
}

/** Records one value (seconds) in the histogram at mem[off ..]. */
export function observe(mem: Float64Array, off: number, bounds: readonly number[], v: number): void {
  const n = bounds.length;
  let i = 0;
  while (i < n && v > bounds[i]!) i++;
  mem[off + i]!++;
  mem[off + n + 1]! += v;
  mem[off + n + 2]!++;
}

export interface HistogramSnapshot {
  bounds: readonly number[];
  /** Non-cumulative counts, one per bound plus the one above the last. */
  counts: number[];
  sum: number;
  count: number;
}

export function readHistogram(mem: Float64Array, off: number, bounds: readonly number[]): HistogramSnapshot {
  const n = bounds.length;
  const counts: number[] = [];
  for (let i = 0; i <= n; i++) counts.push(mem[off + i]!);
  return { bounds, counts, sum: mem[off + n + 1]!, count: mem[off + n + 2]! };
}

/** Adds b into a (same bounds); returns a. */
export function mergeHistogram(a: HistogramSnapshot, b: HistogramSnapshot): HistogramSnapshot {
  for (let i = 0; i < a.counts.length; i++) a.counts[i]! += b.counts[i] ?? 0;
  a.sum += b.sum;
  a.count += b.count;
  return a;
}

export function emptyHistogram(bounds: readonly number[]): HistogramSnapshot {
  return { bounds, counts: new Array<number>(bounds.length + 1).fill(0), sum: 0, count: 0 };
}
