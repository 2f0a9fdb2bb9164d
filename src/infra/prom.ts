// Metrics whose numbers live in plain arrays and fields, updated on the hot
// path without a metrics library, and handed to prom-client only when a
// scrape asks (collect time). prom-client takes any object with a name and a
// get() that returns its values: the shape its own AggregatorRegistry builds,
// so these metrics merge over workers like prom-client's own.
import client from 'prom-client';

/** How the cluster primary merges a metric over workers (prom-client's aggregators). */
export type Aggregator = 'sum' | 'max' | 'first' | 'omit';

export interface SampleValue {
  readonly value: number;
  readonly labels: Record<string, string | number>;
  /** For a histogram: name_bucket, name_sum or name_count. */
  readonly metricName?: string;
}

export interface ArrayMetricDef {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly aggregator?: Aggregator;
  /** The values now: called once per scrape. */
  values(): SampleValue[];
}

/** Register a metric read from arrays at scrape time. */
export function arrayMetric(registry: client.Registry, def: ArrayMetricDef): void {
  const { name, help, type, aggregator = 'sum' } = def;
  const metric = {
    name,
    help,
    type,
    aggregator,
    get: async () => ({ name, help, type, aggregator, values: def.values() }),
    reset: () => undefined,
  };
  // The object has every field prom-client's registry reads of a metric.
  registry.registerMetric(metric as unknown as client.Metric);
}

/** A gauge read from a function at scrape time. */
export function readGauge(registry: client.Registry, name: string, help: string, read: () => number, aggregator: Aggregator = 'sum'): void {
  arrayMetric(registry, { name, help, type: 'gauge', aggregator, values: () => [{ value: read(), labels: {} }] });
}

/** A counter read from a function at scrape time (the number it reads only ever grows). */
export function readCounter(registry: client.Registry, name: string, help: string, read: () => number): void {
  arrayMetric(registry, { name, help, type: 'counter', values: () => [{ value: read(), labels: {} }] });
}

/**
 * A fixed-bucket histogram kept in arrays: per-bucket (not cumulative) counts
 * with one extra slot for +Inf, and the sum of observations. observe() is a
 * few comparisons and two additions.
 */
export class BucketCounts {
  /** Upper bounds, in the unit observe() takes. */
  readonly bounds: readonly number[];
  readonly counts: Float64Array;
  sum = 0;

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
  }
}

/**
 * The Prometheus samples of a histogram from per-bucket counts: cumulative
 * _bucket values (le = bound × scale, +Inf last), _sum (× scale) and _count.
 */
export function histogramSamples(
  name: string,
  bounds: readonly number[],
  counts: ArrayLike<number>,
  offset: number,
  sum: number,
  labels: Record<string, string>,
  scale = 1,
  out: SampleValue[] = [],
): SampleValue[] {
  let acc = 0;
  for (let i = 0; i < bounds.length; i++) {
    acc += counts[offset + i]!;
    out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: round(bounds[i]! * scale) }, value: acc });
  }
  acc += counts[offset + bounds.length]!;
  out.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: acc });
  out.push({ metricName: `${name}_sum`, labels, value: sum * scale });
  out.push({ metricName: `${name}_count`, labels, value: acc });
  return out;
}

/** A bound as Prometheus prints it (0.0005, not 0.00049999…). */
const round = (x: number): number => Number(x.toPrecision(12));
