// The dashboard's own arithmetic (src/router/dashboard/app.js, the script the
// page runs): Prometheus text parsing, rates from counter deltas and
// quantiles from histogram bucket deltas, checked against hand-made scrapes.
import { describe, expect, it } from 'vitest';
import client from 'prom-client';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Scrape {
  t: number;
  samples: Sample[];
}
interface DashboardLib {
  parsePrometheus(text: string): Sample[];
  counterRates(prev: Scrape | null, cur: Scrape, name: string, by: string[], seconds: number): Map<string, { labels: Record<string, string>; rate: number }>;
  histogramDeltas(
    prev: Scrape | null,
    cur: Scrape,
    name: string,
    by: string[],
  ): Map<string, { labels: Record<string, string>; buckets: Array<[number, number]> }>;
  histogramQuantile(q: number, buckets: Array<[number, number]>): number | null;
  arcAngles(lo: number, hi: number): [number, number];
  niceCeil(x: number): number;
}

// A browser module without types: loaded by URL, typed by the interface above.
const lib = (await import(new URL('../../src/router/dashboard/app.js', import.meta.url).href)) as DashboardLib;

const scrape = (t: number, text: string): Scrape => ({ t, samples: lib.parsePrometheus(text) });

describe('dashboard metrics arithmetic', () => {
  it('parses the text format: labels with escapes, +Inf, comments, and skips what does not parse', () => {
    const s = lib.parsePrometheus(
      [
        '# HELP x_total a counter',
        '# TYPE x_total counter',
        'x_total{route="/v1/kv/:key",method="GET",status="200"} 12',
        'x_total{route="a\\"b\\\\c",method="PUT",status="404"} 3 1700000000000',
        'h_bucket{le="+Inf"} 5',
        'g 1.5e3',
        'this is not a sample',
        'bad{unterminated="x} 1',
      ].join('\n'),
    );
    expect(s).toEqual([
      { name: 'x_total', labels: { route: '/v1/kv/:key', method: 'GET', status: '200' }, value: 12 },
      { name: 'x_total', labels: { route: 'a"b\\c', method: 'PUT', status: '404' }, value: 3 },
      { name: 'h_bucket', labels: { le: '+Inf' }, value: 5 },
      { name: 'g', labels: {}, value: 1500 },
    ]);
  });

  it('parses what prom-client writes', async () => {
    const reg = new client.Registry();
    const h = new client.Histogram({ name: 'd_seconds', help: 'h', labelNames: ['route'], buckets: [0.001, 0.01], registers: [reg] });
    h.observe({ route: '/x' }, 0.005);
    const s = lib.parsePrometheus(await reg.metrics());
    expect(s.filter((x) => x.name === 'd_seconds_bucket').map((x) => [x.labels['le'], x.value])).toEqual([
      ['0.001', 0],
      ['0.01', 1],
      ['+Inf', 1],
    ]);
  });

  it('rates: counter deltas per second, summed by the chosen labels; a counter that went down gives no rate', () => {
    const a = scrape(0, 'r_total{route="a",status="200"} 10\nr_total{route="a",status="500"} 4\nr_total{route="b",status="200"} 100');
    const b = scrape(
      2000,
      'r_total{route="a",status="200"} 30\nr_total{route="a",status="500"} 8\nr_total{route="b",status="200"} 50\nr_total{route="c",status="200"} 6',
    );
    const byRoute = lib.counterRates(a, b, 'r_total', ['route'], 2);
    expect(Object.fromEntries([...byRoute.values()].map((g) => [g.labels['route'], g.rate]))).toEqual({ a: 12, c: 3 });
    const byStatus = lib.counterRates(a, b, 'r_total', ['status'], 2);
    expect(Object.fromEntries([...byStatus.values()].map((g) => [g.labels['status'], g.rate]))).toEqual({ '200': 13, '500': 2 });
    expect(lib.counterRates(null, b, 'r_total', ['route'], 2).size).toBe(0);
  });

  it('quantiles from bucket deltas, as histogram_quantile computes them', () => {
    const text = (c1: number, c2: number, c3: number, inf: number) =>
      `l_bucket{route="a",le="0.001"} ${c1}\nl_bucket{route="a",le="0.01"} ${c2}\nl_bucket{route="a",le="0.1"} ${c3}\nl_bucket{route="a",le="+Inf"} ${inf}`;
    // Before: 100 fast answers. In the window: 0 fast, 90 in (1, 10] ms, 10 in (10, 100] ms.
    const a = scrape(0, text(100, 100, 100, 100));
    const b = scrape(1000, text(100, 190, 200, 200));
    const g = [...lib.histogramDeltas(a, b, 'l', ['route']).values()][0]!;
    expect(g.buckets).toEqual([
      [0.001, 0],
      [0.01, 90],
      [0.1, 100],
      [Infinity, 100],
    ]);
    expect(lib.histogramQuantile(0.5, g.buckets)).toBeCloseTo(0.001 + (0.009 * 50) / 90, 9);
    expect(lib.histogramQuantile(0.99, g.buckets)).toBeCloseTo(0.01 + (0.09 * 9) / 10, 9);
    // Nothing in the window: no quantile; everything beyond the last bound: that bound.
    expect(lib.histogramQuantile(0.99, [...lib.histogramDeltas(b, b, 'l', ['route']).values()][0]!.buckets)).toBeNull();
    expect(
      lib.histogramQuantile(0.5, [
        [0.1, 0],
        [Infinity, 5],
      ]),
    ).toBe(0.1);
  });

  it("a chart's top: 1, 2 or 5 times a power of ten", () => {
    expect([0, 0.7, 1, 1.1, 3, 7, 10.9, 55.6, 120, 999].map((x) => lib.niceCeil(x))).toEqual([1, 1, 1, 2, 5, 10, 20, 100, 200, 1000]);
  });

  it('ring points to angles: the whole 32-bit space is one turn', () => {
    expect(lib.arcAngles(0, 2 ** 32 - 1)).toEqual([0, 2 * Math.PI]);
    const [a0, a1] = lib.arcAngles(2 ** 30, 2 ** 31 - 1);
    expect(a0).toBeCloseTo(Math.PI / 2, 12);
    expect(a1).toBeCloseTo(Math.PI, 12);
  });
});
