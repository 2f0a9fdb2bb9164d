// Sessions in Redis, tenants and the paged scan, through a router of two
// workers and a second router process on the same Redis (DESIGN 6.6, 7, 8):
// a session works on every worker of every router, a logout ends it
// everywhere within a bound, tenants never see each other's keys, a scan is
// continued by any worker, and sessions survive a Redis restart.
import { createHash } from 'node:crypto';
import { Client } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, startRouter, type RouterProc } from '../helpers/procs.js';
import { keepAliveAgent, request, type HttpResult } from '../helpers/http.js';
import { addShard, rebalanceState, removeShard, waitForJob } from '../helpers/rebalance.js';
import { ADMIN_AUTH } from '../helpers/secrets.js';
import { waitUntil } from '../../src/local/wait.js';

const WORKERS = 2;
const json = { 'content-type': 'application/json' };
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

let c: TestCluster;
/** A second router process on the same Redis. */
let r2: RouterProc;

beforeAll(async () => {
  c = await TestCluster.start({
    shards: 3,
    workers: WORKERS,
    persistentRedis: true,
    routerSet: { dataAuth: 'true', rebalancePacing: 'fixed', rebalanceMaxKeysPerSec: 2000 },
  });
  r2 = await startRouter({ redisUrl: c.redis.url, prefix: c.prefix, workers: WORKERS, set: { dataAuth: 'true' } });
}, 60_000);

afterAll(async () => {
  await r2?.stop();
  await c?.stop();
});

async function createTenant(name: string): Promise<string> {
  const t = await request('POST', `${c.url}/v1/admin/tenants`, { headers: { ...json, ...ADMIN_AUTH }, body: JSON.stringify({ name }) });
  expect(t.status, t.text).toBe(201);
  const k = await request('POST', `${c.url}/v1/admin/tenants/${name}/keys`, { headers: ADMIN_AUTH });
  expect(k.status, k.text).toBe(201);
  return k.json<{ key: string }>().key;
}

async function login(url: string, apiKey: string): Promise<{ token: string; cookie: string; body: Record<string, unknown> }> {
  const res = await request('POST', `${url}/v1/sessions`, { headers: bearer(apiKey), fresh: true });
  expect(res.status, res.text).toBe(201);
  const setCookie = String(res.headers['set-cookie']);
  return { token: res.json<{ token: string }>().token, cookie: setCookie.split(';')[0]!, body: res.json() };
}

/** One keep-alive connection to each worker of a router (the primary hands new connections out in turn). */
async function connectionPerWorker(url: string): Promise<Map<string, Client>> {
  const byWorker = new Map<string, Client>();
  const spare: Client[] = [];
  for (let i = 0; i < 40 && byWorker.size < WORKERS; i++) {
    const cl = new Client(url, { pipelining: 1 });
    const res = await cl.request({ method: 'GET', path: '/healthz' });
    await res.body.dump();
    const w = String(res.headers['x-kv-worker']);
    if (byWorker.has(w)) spare.push(cl);
    else byWorker.set(w, cl);
  }
  await Promise.all(spare.map((s) => s.close()));
  if (byWorker.size < WORKERS) throw new Error(`reached ${byWorker.size} of ${WORKERS} workers of ${url}`);
  return byWorker;
}

async function on(cl: Client, method: 'GET' | 'PUT' | 'DELETE' | 'POST', path: string, headers: Record<string, string>, body?: string) {
  const res = await cl.request({ method, path, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.body.text();
  return { status: res.statusCode, text, worker: String(res.headers['x-kv-worker']) };
}

function expectCode(res: HttpResult | { status: number; text: string }, status: number, code: string): void {
  expect(res.status, res.text).toBe(status);
  expect(JSON.parse(res.text).code).toBe(code);
}

/** Every page of a scan, each page through the next of `urls` on a fresh connection (so another worker). */
async function scanAll(urls: string[], headers: Record<string, string>, prefix: string, limit: number, between?: (page: number) => Promise<void>) {
  const keys: string[] = [];
  const workers = new Set<string>();
  let next: string | null = null;
  for (let page = 0; ; page++) {
    expect(page).toBeLessThan(10_000);
    const q: string = next === null ? `prefix=${encodeURIComponent(prefix)}&limit=${limit}` : `page=${encodeURIComponent(next)}`;
    const url = urls[page % urls.length]!;
    const res = await request('GET', `${url}/v1/kv?${q}`, { headers, fresh: true });
    expect(res.status, res.text).toBe(200);
    workers.add(`${url} ${String(res.headers['x-kv-worker'])}`);
    const body = res.json<{ keys: Array<{ key: string; etag: string }>; next: string | null }>();
    expect(body.keys.length).toBeLessThanOrEqual(limit);
    keys.push(...body.keys.map((k) => k.key));
    next = body.next;
    if (next === null) return { keys, workers, pages: page + 1 };
    await between?.(page);
  }
}

async function putAll(url: string, headers: Record<string, string>, entries: Array<[string, string]>): Promise<void> {
  for (let i = 0; i < entries.length; i += 100) {
    const ops = entries.slice(i, i + 100).map(([key, value]) => ({ op: 'put', key, value }));
    const res = await request('POST', `${url}/v1/kv/_batch`, { headers: { ...headers, ...json }, body: JSON.stringify({ ops }) });
    expect(res.status, res.text).toBe(200);
    expect(res.json<{ results: Array<{ status: number }> }>().results.every((r) => r.status === 204 || r.status === 200)).toBe(true);
  }
}

const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

describe('sessions on every worker of every router', () => {
  it('a session made on one worker works on every worker of both routers; logout ends it on all of them within 100 ms', async () => {
    const apiKey = await createTenant('alpha');
    const s = await login(c.url, apiKey);
    expect(s.token).toMatch(/^kvs_[A-Za-z0-9_-]{43}$/);
    expect(s.body['tenant']).toBe('alpha');
    expect(Number(s.body['absoluteExpiresAt'])).toBeGreaterThan(Number(s.body['createdAt']));
    // The cookie: HttpOnly, SameSite=Strict, no Secure on plain HTTP.
    const setCookie = String((await request('POST', `${c.url}/v1/sessions`, { headers: bearer(apiKey) })).headers['set-cookie']);
    expect(setCookie).toMatch(/^kv_session=kvs_[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+$/);

    const conns = [...(await connectionPerWorker(c.url)).entries(), ...(await connectionPerWorker(r2.url)).entries()].map(([w, cl], n) => ({
      name: `${n < WORKERS ? 'router 1' : 'router 2'} worker ${w}`,
      cl,
    }));
    try {
      // Write through each worker with the bearer token, read back through every other one with the cookie.
      for (const [n, { cl }] of conns.entries()) {
        expect((await on(cl, 'PUT', `/v1/kv/counter-${n}`, { ...bearer(s.token), 'content-type': 'text/plain' }, `v${n}`)).status).toBe(204);
      }
      for (const { name, cl } of conns) {
        const cur = await on(cl, 'GET', '/v1/sessions/current', { cookie: s.cookie });
        expect(cur.status, `${name}: ${cur.text}`).toBe(200);
        expect(JSON.parse(cur.text)).toMatchObject({ tenant: 'alpha', createdAt: s.body['createdAt'] });
        for (let n = 0; n < conns.length; n++) expect((await on(cl, 'GET', `/v1/kv/counter-${n}`, { cookie: s.cookie })).text).toBe(`v${n}`);
        // The API key itself works too.
        expect((await on(cl, 'GET', `/v1/kv/counter-0`, bearer(apiKey))).text).toBe('v0');
      }
      // Every worker now has the session cached; only the logout's announcement can end it there this fast.
      const [first, ...rest] = conns;
      const out = await on(first!.cl, 'DELETE', '/v1/sessions/current', bearer(s.token));
      expect(out.status, out.text).toBe(204);
      const t0 = Date.now();
      const refusedAfter: number[] = [];
      await Promise.all(
        rest.map(async ({ name, cl }) => {
          await waitUntil(async () => (await on(cl, 'GET', '/v1/kv/counter-0', bearer(s.token))).status === 401, {
            timeoutMs: 5000,
            intervalMs: 2,
            what: `${name} to refuse the ended session`,
          });
          refusedAfter.push(Date.now() - t0);
        }),
      );
      console.log(`logout reached every worker of both routers ${Math.max(...refusedAfter)} ms after its answer (${refusedAfter.join(', ')} ms)`);
      expect(Math.max(...refusedAfter)).toBeLessThanOrEqual(100);
      for (const { cl } of conns) {
        expectCode(await on(cl, 'GET', '/v1/kv/counter-0', { cookie: s.cookie }), 401, 'KV_ERR_BAD_CREDENTIALS');
        expectCode(await on(cl, 'GET', '/v1/sessions/current', bearer(s.token)), 401, 'KV_ERR_BAD_CREDENTIALS');
      }
      // The API key that made the session still works; the data is still there.
      expect((await on(first!.cl, 'GET', '/v1/kv/counter-1', bearer(apiKey))).text).toBe('v1');
    } finally {
      await Promise.all(conns.map((x) => x.cl.close()));
    }
  });

  it('a revoked API key, and the sessions it made, are refused on every worker of both routers', async () => {
    const apiKey = await createTenant('beta');
    const s = await login(r2.url, apiKey);
    const conns = [...(await connectionPerWorker(c.url)).values(), ...(await connectionPerWorker(r2.url)).values()];
    try {
      for (const cl of conns) {
        expect((await on(cl, 'PUT', '/v1/kv/x', bearer(apiKey), 'x')).status).toBe(204);
        expect((await on(cl, 'GET', '/v1/kv/x', bearer(s.token))).status).toBe(200);
      }
      const id = apiKey.split('_')[1]!;
      const listed = await request('GET', `${c.url}/v1/admin/tenants`, { headers: ADMIN_AUTH });
      expect(listed.text).not.toContain(apiKey);
      expect((await request('DELETE', `${c.url}/v1/admin/keys/${id}`, { headers: ADMIN_AUTH })).status).toBe(204);
      const t0 = Date.now();
      await Promise.all(
        conns.map((cl) =>
          waitUntil(
            async () => (await on(cl, 'GET', '/v1/kv/x', bearer(apiKey))).status === 401 && (await on(cl, 'GET', '/v1/kv/x', bearer(s.token))).status === 401,
            {
              timeoutMs: 5000,
              intervalMs: 2,
              what: 'the revoked key and its session refused',
            },
          ),
        ),
      );
      expect(Date.now() - t0).toBeLessThan(1000);
      expectCode(await request('POST', `${c.url}/v1/sessions`, { headers: bearer(apiKey) }), 401, 'KV_ERR_BAD_CREDENTIALS');
      expectCode(await request('DELETE', `${c.url}/v1/admin/keys/${id}`, { headers: ADMIN_AUTH }), 404, 'KV_ERR_KEY_NOT_FOUND');
    } finally {
      await Promise.all(conns.map((x) => x.close()));
    }
  });

  it('without credentials /v1/kv is refused; the idle timeout ends a session, the absolute one bounds it', async () => {
    expectCode(await request('GET', `${c.url}/v1/kv/x`), 401, 'KV_ERR_AUTH_REQUIRED');
    expectCode(await request('GET', `${c.url}/v1/kv?prefix=`), 401, 'KV_ERR_AUTH_REQUIRED');
    expectCode(await request('POST', `${c.url}/v1/kv/_batch`, { headers: json, body: '{"ops":[{"op":"get","key":"x"}]}' }), 401, 'KV_ERR_AUTH_REQUIRED');
    // A router with short timeouts on the same Redis.
    const short = await startRouter({
      redisUrl: c.redis.url,
      prefix: c.prefix,
      workers: 1,
      set: { dataAuth: 'true', sessionIdleTimeoutMs: 1500, sessionAbsoluteTimeoutMs: 4000, authCacheMs: 200 },
    });
    try {
      const apiKey = await createTenant('gamma');
      // Idle: used every 300 ms it lives past its idle timeout, then left alone it ends.
      const idle = await login(short.url, apiKey);
      const t0 = Date.now();
      while (Date.now() - t0 < 2500) {
        expect((await request('GET', `${short.url}/v1/sessions/current`, { headers: bearer(idle.token) })).status).toBe(200);
        await new Promise((r) => setTimeout(r, 300));
      }
      const left = Date.now();
      await waitUntil(async () => (await request('GET', `${short.url}/v1/sessions/current`, { headers: bearer(idle.token) })).status === 401, {
        timeoutMs: 5000,
        what: 'the idle session to end',
      });
      expect(Date.now() - left).toBeGreaterThanOrEqual(1000);
      // Absolute: kept busy, it still ends at absoluteExpiresAt.
      const busy = await login(short.url, apiKey);
      const until = Number(busy.body['absoluteExpiresAt']);
      expect(until - Number(busy.body['createdAt'])).toBe(4000);
      await waitUntil(async () => (await request('GET', `${short.url}/v1/kv/k`, { headers: bearer(busy.token) })).status === 401, {
        timeoutMs: 8000,
        intervalMs: 200,
        what: 'the session to reach its absolute timeout',
      });
      expect(Date.now()).toBeGreaterThanOrEqual(until - 50);
    } finally {
      await short.stop();
    }
  }, 30_000);
});

describe('per-tenant rate limit', () => {
  it('is shared by every worker of both routers, answers 429 KV_ERR_RATE_LIMITED with Retry-After, and spares other tenants', async () => {
    const LIMIT = 150;
    const set = { dataAuth: 'true', tenantRateLimitPerSec: LIMIT };
    const ra = await startRouter({ redisUrl: c.redis.url, prefix: c.prefix, workers: WORKERS, set });
    const rb = await startRouter({ redisUrl: c.redis.url, prefix: c.prefix, workers: WORKERS, set });
    const agent = keepAliveAgent(16);
    try {
      const busy = bearer(await createTenant('rate-busy'));
      const calm = bearer(await createTenant('rate-calm'));
      const ok = new Map<number, number>();
      const refusals: HttpResult[] = [];
      const workers = new Set<string>();
      const t0 = Date.now();
      await Promise.all(
        Array.from({ length: 16 }, async (_, lane) => {
          while (Date.now() - t0 < 2500) {
            const res = await request('GET', `${lane % 2 ? rb.url : ra.url}/v1/kv/missing`, { headers: busy, agent });
            workers.add(`${lane % 2} ${String(res.headers['x-kv-worker'])}`);
            const second = Math.floor(Date.now() / 1000);
            if (res.status === 404) ok.set(second, (ok.get(second) ?? 0) + 1);
            else refusals.push(res);
          }
        }),
      );
      expect(workers.size).toBe(2 * WORKERS);
      expect(refusals.length).toBeGreaterThan(0);
      for (const r of refusals) {
        expectCode(r, 429, 'KV_ERR_RATE_LIMITED');
        expect(Number(r.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      }
      // Per second, over four workers: the limit, plus at most one chunk (limit / 50) per worker, counted a second late at worst.
      const perSecond = [...ok.values()];
      console.log(`rate limit ${LIMIT}/s over 2 routers x ${WORKERS} workers: ${perSecond.join(', ')} answered per second, ${refusals.length} refused`);
      const total = perSecond.reduce((a, b) => a + b, 0);
      expect(total).toBeLessThanOrEqual((LIMIT + 4 * Math.ceil(LIMIT / 50)) * (ok.size + 1));
      expect(Math.max(...perSecond)).toBeLessThanOrEqual(2 * (LIMIT + 4 * Math.ceil(LIMIT / 50)));
      expect(total).toBeGreaterThanOrEqual(LIMIT);
      // Another tenant is not held back by the busy one.
      expect((await request('GET', `${ra.url}/v1/kv/missing`, { headers: calm })).status).toBe(404);
    } finally {
      await agent.close();
      await Promise.all([ra.stop(), rb.stop()]);
    }
  }, 30_000);
});

describe('tenant isolation', () => {
  it('no tenant reads, lists, overwrites or deletes another tenant’s keys, in single ops, batches and scans', async () => {
    const a = bearer(await createTenant('iso-a'));
    const b = bearer(await createTenant('iso-b'));
    const names = ['shared', 'a/1', 'a/2', 'ключ ✓', 'deep/x/y'];
    for (const k of names) {
      expect((await request('PUT', `${c.url}/v1/kv/${encodeURIComponent(k)}`, { headers: a, body: `A:${k}` })).status).toBe(204);
      expect((await request('PUT', `${r2.url}/v1/kv/${encodeURIComponent(k)}`, { headers: b, body: `B:${k}` })).status).toBe(204);
    }
    for (const k of names) {
      expect((await request('GET', `${r2.url}/v1/kv/${encodeURIComponent(k)}`, { headers: a })).text).toBe(`A:${k}`);
      expect((await request('GET', `${c.url}/v1/kv/${encodeURIComponent(k)}`, { headers: b })).text).toBe(`B:${k}`);
    }
    // B deletes and overwrites its own; A's stay.
    expect((await request('DELETE', `${c.url}/v1/kv/shared`, { headers: b })).status).toBe(204);
    expectCode(await request('GET', `${c.url}/v1/kv/shared`, { headers: b }), 404, 'KV_ERR_NOT_FOUND');
    expect((await request('GET', `${c.url}/v1/kv/shared`, { headers: a })).text).toBe('A:shared');
    // A key only B has is not there for A, and A's If-None-Match create does not see B's.
    expect((await request('PUT', `${c.url}/v1/kv/only-b`, { headers: b, body: 'B' })).status).toBe(204);
    expectCode(await request('GET', `${c.url}/v1/kv/only-b`, { headers: a }), 404, 'KV_ERR_NOT_FOUND');
    expectCode(await request('DELETE', `${c.url}/v1/kv/only-b`, { headers: a }), 404, 'KV_ERR_NOT_FOUND');
    expect((await request('PUT', `${c.url}/v1/kv/only-b`, { headers: { ...a, 'if-none-match': '*', 'content-type': 'text/plain' }, body: 'A' })).status).toBe(
      204,
    );
    expect((await request('GET', `${c.url}/v1/kv/only-b`, { headers: b })).text).toBe('B');
    // Batches: the results name the client's keys and hold the tenant's values.
    const batch = await request('POST', `${c.url}/v1/kv/_batch`, {
      headers: { ...a, ...json },
      body: JSON.stringify({
        ops: [
          { op: 'get', key: 'a/1' },
          { op: 'put', key: 'a/3', value: 'A3' },
          { op: 'del', key: 'deep/x/y' },
          { op: 'get', key: 'only-b' },
        ],
      }),
    });
    expect(batch.status, batch.text).toBe(200);
    const results = batch.json<{ results: Array<{ key: string; status: number; value?: string; encoding?: string }> }>().results;
    const text = (r: { value?: string; encoding?: string }) =>
      r.value !== undefined && r.encoding === 'base64' ? Buffer.from(r.value, 'base64').toString() : r.value;
    expect(results.map((r) => [r.key, r.status, text(r)])).toEqual([
      ['a/1', 200, 'A:a/1'],
      ['a/3', 204, undefined],
      ['deep/x/y', 204, undefined],
      ['only-b', 200, 'A'],
    ]);
    expect((await request('GET', `${c.url}/v1/kv/deep%2Fx%2Fy`, { headers: b })).text).toBe('B:deep/x/y');
    expectCode(await request('GET', `${c.url}/v1/kv/a%2F3`, { headers: b }), 404, 'KV_ERR_NOT_FOUND');
    // Scans list the caller's keys only, by the names the caller gave them.
    const sa = await scanAll([c.url, r2.url], a, '', 2);
    expect(sa.keys).toEqual(['a/1', 'a/2', 'a/3', 'only-b', 'shared', 'ключ ✓'].sort(byteOrder));
    const sb = await scanAll([r2.url], b, '', 100);
    expect(sb.keys).toEqual(['a/1', 'a/2', 'deep/x/y', 'only-b', 'ключ ✓'].sort(byteOrder));
    expect((await scanAll([c.url], b, 'a/', 100)).keys).toEqual(['a/1', 'a/2']);
    // Keys that would name another tenant's namespace are refused.
    expectCode(await request('GET', `${c.url}/v1/kv/%EF%BF%BFiso-b%EF%BF%BFa%2F1`, { headers: a }), 400, 'KV_ERR_KEY_INVALID');
    expectCode(await request('GET', `${c.url}/v1/kv?prefix=%EF%BF%BFiso-b`, { headers: a }), 400, 'KV_ERR_KEY_INVALID');
  });

  it('tenants stay apart while a shard is added and while one is removed', async () => {
    const a = bearer(await createTenant('move-a'));
    const b = bearer(await createTenant('move-b'));
    const keys = Array.from({ length: 3000 }, (_, i) => `k${String(i).padStart(5, '0')}`);
    await putAll(
      c.url,
      a,
      keys.map((k) => [k, `A-${k}`]),
    );
    await putAll(
      r2.url,
      b,
      keys.slice(0, 1500).map((k) => [k, `B-${k}`]),
    );
    const check = async (what: string) => {
      const probe = keys.filter((_, i) => i % 97 === 0);
      const ra = await request('POST', `${c.url}/v1/kv/_batch`, {
        headers: { ...a, ...json },
        body: JSON.stringify({ ops: probe.map((key) => ({ op: 'get', key })) }),
      });
      const rb = await request('POST', `${r2.url}/v1/kv/_batch`, {
        headers: { ...b, ...json },
        body: JSON.stringify({ ops: probe.map((key) => ({ op: 'get', key })) }),
      });
      const va = ra.json<{ results: Array<{ status: number; value?: string }> }>().results;
      const vb = rb.json<{ results: Array<{ status: number; value?: string }> }>().results;
      probe.forEach((k, n) => {
        expect(va[n]!.value, `${what}: A ${k}`).toBe(`A-${k}`);
        expect(vb[n]!.value, `${what}: B ${k}`).toBe(keys.indexOf(k) < 1500 ? `B-${k}` : undefined);
      });
    };
    await c.startShard('s4');
    expect((await addShard(c.url, 's4')).status).toBe(202);
    // During the move: scans of B see exactly B's keys, with pages through both routers.
    let checks = 0;
    let whileMoving = 0;
    const during = await scanAll([c.url, r2.url], b, '', 150, async () => {
      checks++;
      const job = (await rebalanceState(c.url)).job;
      await check(`adding s4, page ${checks}`);
      if (job && job.state !== 'done') whileMoving++;
    });
    expect(during.keys).toEqual(keys.slice(0, 1500));
    // The move (paced at 2,000 keys/s) was under way for some of those checks.
    expect(whileMoving).toBeGreaterThan(0);
    await waitForJob(c.url, ['done'], 120_000);
    await check('after adding s4');
    expect((await removeShard(c.url, 's4')).status).toBe(202);
    const duringRemove = await scanAll([r2.url, c.url], a, 'k0', 400);
    expect(duringRemove.keys).toEqual(keys.filter((k) => k.startsWith('k0')));
    await waitForJob(c.url, ['done'], 120_000);
    await check('after removing s4');
    expect((await scanAll([c.url], a, '', 1000)).keys).toEqual(keys);
  }, 180_000);
});

describe('paged scan', () => {
  it('pages served by other workers and the other router return every key exactly once, in key order', async () => {
    const h = bearer((await login(c.url, await createTenant('scan'))).token);
    const keys = Array.from({ length: 700 }, (_, i) => `p/${(i * 7919) % 1000}/${i}`);
    await putAll(
      c.url,
      h,
      keys.map((k) => [k, 'v']),
    );
    // Deleted and expiring keys are not listed.
    expect((await request('PUT', `${c.url}/v1/kv/p%2Fgone`, { headers: h, body: 'x' })).status).toBe(204);
    expect((await request('DELETE', `${c.url}/v1/kv/p%2Fgone`, { headers: h })).status).toBe(204);
    const r = await scanAll([c.url, r2.url], h, 'p/', 37);
    expect(r.keys).toEqual([...keys].sort(byteOrder));
    expect(r.pages).toBeGreaterThanOrEqual(19);
    // Both workers of both routers served pages.
    expect(r.workers.size).toBe(2 * WORKERS);
    // A page token is single use and bound to its session.
    const first = await request('GET', `${c.url}/v1/kv?prefix=p%2F&limit=5`, { headers: h });
    const next = first.json<{ next: string }>().next;
    expect(next).toMatch(/\S/);
    const other = bearer(
      (await login(c.url, (await request('POST', `${c.url}/v1/admin/tenants/scan/keys`, { headers: ADMIN_AUTH })).json<{ key: string }>().key)).token,
    );
    expectCode(await request('GET', `${r2.url}/v1/kv?page=${encodeURIComponent(next)}`, { headers: other }), 400, 'KV_ERR_BAD_PAGE_TOKEN');
    expect((await request('GET', `${r2.url}/v1/kv?page=${encodeURIComponent(next)}`, { headers: h })).status).toBe(200);
    expectCode(await request('GET', `${c.url}/v1/kv?page=${encodeURIComponent(next)}`, { headers: h }), 400, 'KV_ERR_BAD_PAGE_TOKEN');
    // A page token goes with the first page's prefix and limit (and is used up by the refused try).
    const again = (await request('GET', `${c.url}/v1/kv?prefix=p%2F&limit=5`, { headers: h })).json<{ next: string }>().next;
    expectCode(await request('GET', `${r2.url}/v1/kv?page=${encodeURIComponent(again)}&limit=6`, { headers: h }), 400, 'KV_ERR_BAD_PAGE_TOKEN');
    expectCode(await request('GET', `${r2.url}/v1/kv?page=${encodeURIComponent(again)}`, { headers: h }), 400, 'KV_ERR_BAD_PAGE_TOKEN');
    expectCode(await request('GET', `${c.url}/v1/kv?prefix=p&limit=0`, { headers: h }), 400, 'KV_ERR_BAD_QUERY');
    expectCode(await request('GET', `${c.url}/v1/kv?prefix=p&limit=1001`, { headers: h }), 400, 'KV_ERR_BAD_QUERY');
  });

  it('a caller that starts scans and never finishes them holds at most 256 page tokens in Redis', async () => {
    const token = (await login(c.url, await createTenant('scan-many'))).token;
    const h = bearer(token);
    await putAll(c.url, h, [
      ['a', '1'],
      ['b', '2'],
    ]);
    const tokens: string[] = [];
    for (let i = 0; i < 300; i++) tokens.push((await request('GET', `${c.url}/v1/kv?limit=1`, { headers: h })).json<{ next: string }>().next);
    const fields = await c.admin.hkeys(`${c.prefix}session:${createHash('sha256').update(token).digest('hex')}`);
    expect(fields).toContain('tenant');
    expect(fields.filter((f) => f.startsWith('cursor:')).length).toBeLessThanOrEqual(256);
    expectCode(await request('GET', `${c.url}/v1/kv?page=${tokens[0]}`, { headers: h }), 400, 'KV_ERR_BAD_PAGE_TOKEN');
    const last = await request('GET', `${r2.url}/v1/kv?page=${tokens[299]}`, { headers: h });
    expect(last.json<{ keys: Array<{ key: string }> }>().keys.map((k) => k.key)).toEqual(['b']);
  });

  it('a rebalance between pages changes nothing: every key exactly once', async () => {
    const h = bearer((await login(r2.url, await createTenant('scan-move'))).token);
    const keys = Array.from({ length: 2000 }, (_, i) => `m${String(i).padStart(4, '0')}`);
    await putAll(
      c.url,
      h,
      keys.map((k) => [k, 'v']),
    );
    await c.startShard('s5');
    const r = await scanAll([r2.url, c.url], h, '', 250, async (page) => {
      // After the first page a shard joins (the move runs to its end), after the third it leaves again.
      if (page === 0) {
        expect((await addShard(c.url, 's5')).status).toBe(202);
        await waitForJob(c.url, ['done'], 120_000);
      }
      if (page === 2) {
        expect((await removeShard(c.url, 's5')).status).toBe(202);
        await waitForJob(c.url, ['done'], 120_000);
      }
    });
    expect(r.keys).toEqual(keys);
  }, 180_000);
});

describe('Redis restarted under a session workload', () => {
  it('session requests fail fast with 503 while Redis is down, and every session works again after it restarts with its append-only file', async () => {
    const apiKey = await createTenant('redis');
    const sessions = await Promise.all(Array.from({ length: 20 }, (_, i) => login(i % 2 ? r2.url : c.url, apiKey)));
    for (const [i, s] of sessions.entries())
      expect((await request('PUT', `${c.url}/v1/kv/s${i}`, { headers: bearer(s.token), body: `v${i}` })).status).toBe(204);
    // The workload: every session reads its key in turn, through both routers.
    let stop = false;
    const seen: Array<{ at: number; status: number; code?: string; ms: number }> = [];
    const workload = (async () => {
      for (let n = 0; !stop; n++) {
        const i = n % sessions.length;
        const t = Date.now();
        const res = await request('GET', `${n % 2 ? r2.url : c.url}/v1/kv/s${i}`, { headers: bearer(sessions[i]!.token), timeoutMs: 5000 });
        seen.push({ at: t, status: res.status, ms: Date.now() - t, ...(res.status !== 200 ? { code: res.json<{ code: string }>().code } : {}) });
        if (res.status === 200) expect(res.text).toBe(`v${i}`);
      }
    })();
    try {
      await waitUntil(() => seen.length > 50, { timeoutMs: 10_000, what: 'the workload to run' });
      await c.redis.stop();
      const down = Date.now();
      // Once the workers' short-lived caches and rate budgets run out, every session request is a quick 503.
      await waitUntil(() => seen.filter((s) => s.at > down && s.status === 503).length >= 20, { timeoutMs: 10_000, what: '503s while Redis is down' });
      const failing = seen.filter((s) => s.at > down && s.status !== 200);
      expect(
        failing.every((s) => s.status === 503 && s.code === 'KV_ERR_REDIS_UNAVAILABLE'),
        JSON.stringify(failing.slice(0, 5)),
      ).toBe(true);
      expect(Math.max(...failing.map((s) => s.ms))).toBeLessThan(1500);
      // A new login needs Redis too.
      expectCode(await request('POST', `${c.url}/v1/sessions`, { headers: bearer(apiKey) }), 503, 'KV_ERR_REDIS_UNAVAILABLE');
      await c.restartRedis();
      const up = Date.now();
      await waitUntil(() => seen.filter((s) => s.at > up && s.status === 200).length >= 40, { timeoutMs: 20_000, what: 'session requests to succeed again' });
    } finally {
      stop = true;
      await workload;
    }
    // Every session made before the outage works again, on both routers.
    for (const [i, s] of sessions.entries()) {
      for (const url of [c.url, r2.url]) {
        const res = await waitUntil(
          async () => {
            const x = await request('GET', `${url}/v1/kv/s${i}`, { headers: bearer(s.token), fresh: true });
            return x.status === 200 ? x : undefined;
          },
          { timeoutMs: 10_000, what: `session ${i} on ${url}` },
        );
        expect(res.text).toBe(`v${i}`);
      }
    }
    expect(seen.filter((s) => s.status !== 200 && s.status !== 503)).toEqual([]);
  }, 90_000);
});
