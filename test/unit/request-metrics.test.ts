// The router's request metrics: what a request records in the typed arrays,
// and how they read as Prometheus samples at scrape time.
import { describe, expect, it } from 'vitest';
import client from 'prom-client';
import {
  ForwardStats,
  RequestMetrics,
  ROUTES,
  ROUTE_KV_KEY,
  forwardErrorSamples,
  forwardSamples,
  methodIndex,
  routeOfTemplate,
} from '../../src/router/request-metrics.js';
import { arrayMetric } from '../../src/infra/prom.js';

describe('request metrics', () => {
  it('map Fastify route templates onto the fixed route labels', () => {
    const label = (u: string | undefined) => ROUTES[routeOfTemplate(u)];
    expect(label('/v1/kv/*')).toBe('/v1/kv/:key');
    expect(label('/v1/kv/_batch')).toBe('/v1/kv');
    expect(label('/v1/kv')).toBe('/v1/kv?scan');
    expect(label('/v1/sessions/current')).toBe('/v1/sessions');
    expect(label('/v1/admin/shards/:id/weight')).toBe('/v1/admin');
    expect(label('/metrics')).toBe('/metrics');
    expect(label('/v1/stats')).toBe('/v1/stats');
    expect(label(undefined)).toBe('other');
    expect(label('/something/else')).toBe('other');
    expect(methodIndex('PATCH')).toBe(methodIndex('OPTIONS'));
  });

  it('count requests by route, method and status, with cumulative latency buckets in seconds', () => {
    const m = new RequestMetrics();
    m.record(ROUTE_KV_KEY, methodIndex('GET'), 200, 0.3); // bucket 0.0005
    m.record(ROUTE_KV_KEY, methodIndex('GET'), 200, 0.7); // bucket 0.001
    m.record(ROUTE_KV_KEY, methodIndex('GET'), 404, 3000); // +Inf
    m.record(routeOfTemplate(undefined), methodIndex('POST'), 404, 1);
    m.error('KV_ERR_NOT_FOUND');
    m.error('KV_ERR_NOT_FOUND');
    m.error('not a code');
    expect(m.requestSamples()).toEqual([
      { value: 2, labels: { route: '/v1/kv/:key', method: 'GET', status: '200' } },
      { value: 1, labels: { route: '/v1/kv/:key', method: 'GET', status: '404' } },
      { value: 1, labels: { route: 'other', method: 'POST', status: '404' } },
    ]);
    expect(m.errorSamples()).toEqual([{ value: 2, labels: { code: 'KV_ERR_NOT_FOUND' } }]);
    const d = m.durationSamples('h').filter((s) => s.labels['route'] === '/v1/kv/:key');
    const le = (b: string | number) => d.find((s) => s.metricName === 'h_bucket' && s.labels['le'] === b)?.value;
    expect(le(0.0005)).toBe(1);
    expect(le(0.001)).toBe(2);
    expect(le(2.5)).toBe(2);
    expect(le('+Inf')).toBe(3);
    expect(d.find((s) => s.metricName === 'h_count')?.value).toBe(3);
    expect(d.find((s) => s.metricName === 'h_sum')?.value).toBeCloseTo(3.001, 6);
  });

  it('read as Prometheus text through prom-client, and merge over workers by summing buckets', async () => {
    const worker = (ms: number[]) => {
      const f = new Map([['s1', new ForwardStats()]]);
      for (const x of ms) f.get('s1')!.latency.observe(x);
      f.get('s1')!.error('KV_ERR_TIMEOUT');
      const r = new client.Registry();
      arrayMetric(r, { name: 'fwd_seconds', help: 'h', type: 'histogram', values: () => forwardSamples('fwd_seconds', f) });
      arrayMetric(r, { name: 'fwd_errors_total', help: 'h', type: 'counter', values: () => forwardErrorSamples(f) });
      return r;
    };
    const a = worker([0.2, 2]);
    const b = worker([600]);
    expect(await a.metrics()).toContain('fwd_seconds_bucket{shard="s1",le="0.0005"} 1');
    const merged = await client.AggregatorRegistry.aggregate([await a.getMetricsAsJSON(), await b.getMetricsAsJSON()]).metrics();
    expect(merged).toContain('fwd_seconds_bucket{shard="s1",le="0.0025"} 2');
    expect(merged).toContain('fwd_seconds_bucket{shard="s1",le="1"} 3');
    expect(merged).toContain('fwd_seconds_count{shard="s1"} 3');
    expect(merged).toContain('fwd_errors_total{shard="s1",code="KV_ERR_TIMEOUT"} 2');
  });
});
