// KvClient against a real cluster (private Redis, three shards, routers with
// two workers each and dataAuth on): values of every kind, TTLs,
// compare-and-set, batches, scans, sessions, aborts, typed errors, and
// balancing over two router processes while one of them stops and comes back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvClient, KvError } from '../../src/index.js';
import { waitUntil } from '../../src/local/wait.js';
import { startRouter, TestCluster, type RouterProc } from '../helpers/procs.js';
import { createApiKey, createTenant } from '../helpers/tenants.js';

let cluster: TestCluster;
let apiKey: string;
const clients: KvClient[] = [];
function client(o: Partial<ConstructorParameters<typeof KvClient>[0]> = {}): KvClient {
  const c = new KvClient({ urls: cluster.url, apiKey, ...o });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  cluster = await TestCluster.start({ routerSet: { dataAuth: 'true' } });
  await createTenant(cluster.url, 'sdk');
  apiKey = (await createApiKey(cluster.url, 'sdk')).key;
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await cluster?.stop();
});

async function rejection(p: Promise<unknown>): Promise<KvError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KvError);
  return err as KvError;
}

describe('KvClient against a cluster', () => {
  it('stores and reads text, JSON and bytes, with their content types and versions', async () => {
    const c = client();
    const v1 = await c.put('greeting/en', 'héllo wörld');
    const v2 = await c.put('doc', { a: [1, 'two'], b: null });
    const bytes = new Uint8Array([0, 1, 2, 254, 255]);
    const v3 = await c.put('blob', bytes);
    await c.put('typed', 'a,b', { contentType: 'text/csv' });
    expect(await c.getText('greeting/en')).toMatchObject({
      key: 'greeting/en',
      value: 'héllo wörld',
      contentType: 'text/plain; charset=utf-8',
      version: v1,
      etag: `"${v1}"`,
    });
    expect(await c.getJson('doc')).toMatchObject({ value: { a: [1, 'two'], b: null }, contentType: 'application/json', version: v2 });
    const b = await c.get('blob');
    expect([...b!.value]).toEqual([...bytes]);
    expect(b).toMatchObject({ contentType: 'application/octet-stream', version: v3, expiresAt: undefined });
    expect((await c.head('typed'))?.contentType).toBe('text/csv');
    expect(await c.get('missing')).toBeUndefined();
    expect(await c.head('missing')).toBeUndefined();
    // Names the router keeps for endpoints are ordinary keys through the client.
    await c.put('_batch', 'not an endpoint');
    expect((await c.getText('_batch'))?.value).toBe('not an endpoint');
    expect(await c.delete('_batch')).toBe(true);
    expect(await c.delete('blob')).toBe(true);
    expect(await c.delete('blob')).toBe(false);
    expect(await c.get('blob')).toBeUndefined();
  });

  it('expires a key after its TTL', async () => {
    const c = client();
    const before = Date.now();
    await c.put('short', 'lived', { ttl: 1 });
    const e = await c.get('short');
    expect(e?.expiresAt).toBeGreaterThanOrEqual(before + 1000);
    expect(e!.expiresAt!).toBeLessThan(Date.now() + 2000);
    await waitUntil(async () => (await c.get('short')) === undefined, { timeoutMs: 5000, intervalMs: 100, what: 'the key to expire' });
    expect(Date.now()).toBeGreaterThanOrEqual(e!.expiresAt!);
  });

  it('compare-and-set: ifMatch and ifNoneMatch conflicts are typed 412 errors and write nothing', async () => {
    const c = client();
    const v1 = await c.put('cas', 'one', { ifNoneMatch: '*' });
    const conflict = await rejection(c.put('cas', 'again', { ifNoneMatch: '*' }));
    expect(conflict.code).toBe('KV_ERR_PRECONDITION_FAILED');
    expect(conflict.statusCode).toBe(412);
    expect(conflict.requestId).toMatch(/.+/);
    const v2 = await c.put('cas', 'two', { ifMatch: v1 });
    expect(v2).toBeGreaterThan(v1);
    expect((await rejection(c.put('cas', 'stale', { ifMatch: v1 }))).code).toBe('KV_ERR_PRECONDITION_FAILED');
    expect((await rejection(c.delete('cas', { ifMatch: `"${v1}"` }))).code).toBe('KV_ERR_PRECONDITION_FAILED');
    expect((await c.getText('cas'))?.value).toBe('two');
    expect(await c.delete('cas', { ifMatch: v2 })).toBe(true);
    expect((await rejection(c.put('cas', 'x', { ifMatch: '*' }))).code).toBe('KV_ERR_PRECONDITION_FAILED');
  });

  it('runs a batch with a result per operation', async () => {
    const c = client();
    const old = await c.put('b/old', 'x');
    const res = await c.batch([
      { op: 'put', key: 'b/text', value: 'hi', ttl: 60 },
      { op: 'put', key: 'b/bin', value: new Uint8Array([9, 0, 200]) },
      { op: 'put', key: 'b/json', value: { n: 1 } },
      { op: 'put', key: 'b/old', value: 'y', ifMatch: old + 1 },
      { op: 'get', key: 'b/old' },
      { op: 'get', key: 'b/none' },
      { op: 'del', key: 'b/none' },
    ]);
    expect(res.map((r) => r.status)).toEqual([204, 204, 204, 412, 200, 404, 404]);
    expect(res[3]!.error?.code).toBe('KV_ERR_PRECONDITION_FAILED');
    expect(res[5]!.error?.code).toBe('KV_ERR_NOT_FOUND');
    expect(Buffer.from(res[4]!.value!).toString()).toBe('x');
    expect(res[4]!.version).toBe(old);
    const got = await c.batch([
      { op: 'get', key: 'b/text' },
      { op: 'get', key: 'b/bin' },
      { op: 'get', key: 'b/json' },
    ]);
    expect(Buffer.from(got[0]!.value!).toString()).toBe('hi');
    expect(got[0]!.expiresAt).toBeGreaterThan(Date.now());
    expect([...got[1]!.value!]).toEqual([9, 0, 200]);
    expect(got[2]!.contentType).toBe('application/json');
    expect((await c.getJson('b/json'))?.value).toEqual({ n: 1 });
    // A batch that does not validate runs nothing.
    const bad = await rejection(
      c.batch([
        { op: 'put', key: 'b/never', value: 'v' },
        { op: 'get', key: '' },
      ]),
    );
    expect(bad.code).toBe('KV_ERR_KEY_EMPTY');
    expect(await c.get('b/never')).toBeUndefined();
  });

  it('scans a prefix page by page, every key once, in order', async () => {
    const c = client();
    const keys = Array.from({ length: 57 }, (_, i) => `scan/${String(i).padStart(3, '0')}`);
    for (let i = 0; i < keys.length; i += 20) await c.batch(keys.slice(i, i + 20).map((key) => ({ op: 'put' as const, key, value: key })));
    await c.put('scan-other', 'not in the prefix');
    const pages: number[] = [];
    const seen: string[] = [];
    for await (const p of c.scan({ prefix: 'scan/', limit: 10 })) {
      pages.push(p.keys.length);
      for (const k of p.keys) seen.push(k.key);
      expect(p.keys.every((k) => k.version > 0)).toBe(true);
    }
    expect(seen).toEqual(keys);
    expect(pages.length).toBeGreaterThanOrEqual(6);
    expect(pages.every((n) => n <= 10)).toBe(true);
    const all: string[] = [];
    for await (const k of c.keys({ prefix: 'scan/' })) all.push(k.key);
    expect(all).toEqual(keys);
  });

  it('logs in, uses the session, and logs out everywhere', async () => {
    const c = client();
    const s = await c.login();
    expect(s.token).toMatch(/^kvs_/);
    expect(s.tenant).toBe('sdk');
    await c.put('via-session', 'yes');
    expect((await c.session()).tenant).toBe('sdk');
    // Another client with only the session token sees the same tenant's keys.
    const other = client({ apiKey: undefined, sessionToken: s.token });
    expect((await other.getText('via-session'))?.value).toBe('yes');
    await c.logout();
    const ended = await rejection(other.get('via-session'));
    expect(ended.code).toBe('KV_ERR_BAD_CREDENTIALS');
    expect(ended.statusCode).toBe(401);
    // The first client goes back to its API key.
    expect((await c.getText('via-session'))?.value).toBe('yes');
  });

  it('rebuilds auth errors as typed errors', async () => {
    const none = await rejection(client({ apiKey: undefined }).get('k'));
    expect(none.code).toBe('KV_ERR_AUTH_REQUIRED');
    const wrong = await rejection(client({ apiKey: 'kvk_' + 'x'.repeat(43) }).get('k'));
    expect(wrong.code).toBe('KV_ERR_BAD_CREDENTIALS');
    expect(wrong.requestId).toMatch(/.+/);
  });

  it('aborts a call with its signal', async () => {
    const c = client();
    await expect(c.get('k', { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
    const ac = new AbortController();
    const big = 'v'.repeat(512 * 1024);
    const p = c.put('abort/big', big, { signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    // The client still works afterwards.
    expect(await c.put('abort/after', 'ok')).toBeGreaterThan(0);
  });
});

describe('KvClient balancing over two router processes', () => {
  let second: RouterProc;

  afterAll(async () => {
    await second?.stop();
  });

  it('keeps serving reads through one router while the other stops, and uses it again once it is back', async () => {
    second = await startRouter({ redisUrl: cluster.redis.url, prefix: cluster.prefix, workers: 2, set: { dataAuth: 'true' } });
    const c = client({ urls: [cluster.url, second.url], readyProbeMs: 100, retries: 2 });
    const answered = (url: string) => c.stats().find((s) => s.url === url)!.answered;
    for (let i = 0; i < 20; i++) await c.put(`lb/${i}`, `v${i}`);
    expect(answered(cluster.url)).toBe(10);
    expect(answered(second.url)).toBe(10);

    // Reads run without a pause while the second router stops.
    let reading = true;
    // Reads answered (or failed) so far.
    let reads = 0;
    const errors: unknown[] = [];
    const reader = (async () => {
      for (let n = 0; reading; n++) {
        const i = n % 20;
        try {
          const e = await c.getText(`lb/${i}`);
          if (e?.value !== `v${i}`) errors.push(new Error(`lb/${i}: ${e?.value}`));
        } catch (err) {
          errors.push(err);
        }
        reads++;
      }
    })();
    try {
      const downs: string[] = [];
      c.on('router-down', (url) => downs.push(url));
      await waitUntil(() => reads > 20, { timeoutMs: 10_000 });
      await second.stop();
      const atStop = reads;
      await waitUntil(() => reads > atStop + 200, { timeoutMs: 20_000, what: '200 reads after the stop' });
      const secondAfterStop = answered(second.url);
      const firstAfterStop = answered(cluster.url);
      const readsAfterStop = reads;
      await waitUntil(() => reads > atStop + 400, { timeoutMs: 20_000, what: '200 more reads' });
      expect(errors).toEqual([]);
      expect(downs).toContain(second.url);
      expect(answered(second.url)).toBe(secondAfterStop);
      // Every read since went to the first router (give or take the one in flight at each count).
      expect(answered(cluster.url) - firstAfterStop).toBeGreaterThanOrEqual(reads - readsAfterStop - 1);
      expect(reads - readsAfterStop).toBeGreaterThanOrEqual(100);

      // The router comes back on the same port: the probe finds it ready.
      const up = new Promise<string>((resolve) => c.once('router-up', resolve));
      second = await startRouter({ redisUrl: cluster.redis.url, prefix: cluster.prefix, workers: 2, port: second.port, set: { dataAuth: 'true' } });
      expect(await up).toBe(second.url);
      const back = answered(second.url);
      await waitUntil(() => answered(second.url) >= back + 50, { timeoutMs: 20_000, what: 'the restarted router to serve again' });
    } finally {
      reading = false;
      await reader;
    }
    expect(errors).toEqual([]);
    expect(c.stats().every((s) => s.healthy)).toBe(true);
  });
});
