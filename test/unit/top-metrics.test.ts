// `kv top`'s arithmetic: the strict Prometheus text reader (fed with what
// prom-client really writes), counter rates, histogram quantiles, and the
// snapshot built from two scrapes with and without the contract's metrics.
import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { counterIncrease, histogramIncrease, histogramQuantile, parsePromText, perSecond, type Scrape } from '../../src/cli/prom-text.js';
import { buildSnapshot, moveView, routerRow } from '../../src/cli/top-model.js';
import type { AdminShards } from '../../src/cli/router-client.js';
import { renderSnapshot } from '../../src/cli/top-render.js';
import { frame, snapshotText } from '../../src/cli/top.js';
import type { StatusView } from '../../src/cli/router-client.js';

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/** A registry with the router metrics of the contract, as prom-client writes them. */
function routerRegistry() {
  const registry = new client.Registry();
  const requests = new client.Counter({ name: 'kv_router_requests_total', help: 'h', labelNames: ['route', 'method', 'status'], registers: [registry] });
  const duration = new client.Histogram({
    name: 'kv_router_request_duration_seconds',
    help: 'h',
    labelNames: ['route', 'method'],
    buckets: BUCKETS,
    registers: [registry],
  });
  const forward = new client.Histogram({
    name: 'kv_router_forward_duration_seconds',
    help: 'h',
    labelNames: ['shard'],
    buckets: BUCKETS,
    registers: [registry],
  });
  const inFlight = new client.Gauge({ name: 'kv_router_in_flight', help: 'h', registers: [registry] });
  const workers = new client.Gauge({ name: 'kv_router_workers', help: 'h', registers: [registry] });
  const scrape = async () => parsePromText(await registry.metrics());
  return { registry, requests, duration, forward, inFlight, workers, scrape };
}

function request(r: ReturnType<typeof routerRegistry>, route: string, status: string, seconds: number, n: number) {
  for (let i = 0; i < n; i++) {
    r.requests.inc({ route, method: 'GET', status });
    r.duration.observe({ route, method: 'GET' }, seconds);
  }
}

describe('parsePromText', () => {
  it("reads prom-client's output: types, labels with escapes, histogram buckets", async () => {
    const registry = new client.Registry();
    const c = new client.Counter({ name: 'x_total', help: 'a "quoted" help\\with a backslash', labelNames: ['path'], registers: [registry] });
    c.inc({ path: 'a "b" \\c\nd' }, 3);
    const h = new client.Histogram({ name: 'lat_seconds', help: 'h', buckets: [0.1, 1], registers: [registry] });
    h.observe(0.05);
    h.observe(0.5);
    h.observe(5);
    const s = parsePromText(await registry.metrics());
    expect(s.types.get('x_total')).toBe('counter');
    expect(s.types.get('lat_seconds')).toBe('histogram');
    expect(s.samples.find((x) => x.name === 'x_total')).toEqual({ name: 'x_total', labels: { path: 'a "b" \\c\nd' }, value: 3 });
    const buckets = s.samples.filter((x) => x.name === 'lat_seconds_bucket').map((x) => [x.labels['le'], x.value]);
    expect(buckets).toEqual([
      ['0.1', 1],
      ['1', 2],
      ['+Inf', 3],
    ]);
    expect(s.samples.find((x) => x.name === 'lat_seconds_sum')?.value).toBeCloseTo(5.55);
  });

  it('takes timestamps, NaN and ±Inf, blank lines and plain comments', () => {
    const s = parsePromText('# a comment\n\nup 1 1700000000000\nnan_g NaN\nneg -Inf\nsci{a="b",} 1.5e3\r\n');
    expect(s.samples.map((x) => [x.name, x.value])).toEqual([
      ['up', 1],
      ['nan_g', NaN],
      ['neg', -Infinity],
      ['sci', 1500],
    ]);
    expect(s.samples[3]!.labels).toEqual({ a: 'b' });
  });

  it.each([
    ['no value', 'up\n', /line 1: expected/],
    ['not a number', 'ok 1\nup 12abc\n', /line 2: not a number/],
    ['hex is not a float', 'up 0x10\n', /not a number/],
    ['unterminated label value', 'up{a="b} 1\n', /unterminated value of label a/],
    ['bad escape', 'up{a="\\t"} 1\n', /bad escape/],
    ['label without quotes', 'up{a=b} 1\n', /label a needs ="value"/],
    ['label given twice', 'up{a="1",a="2"} 1\n', /label a given twice/],
    ['bad timestamp', 'up 1 soon\n', /bad timestamp/],
    ['extra field', 'up 1 2 3\n', /expected/],
    ['unknown type', '# TYPE up meter\n', /unknown type "meter"/],
    ['second TYPE', '# TYPE up gauge\n# TYPE up gauge\n', /second TYPE line/],
    ['not a metric name', '9up 1\n', /does not start with a metric name/],
  ])('refuses %s, naming the line', (_what, text, message) => {
    expect(() => parsePromText(text)).toThrow(message);
  });
});

describe('counter increases and rates', () => {
  const scrape = (text: string) => parsePromText(text);
  it('sums the increases of the series that pass the filter; a reset counts its new value; a new series started at 0', () => {
    const prev = scrape('# TYPE r_total counter\nr_total{s="200"} 100\nr_total{s="500"} 10\nr_total{s="404"} 7\n');
    const cur = scrape('# TYPE r_total counter\nr_total{s="200"} 160\nr_total{s="500"} 4\nr_total{s="404"} 7\nr_total{s="401"} 2\n');
    // 60 + 4 (reset: 10 -> 4 counts 4) + 0 + 2 (new)
    expect(counterIncrease(prev, cur, 'r_total')).toBe(66);
    expect(counterIncrease(prev, cur, 'r_total', (l) => l['s']!.startsWith('4'))).toBe(2);
    expect(perSecond(counterIncrease(prev, cur, 'r_total'), 2)).toBe(33);
  });
  it('is null when the family is absent, 0 when it is declared without samples', () => {
    const empty = scrape('other 1\n');
    expect(counterIncrease(empty, empty, 'r_total')).toBeNull();
    const declared = scrape('# HELP r_total h\n# TYPE r_total counter\n');
    expect(counterIncrease(declared, declared, 'r_total')).toBe(0);
    expect(perSecond(null, 1)).toBeNull();
    expect(perSecond(5, 0)).toBeNull();
  });
});

describe('histogramQuantile', () => {
  const b = (pairs: Array<[number, number]>) => pairs.map(([le, count]) => ({ le, count }));
  it('interpolates inside the bucket that holds the rank, from 0 in the lowest bucket', () => {
    const buckets = b([
      [0.001, 0],
      [0.0025, 105],
      [0.1, 105],
      [0.25, 107],
      [Infinity, 107],
    ]);
    expect(histogramQuantile(0.5, buckets)).toBeCloseTo(0.001 + 0.0015 * (53.5 / 105), 12);
    expect(histogramQuantile(0.99, buckets)).toBeCloseTo(0.1 + 0.15 * ((0.99 * 107 - 105) / 2), 12);
    expect(
      histogramQuantile(
        0.5,
        b([
          [1, 10],
          [Infinity, 10],
        ]),
      ),
    ).toBeCloseTo(0.5, 12);
  });
  it('answers the highest finite bound for a rank in +Inf, and null without observations', () => {
    expect(
      histogramQuantile(
        0.99,
        b([
          [0.1, 1],
          [1, 1],
          [Infinity, 100],
        ]),
      ),
    ).toBe(1);
    expect(
      histogramQuantile(
        0.5,
        b([
          [0.1, 0],
          [Infinity, 0],
        ]),
      ),
    ).toBeNull();
    expect(histogramQuantile(0.5, null)).toBeNull();
    expect(histogramQuantile(0.5, [])).toBeNull();
  });
  it('works on the increase between two scrapes, not on the totals', async () => {
    const r = routerRegistry();
    request(r, '/v1/kv/:key', '200', 0.2, 1000); // before the window: slow
    const prev = await r.scrape();
    request(r, '/v1/kv/:key', '200', 0.0007, 50); // in the window: fast
    const cur = await r.scrape();
    const h = histogramIncrease(prev, cur, 'kv_router_request_duration_seconds');
    expect(h!.at(-1)).toEqual({ le: Infinity, count: 50 });
    // All 50 in (0.0005, 0.001]: the median halfway.
    expect(histogramQuantile(0.5, h)).toBeCloseTo(0.00075, 12);
  });
});

describe('routerRow and the snapshot', () => {
  it('computes req/s, p50/p99, 4xx/s and 5xx/s from two scrapes, leaving out the /metrics route', async () => {
    const r = routerRegistry();
    request(r, '/v1/kv/:key', '200', 0.002, 30);
    const prev = await r.scrape();
    request(r, '/v1/kv/:key', '200', 0.002, 100);
    request(r, '/v1/kv/:key', '404', 0.002, 5);
    request(r, '/v1/kv', '503', 0.2, 2);
    request(r, '/metrics', '200', 0.3, 50);
    r.inFlight.set(3);
    r.workers.set(2);
    const row = routerRow({ url: 'http://r1', prev, cur: await r.scrape(), seconds: 2, error: null });
    expect(row.reqPerSec).toBe(107 / 2);
    expect(row.err4xxPerSec).toBe(2.5);
    expect(row.err5xxPerSec).toBe(1);
    expect(row.p50Ms).toBeCloseTo((0.001 + 0.0015 * (53.5 / 105)) * 1000, 9);
    expect(row.p99Ms).toBeCloseTo((0.1 + 0.15 * ((0.99 * 107 - 105) / 2)) * 1000, 9);
    expect(row.inFlight).toBe(3);
    expect(row.workers).toBe(2);
  });

  it('shows "-" for every column whose metric is absent (a router before the request metrics)', async () => {
    const registry = new client.Registry();
    new client.Gauge({ name: 'kv_topology_epoch', help: 'h', registers: [registry] }).set(4);
    const s = parsePromText(await registry.metrics());
    const row = routerRow({ url: 'http://r1', prev: s, cur: s, seconds: 1, error: null });
    expect(row).toEqual({
      url: 'http://r1',
      reqPerSec: null,
      p50Ms: null,
      p99Ms: null,
      err4xxPerSec: null,
      err5xxPerSec: null,
      inFlight: null,
      workers: null,
      error: null,
    });
    // Only one scrape so far: gauges yes, rates not yet.
    const r = routerRegistry();
    r.workers.set(3);
    const first = routerRow({ url: 'http://r2', prev: null, cur: await r.scrape(), seconds: 0, error: null });
    expect(first.workers).toBe(3);
    expect(first.reqPerSec).toBeNull();
  });

  const admin: AdminShards = {
    epoch: 7,
    migration: null,
    shards: [
      { id: 's1', state: 'active', weight: 1, share: 0.5, registered: true, keys: 10, bytes: 2048, dataAddr: 'a:1' },
      { id: 's2', state: 'active', weight: 1, share: 0.5, registered: false, keys: null, bytes: null, dataAddr: 'a:2' },
      { id: 's3', state: 'available', weight: null, share: 0, registered: true, keys: null, bytes: null, dataAddr: 'a:3' },
      { id: 's4', state: 'active', weight: 1, share: 0, registered: true, keys: 0, bytes: 0, dataAddr: 'a:4', heartbeatAgeMs: 9000 },
    ],
  };

  it("sums each shard's forward rate over the router hosts and takes p99 of their merged buckets; health from registration, stats and heartbeat", async () => {
    const hosts = [routerRegistry(), routerRegistry()];
    const prevs: Scrape[] = [];
    for (const h of hosts) prevs.push(await h.scrape());
    for (let i = 0; i < 98; i++) hosts[0]!.forward.observe({ shard: 's1' }, 0.0007);
    for (let i = 0; i < 2; i++) hosts[1]!.forward.observe({ shard: 's1' }, 0.04);
    hosts[1]!.forward.observe({ shard: 's2' }, 0.0007);
    const routers = await Promise.all(
      hosts.map(async (h, i) => ({ url: `http://r${i}`, prev: prevs[i]!, cur: await h.scrape(), seconds: i === 0 ? 2 : 1, error: null })),
    );
    const snap = buildSnapshot({ router: 'http://r0', shards: admin, status: { job: null }, routers, errors: [], at: new Date(0) }, { lateMs: 3000 });
    const [s1, s2, s3, s4] = snap.shards;
    expect(s1!.opsPerSec).toBe(98 / 2 + 2 / 1);
    // 100 observations; rank 99 is the first of the two in (0.025, 0.05]: 0.025 + 0.025 * (1/2).
    expect(s1!.p99Ms).toBeCloseTo(37.5, 9);
    expect(s2!.opsPerSec).toBe(1);
    expect([s1!.health, s2!.health, s3!.health, s4!.health]).toEqual(['ok', 'down', 'late', 'late']);
    expect(s4!.healthNote).toBe('heartbeat 9.0 s ago');
    expect(s1!.heartbeatAgeMs).toBeNull();
    expect(snap).toMatchObject({ epoch: 7, shardCount: 4, router: 'http://r0', move: null, errors: [], at: '1970-01-01T00:00:00.000Z' });
  });

  it('keeps "-" for shard traffic without the forward histogram and lists every error once', () => {
    const none = parsePromText('');
    const routers = [
      { url: 'http://r0', prev: none, cur: none, seconds: 1, error: null },
      { url: 'http://r1', prev: null, cur: null, seconds: 0, error: 'router http://r1 unreachable: ECONNREFUSED' },
    ];
    const snap = buildSnapshot(
      { router: 'http://r0', shards: admin, status: null, routers, errors: ['router http://r1 unreachable: ECONNREFUSED'], at: new Date(0) },
      { lateMs: 3000 },
    );
    expect(snap.shards.every((s) => s.opsPerSec === null && s.p99Ms === null)).toBe(true);
    expect(snap.errors).toEqual(['router http://r1 unreachable: ECONNREFUSED']);
  });

  it('shows a running move with its progress and pacing, and none for a finished one', () => {
    const job = {
      id: '0123456789abcdef',
      kind: 'add',
      shardId: 's4',
      state: 'streaming',
      direction: 'forward',
      pacing: { mode: 'adaptive' as const, keysPerSec: 5000, phase: 'hold', fgP99Ms: 2, baselineP99Ms: 1.6, ratio: 1.25 },
      streams: [{ source: 's1', target: 's4', keysDone: 250, keysTotal: 1000, bytesDone: 1, bytesTotal: 4, done: false }],
    };
    const status: StatusView = { job, progress: { keysDone: 250, keysTotal: 1000, bytesDone: 1, bytesTotal: 4, keysPerSec: 125, etaSeconds: 6 } };
    expect(moveView(status)).toEqual({
      jobId: job.id,
      kind: 'add',
      shardId: 's4',
      state: 'streaming',
      keysDone: 250,
      keysTotal: 1000,
      percent: 25,
      keysPerSec: 125,
      etaSeconds: 6,
      pacing: job.pacing,
    });
    expect(moveView({ ...status, job: { ...job, state: 'done' } })).toBeNull();
    expect(moveView({ job: null })).toBeNull();
    const snap = buildSnapshot({ router: 'http://r0', shards: admin, status, routers: [], errors: [], at: new Date(0) }, { lateMs: 3000 });
    const text = snapshotText(snap, 1000);
    expect(text).toContain('move 01234567: add s4, streaming, 250/1000 keys 25.0%, 125 keys/s, ETA 6.0s');
    expect(text).toContain('pace: adaptive, 5000 keys/s (hold), fg p99 2.0 ms / baseline 1.6 ms = 1.25x');
  });
});

describe('the screen', () => {
  const snap = buildSnapshot(
    {
      router: 'http://r0',
      shards: {
        epoch: 2,
        migration: null,
        shards: [{ id: 's1', state: 'active', weight: 1, share: 1, registered: false, keys: null, bytes: null, dataAddr: 'a' }],
      },
      status: null,
      routers: [{ url: 'http://r0', prev: null, cur: null, seconds: 0, error: 'router http://r0 unreachable: ECONNREFUSED' }],
      errors: [],
      at: new Date(0),
    },
    { lateMs: 3000 },
  );
  it('draws from the cursor home, clears each line to its end and the rest of the screen, cuts lines to the width', () => {
    const f = frame(renderSnapshot(snap, { live: true, intervalMs: 1000 }), 30, 40, false);
    expect(f.startsWith('\x1b[H')).toBe(true);
    expect(f.endsWith('\x1b[J')).toBe(true);
    expect(f).not.toContain('\x1b[2J');
    for (const line of f.slice(3, -3).split('\r\n')) expect(line.replace(/\x1b\[K$/, '').length).toBeLessThanOrEqual(30);
    expect(f).toContain('! router http://r0 unreachabl…\x1b[K');
  });
  it('keeps to the terminal height, saying how much is cut', () => {
    const lines = renderSnapshot(snap, { live: true, intervalMs: 1000 });
    const f = frame(lines, 200, 4, false);
    expect(f.split('\r\n')).toHaveLength(4);
    expect(f).toContain(`... ${lines.length - 3} more lines`);
  });
  it('colours only in the live view, and marks a down shard', () => {
    expect(frame(renderSnapshot(snap, { live: true, intervalMs: 1000 }), 200, 40, true)).toContain('\x1b[1;31ms1');
    const text = snapshotText(snap, 1000);
    expect(text).not.toMatch(/\x1b/);
    expect(text).toMatch(/^s1 .* DOWN \(no heartbeat: its registration expired\)$/m);
    expect(text).toContain('! router http://r0 unreachable: ECONNREFUSED\n');
  });
});
