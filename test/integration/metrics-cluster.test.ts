// Metrics end to end: real Redis, two shards and routers with two workers.
// A router host's /metrics sums every worker, whichever one a scrape lands
// on; both request paths (fast path and Fastify) count; histograms are
// consistent; errors are counted by code; a shard's /metrics parses and
// tells the truth about its store; requestMetrics=false leaves the counters
// at 0. Every metric named in the docs' table is emitted.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { TestCluster, startRouter, type RouterProc } from '../helpers/procs.js';
import { forEachLimit } from '../../dev/http.js';
import { get, put, request } from '../helpers/http.js';
import { ADMIN_AUTH } from '../helpers/secrets.js';
import { waitUntil } from '../../src/local/wait.js';
import { histogramProblems, parsePromText, sumOf, type PromFamily } from '../helpers/prom-text.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const KV = '/v1/kv/:key';

let c: TestCluster;
let quiet: RouterProc;

/** The metrics the docs' table lists for a prefix (kv_router_… and kv_topology/kv_rebalance, or kv_shard_…). */
function documented(prefix: RegExp): string[] {
  const doc = readFileSync(path.join(ROOT, 'docs/operations.md'), 'utf8');
  const names = [...doc.matchAll(/^\| `(kv_[a-z0-9_]+)` \|/gm)].map((m) => m[1]!);
  return [...new Set(names.filter((n) => prefix.test(n)))];
}

async function scrape(url: string, headers: Record<string, string> = ADMIN_AUTH): Promise<Map<string, PromFamily>> {
  const res = await get(`${url}/metrics`, { headers, fresh: true });
  expect(res.status, res.text).toBe(200);
  return parsePromText(res.text);
}

beforeAll(async () => {
  c = await TestCluster.start({ shards: 2, workers: 2, routerSet: { metricsAuth: 'true', metricsWorkerTimeoutMs: 500 } });
  quiet = await startRouter({ redisUrl: c.redis.url, prefix: c.prefix, workers: 2, set: { requestMetrics: 'false' } });
}, 120_000);
afterAll(async () => {
  await quiet?.stop();
  await c?.stop();
});

describe('router /metrics', () => {
  it('needs the admin token with metricsAuth', async () => {
    const res = await get(`${c.url}/metrics`, { fresh: true });
    expect(res.status).toBe(401);
    expect(res.json()['code']).toBe('KV_ERR_UNAUTHORIZED');
  });

  it('sums every worker: N requests over fresh connections raise the counters by exactly N', async () => {
    expect((await put(`${c.url}/v1/kv/m-hot`, 'v', { headers: { 'content-type': 'text/plain' } })).status).toBe(204);
    const before = await scrape(c.url);
    expect(sumOf(before, 'kv_router_workers')).toBe(2);
    const GETS = 150;
    const PUTS = 50;
    const workers = new Set<string>();
    // GETs take the fast path; PUTs with ?ttl= go through Fastify.
    const jobs = [...Array.from({ length: GETS }, () => 'get'), ...Array.from({ length: PUTS }, (_x, i) => `put${i}`)];
    await forEachLimit(jobs, 8, async (j) => {
      const res =
        j === 'get'
          ? await get(`${c.url}/v1/kv/m-hot`, { fresh: true })
          : await put(`${c.url}/v1/kv/m-${j}?ttl=600`, 'x'.repeat(10), { fresh: true, headers: { 'content-type': 'text/plain' } });
      expect(res.status).toBe(j === 'get' ? 200 : 204);
      workers.add(String(res.headers['x-kv-worker']));
    });
    expect(workers.size).toBeGreaterThan(1);
    const after = await scrape(c.url);
    const delta = (name: string, labels: Record<string, string>) => sumOf(after, name, labels) - sumOf(before, name, labels);
    expect(delta('kv_router_requests_total', { route: KV })).toBe(GETS + PUTS);
    expect(delta('kv_router_requests_total', { route: KV, method: 'GET', status: '200' })).toBe(GETS);
    expect(delta('kv_router_requests_total', { route: KV, method: 'PUT', status: '204' })).toBe(PUTS);
    expect(delta('kv_router_request_duration_seconds_count', { route: KV, method: 'GET' })).toBe(GETS);
    expect(delta('kv_router_request_duration_seconds_count', { route: KV, method: 'PUT' })).toBe(PUTS);
    // Every request was one shard request (pings of idle connections may add some).
    expect(delta('kv_router_forward_duration_seconds_count', {})).toBeGreaterThanOrEqual(GETS + PUTS);
    // The scrapes count under their own route.
    expect(sumOf(after, 'kv_router_requests_total', { route: '/metrics', status: '200' })).toBeGreaterThanOrEqual(1);
    expect(sumOf(after, 'kv_topology_epoch')).toBe((await c.store.get()).epoch);
    expect(sumOf(after, 'kv_router_in_flight')).toBeGreaterThanOrEqual(1); // the scrape itself
    expect(histogramProblems(after)).toEqual([]);
    const shards = new Set(after.get('kv_router_forward_duration_seconds')!.samples.map((s) => s.labels['shard']));
    expect([...shards].sort()).toEqual(['s1', 's2']);
  });

  it('counts error answers by code, on both paths', async () => {
    const before = await scrape(c.url);
    // Fast path: a key over maxKeyBytes.
    const long = await get(`${c.url}/v1/kv/${'k'.repeat(1100)}`, { fresh: true });
    expect(long.status).toBe(400);
    expect(long.json()['code']).toBe('KV_ERR_KEY_TOO_LONG');
    // Fastify: a path that is no route, and a bad TTL.
    expect((await get(`${c.url}/v1/nothing-here`, { fresh: true })).status).toBe(404);
    expect((await put(`${c.url}/v1/kv/m-bad?ttl=abc`, 'x', { fresh: true, headers: { 'content-type': 'text/plain' } })).status).toBe(400);
    const after = await scrape(c.url);
    const delta = (name: string, labels: Record<string, string>) => sumOf(after, name, labels) - sumOf(before, name, labels);
    expect(delta('kv_router_errors_total', { code: 'KV_ERR_KEY_TOO_LONG' })).toBe(1);
    expect(delta('kv_router_errors_total', { code: 'KV_ERR_ROUTE_NOT_FOUND' })).toBe(1);
    expect(delta('kv_router_errors_total', { code: 'KV_ERR_BAD_TTL' })).toBe(1);
    expect(delta('kv_router_requests_total', { route: KV, method: 'GET', status: '400' })).toBe(1);
    expect(delta('kv_router_requests_total', { route: KV, method: 'PUT', status: '400' })).toBe(1);
    expect(delta('kv_router_requests_total', { route: 'other', method: 'GET', status: '404' })).toBe(1);
  });

  it('emits every router metric the docs list', async () => {
    const m = await scrape(c.url);
    const want = documented(/^kv_(router|topology|rebalance)_/).filter((n) => !n.endsWith('_'));
    expect(want.length).toBeGreaterThan(15);
    expect(want.filter((n) => !m.has(n))).toEqual([]);
  });

  it('with requestMetrics=false counts no requests, and /metrics still answers for the host', async () => {
    for (let i = 0; i < 20; i++) expect((await get(`${quiet.url}/v1/kv/m-hot`, { fresh: true })).status).toBe(200);
    expect((await get(`${quiet.url}/v1/kv/${'k'.repeat(1100)}`, { fresh: true })).status).toBe(400);
    // metricsAuth is off on this router.
    const m = await scrape(quiet.url, {});
    expect(m.get('kv_router_requests_total')?.samples).toEqual([]);
    expect(m.get('kv_router_errors_total')?.samples).toEqual([]);
    expect(m.get('kv_router_forward_duration_seconds')?.samples).toEqual([]);
    expect(sumOf(m, 'kv_router_in_flight')).toBe(0);
    expect(sumOf(m, 'kv_router_workers')).toBe(2);
  });
});

describe('shard /metrics', () => {
  it('parses, names every documented metric and counts the store right', async () => {
    // Keys written so far through the router: m-hot and m-put0…m-put49 (the bad requests wrote nothing).
    const texts = await Promise.all(c.shards.map(async (s) => (await request('GET', `${s.adminUrl}/metrics`)).text));
    let records = 0;
    let valueBytes = 0;
    for (const text of texts) {
      // A maintained parser reads it (its histograms here have no labels, which it needs) …
      const families = parsePrometheusTextFormat(text);
      const byName = new Map(families.map((f) => [f.name, f]));
      const commits = byName.get('kv_shard_commit_duration_seconds');
      expect(commits?.type).toBe('HISTOGRAM');
      expect(Number(commits?.metrics[0]?.count)).toBe(Number(byName.get('kv_shard_write_batches_total')?.metrics[0]?.value));
      // … and so does the strict one, with the same sample values.
      const m = parsePromText(text);
      expect(histogramProblems(m)).toEqual([]);
      expect(documented(/^kv_shard_/).filter((n) => !n.endsWith('_') && !m.has(n))).toEqual([]);
      records += sumOf(m, 'kv_shard_records');
      valueBytes += sumOf(m, 'kv_shard_value_bytes');
      expect(sumOf(m, 'kv_shard_lmdb_used_bytes')).toBeGreaterThan(0);
      expect(sumOf(m, 'kv_shard_lmdb_map_size_bytes')).toBeGreaterThan(sumOf(m, 'kv_shard_lmdb_used_bytes'));
      expect(sumOf(m, 'kv_shard_epoch')).toBe((await c.store.get()).epoch);
      expect(sumOf(m, 'kv_shard_requests_per_frame_count')).toBe(sumOf(m, 'kv_shard_frames_total'));
      expect(sumOf(m, 'kv_shard_requests_per_frame_sum')).toBe(sumOf(m, 'kv_shard_requests_total'));
    }
    expect(records).toBe(51);
    expect(valueBytes).toBe(1 + 50 * 10);
  });

  it('counts requests by op, and the value bytes follow overwrites and deletes', async () => {
    const all = async () => {
      const ms = await Promise.all(c.shards.map(async (s) => parsePromText((await request('GET', `${s.adminUrl}/metrics`)).text)));
      const total = (name: string, labels: Record<string, string> = {}) => ms.reduce((n, m) => n + sumOf(m, name, labels), 0);
      return total;
    };
    const before = await all();
    expect((await put(`${c.url}/v1/kv/m-put0`, 'y'.repeat(30), { headers: { 'content-type': 'text/plain' } })).status).toBe(204);
    expect((await request('DELETE', `${c.url}/v1/kv/m-put1`)).status).toBe(204);
    expect((await get(`${c.url}/v1/kv/m-put2`)).status).toBe(200);
    const after = await all();
    expect(after('kv_shard_value_bytes') - before('kv_shard_value_bytes')).toBe(30 - 10 - 10);
    expect(after('kv_shard_records') - before('kv_shard_records')).toBe(0); // the delete leaves a tombstone
    expect(after('kv_shard_requests_total', { op: 'put' }) - before('kv_shard_requests_total', { op: 'put' })).toBe(1);
    expect(after('kv_shard_requests_total', { op: 'del' }) - before('kv_shard_requests_total', { op: 'del' })).toBe(1);
    expect(after('kv_shard_requests_total', { op: 'get' }) - before('kv_shard_requests_total', { op: 'get' })).toBe(1);
    expect(after('kv_shard_write_batches_total') - before('kv_shard_write_batches_total')).toBe(2);
  });
});

describe('router /metrics when workers stop answering or die', () => {
  /** A scrape answered by any worker that answers: a connection the cluster hands to a stopped worker times out, the next goes elsewhere. */
  const scrapeAnyWorker = () =>
    waitUntil(
      async () => {
        const res = await get(`${c.url}/metrics`, { headers: ADMIN_AUTH, fresh: true, timeoutMs: 1500 }).catch(() => undefined);
        return res?.status === 200 ? parsePromText(res.text) : undefined;
      },
      { timeoutMs: 20_000, what: 'a scrape answered by a live worker' },
    );

  it('a stopped worker does not hold the scrape: its last counters stand in, and it is reported late', async () => {
    const before = await scrape(c.url);
    const kvBefore = sumOf(before, 'kv_router_requests_total', { route: KV });
    const [victim] = c.router.workerPids;
    process.kill(victim!, 'SIGSTOP');
    try {
      const m = await scrapeAnyWorker();
      expect(sumOf(m, 'kv_router_metrics_late_workers')).toBe(1);
      expect(sumOf(m, 'kv_router_workers')).toBe(2);
      // No data request since `before`: the stopped worker's part is its last answer, nothing went back.
      expect(sumOf(m, 'kv_router_requests_total', { route: KV })).toBe(kvBefore);
      expect(histogramProblems(m)).toEqual([]);
    } finally {
      process.kill(victim!, 'SIGCONT');
    }
    const m = await waitUntil(
      async () => {
        const x = await scrape(c.url);
        return sumOf(x, 'kv_router_metrics_late_workers') === 0 ? x : undefined;
      },
      { timeoutMs: 10_000, what: 'a scrape with every worker on time' },
    );
    expect(sumOf(m, 'kv_router_requests_total', { route: KV })).toBe(kvBefore);
  });

  it("a worker that dies keeps its counters in the host's totals", async () => {
    const before = await scrape(c.url);
    const kvBefore = sumOf(before, 'kv_router_requests_total', { route: KV });
    const gets = sumOf(before, 'kv_router_request_duration_seconds_count', { route: KV, method: 'GET' });
    const victim = c.router.workerPids[1]!;
    process.kill(victim, 'SIGKILL');
    await c.router.waitFor((msg) => msg['type'] === 'respawned' && msg['replaced'] === victim, 20_000, 'the respawn');
    const m = await waitUntil(
      async () => {
        const x = await scrape(c.url);
        return sumOf(x, 'kv_router_workers') === 2 && sumOf(x, 'kv_router_metrics_late_workers') === 0 ? x : undefined;
      },
      { timeoutMs: 10_000, what: 'a scrape of two live workers' },
    );
    expect(sumOf(m, 'kv_router_requests_total', { route: KV })).toBe(kvBefore);
    expect(sumOf(m, 'kv_router_request_duration_seconds_count', { route: KV, method: 'GET' })).toBe(gets);
    expect(histogramProblems(m)).toEqual([]);
  });
});
