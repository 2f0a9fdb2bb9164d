// KvClient against scripted fake routers: what goes on the wire, how errors
// come back typed, which failures are retried (and which never are), the
// balancing and readiness probing, timeouts and aborts.
import { afterEach, describe, expect, it } from 'vitest';
import { KvClient, KvError } from '../../src/index.js';
import { freePort } from '../../src/local/redis-server.js';
import { waitUntil } from '../../src/local/wait.js';
import { FakeRouter, kvErr, type Handler } from '../helpers/fake-router.js';

const fakes: FakeRouter[] = [];
const clients: KvClient[] = [];
async function fake(handler: Handler): Promise<FakeRouter> {
  const f = await FakeRouter.start(handler);
  fakes.push(f);
  return f;
}
function client(o: ConstructorParameters<typeof KvClient>[0]): KvClient {
  const c = new KvClient({ readyProbeMs: 20, retryDelayMs: 1, ...o });
  clients.push(c);
  return c;
}
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(fakes.splice(0).map((f) => f.close()));
});

/** What a router answers to a GET of a stored value. */
const value = (body: string, etag = '"7"', type = 'text/plain; charset=utf-8') => ({ status: 200, headers: { etag, 'content-type': type }, body });
const ready: Handler = (r) => (r.url === '/readyz' ? { status: 200, body: { ready: true } } : value('x'));

async function rejection(p: Promise<unknown>): Promise<KvError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(KvError);
  return err as KvError;
}

describe('KvClient on the wire', () => {
  it('puts with TTL, content type and conditions, and reads values back typed', async () => {
    const r = await fake((req) => {
      if (req.method === 'PUT') return { status: 204, headers: { etag: '"42"' } };
      if (req.url.endsWith('/j')) return value('{"a":[1,2]}', '"43"', 'application/json');
      if (req.url.endsWith('/b'))
        return {
          status: 200,
          headers: { etag: '"44"', 'content-type': 'application/octet-stream', 'x-kv-expires-at': '1900000000000' },
          body: Buffer.from([0, 1, 255]),
        };
      return value('héllo');
    });
    const c = client({ urls: r.url, apiKey: 'kvk_test' });
    expect(await c.put('a/b c', 'héllo', { ttl: 30, ifMatch: 12 })).toBe(42);
    await c.put('j', { a: [1, 2] }, { ifNoneMatch: '*' });
    await c.put('b', new Uint8Array([0, 1, 255]), { ifMatch: '*', contentType: 'image/x-test' });
    const [p1, p2, p3] = r.seen;
    expect(p1!.url).toBe('/v1/kv/a%2Fb%20c?ttl=30');
    expect(p1!.headers['if-match']).toBe('"12"');
    expect(p1!.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(p1!.headers.authorization).toBe('Bearer kvk_test');
    expect(p1!.body.toString('utf8')).toBe('héllo');
    expect(p2!.headers['if-none-match']).toBe('*');
    expect(p2!.headers['content-type']).toBe('application/json');
    expect(p2!.body.toString()).toBe('{"a":[1,2]}');
    expect(p3!.headers['if-match']).toBe('*');
    expect(p3!.headers['content-type']).toBe('image/x-test');
    expect([...p3!.body]).toEqual([0, 1, 255]);

    expect(await c.getText('t')).toEqual({ key: 't', value: 'héllo', contentType: 'text/plain; charset=utf-8', version: 7, etag: '"7"', expiresAt: undefined });
    expect((await c.getJson<{ a: number[] }>('j'))?.value).toEqual({ a: [1, 2] });
    const b = await c.get('b');
    expect([...b!.value]).toEqual([0, 1, 255]);
    expect(b!.expiresAt).toBe(1_900_000_000_000);
    expect(b!.version).toBe(44);
  });

  it('names reserved key names as keys, not endpoints', async () => {
    const r = await fake(() => value('x'));
    const c = client({ urls: r.url });
    await c.get('_batch');
    await c.get('_scan');
    await c.get('_other');
    expect(r.seen.map((s) => s.url)).toEqual(['/v1/kv/%5Fbatch', '/v1/kv/%5Fscan', '/v1/kv/_other']);
  });

  it('answers undefined and false for missing keys, and throws typed errors with status and request id', async () => {
    const r = await fake((req) => {
      if (req.url.endsWith('/cas')) return kvErr(412, 'KV_ERR_PRECONDITION_FAILED', 'version does not match');
      if (req.url.endsWith('/slow')) return kvErr(429, 'KV_ERR_RATE_LIMITED', 'slow down', { 'retry-after': '3' });
      if (req.url.endsWith('/proxy')) return { status: 502, body: '<html>bad gateway</html>' };
      return kvErr(404, 'KV_ERR_NOT_FOUND', 'key not found');
    });
    const c = client({ urls: r.url, retries: 0 });
    expect(await c.get('nope')).toBeUndefined();
    expect(await c.head('nope')).toBeUndefined();
    expect(await c.delete('nope')).toBe(false);
    const cas = await rejection(c.put('cas', 'v', { ifMatch: '"3"' }));
    expect(cas.code).toBe('KV_ERR_PRECONDITION_FAILED');
    expect(cas.statusCode).toBe(412);
    expect(cas.requestId).toBe('req-1');
    expect(cas.message).toBe('version does not match');
    const slow = await rejection(c.get('slow'));
    expect(slow.code).toBe('KV_ERR_RATE_LIMITED');
    expect(slow.retryAfterS).toBe(3);
    const proxy = await rejection(c.get('proxy'));
    expect(proxy.code).toBe('KV_ERR_BAD_RESPONSE');
    expect(proxy.message).toContain('502');
  });

  it('refuses bad input before sending anything', async () => {
    const r = await fake(() => value('x'));
    const c = client({ urls: r.url });
    expect((await rejection(c.get(''))).code).toBe('KV_ERR_KEY_EMPTY');
    expect((await rejection(c.put('k', 'a\ud800b'))).code).toBe('KV_ERR_BAD_REQUEST');
    expect((await rejection(c.put('k', 'v', { ifMatch: 'W/"1"' }))).code).toBe('KV_ERR_BAD_PRECONDITION');
    expect(r.seen).toHaveLength(0);
    expect(() => new KvClient({ urls: 'http://127.0.0.1:1/path' })).toThrow(/origin only/);
    expect(() => new KvClient({ urls: [] })).toThrow(KvError);
    expect(() => new KvClient({ urls: 'http://127.0.0.1:1', retrys: 1 } as never)).toThrow(/unknown option "retrys"/);
    expect(() => new KvClient({ urls: 'http://127.0.0.1:1', retries: -1 })).toThrow(/retries/);
  });

  it('sends a batch as JSON and rebuilds each result', async () => {
    const r = await fake(() => ({
      status: 200,
      body: {
        results: [
          { key: 't', status: 204, etag: '"5"' },
          { key: 'b', status: 204, etag: '"6"' },
          { key: 'g', status: 200, value: 'AAH/', encoding: 'base64', contentType: 'application/octet-stream', etag: '"4"', expiresAt: 99 },
          { key: 'd', status: 412, code: 'KV_ERR_PRECONDITION_FAILED', message: 'no' },
        ],
      },
    }));
    const c = client({ urls: r.url });
    const res = await c.batch([
      { op: 'put', key: 't', value: 'hi', ttl: 5 },
      { op: 'put', key: 'b', value: new Uint8Array([1, 2]) },
      { op: 'get', key: 'g' },
      { op: 'del', key: 'd', ifMatch: 3 },
    ]);
    expect(JSON.parse(r.seen[0]!.body.toString())).toEqual({
      ops: [
        { op: 'put', key: 't', value: 'hi', contentType: 'text/plain; charset=utf-8', ttl: 5 },
        { op: 'put', key: 'b', value: 'AQI=', encoding: 'base64', contentType: 'application/octet-stream' },
        { op: 'get', key: 'g' },
        { op: 'del', key: 'd', ifMatch: '"3"' },
      ],
    });
    expect(res[0]).toMatchObject({ key: 't', op: 'put', status: 204, version: 5, error: undefined });
    expect([...res[2]!.value!]).toEqual([0, 1, 255]);
    expect(res[2]).toMatchObject({ version: 4, expiresAt: 99, contentType: 'application/octet-stream' });
    expect(res[3]!.error).toBeInstanceOf(KvError);
    expect(res[3]!.error!.code).toBe('KV_ERR_PRECONDITION_FAILED');
  });

  it('follows page tokens until next is null, including empty pages', async () => {
    const pages: Record<string, object> = {
      '/v1/kv?prefix=p%2F&limit=2': {
        keys: [
          { key: 'p/1', etag: '"1"' },
          { key: 'p/2', etag: '"2"', expiresAt: 5 },
        ],
        next: 'tok 1',
      },
      '/v1/kv?page=tok%201': { keys: [], next: 'tok2' },
      '/v1/kv?page=tok2': { keys: [{ key: 'p/3', etag: '"3"' }], next: null },
    };
    const r = await fake((req) => (pages[req.url] ? { status: 200, body: pages[req.url]! } : kvErr(400, 'KV_ERR_BAD_PAGE_TOKEN')));
    const c = client({ urls: r.url });
    const seen = [];
    for await (const p of c.scan({ prefix: 'p/', limit: 2 })) seen.push(p.keys.length);
    expect(seen).toEqual([2, 0, 1]);
    const keys = [];
    for await (const k of c.keys({ prefix: 'p/', limit: 2 })) keys.push(k);
    expect(keys.map((k) => k.key)).toEqual(['p/1', 'p/2', 'p/3']);
    expect(keys[1]).toEqual({ key: 'p/2', etag: '"2"', version: 2, expiresAt: 5 });
  });

  it('logs in with the API key, then sends the session token, and back after logout', async () => {
    const r = await fake((req) => {
      if (req.url === '/v1/sessions') return { status: 201, body: { token: 'kvs_abc', tenant: 't1', createdAt: 1, expiresAt: 2, absoluteExpiresAt: 3 } };
      if (req.url === '/v1/sessions/current' && req.method === 'DELETE') return { status: 204 };
      if (req.url === '/v1/sessions/current') return { status: 200, body: { tenant: 't1', createdAt: 1, expiresAt: 2, absoluteExpiresAt: 3 } };
      return value('x');
    });
    const c = client({ urls: r.url, apiKey: 'kvk_key' });
    const info = await c.login();
    expect(info.token).toBe('kvs_abc');
    expect(c.sessionToken).toBe('kvs_abc');
    await c.get('k');
    expect((await c.session()).tenant).toBe('t1');
    await c.logout();
    expect(c.sessionToken).toBeUndefined();
    await c.get('k');
    expect(r.seen.map((s) => `${s.method} ${s.url} ${String(s.headers.authorization)}`)).toEqual([
      'POST /v1/sessions Bearer kvk_key',
      'GET /v1/kv/k Bearer kvs_abc',
      'GET /v1/sessions/current Bearer kvs_abc',
      'DELETE /v1/sessions/current Bearer kvs_abc',
      'GET /v1/kv/k Bearer kvk_key',
    ]);
  });
});

describe('KvClient balancing and retries', () => {
  it('spreads requests round robin over healthy routers', async () => {
    const a = await fake(ready);
    const b = await fake(ready);
    const c = client({ urls: [a.url, b.url] });
    for (let i = 0; i < 10; i++) await c.get('k');
    expect(a.data).toHaveLength(5);
    expect(b.data).toHaveLength(5);
    expect(c.stats().map((s) => s.answered)).toEqual([5, 5]);
  });

  it('skips a router that refuses connections, for reads and writes alike, and uses it again once /readyz answers', async () => {
    const b = await fake((req) => (req.method === 'PUT' ? { status: 204, headers: { etag: '"1"' } } : ready(req)));
    const port = await freePort();
    const c = client({ urls: [`http://127.0.0.1:${port}`, b.url] });
    const downs: string[] = [];
    c.on('router-down', (url) => downs.push(url));
    for (let i = 0; i < 4; i++) expect(await c.put(`k${i}`, 'v')).toBe(1);
    for (let i = 0; i < 4; i++) expect((await c.getText('k'))?.value).toBe('x');
    expect(b.data).toHaveLength(8);
    expect(downs).toEqual([`http://127.0.0.1:${port}`]);
    expect(c.stats()[0]!.healthy).toBe(false);

    // A router comes up on that port: the probe finds it and it is used again.
    const up = new Promise<string>((resolve) => c.once('router-up', resolve));
    const revived = await listenOn(port);
    expect(await up).toBe(`http://127.0.0.1:${port}`);
    for (let i = 0; i < 4; i++) await c.get('k');
    expect(revived.data).toHaveLength(2);
    expect(b.data).toHaveLength(10);
  });

  it('does not send a write again when the connection dropped after it was sent', async () => {
    const a = await fake((req) => (req.url === '/readyz' ? { status: 200 } : 'drop'));
    const b = await fake(() => ({ status: 204, headers: { etag: '"1"' } }));
    const c = client({ urls: [a.url, b.url] });
    const err = await rejection(c.put('k', 'v'));
    expect(err.code).toBe('KV_ERR_ROUTER_LOST');
    expect(err.statusCode).toBe(502);
    expect(a.data).toHaveLength(1);
    expect(b.data).toHaveLength(0);
    // Router a is now out of the rotation; a new client starts with it again.
    expect(c.stats()[0]!.healthy).toBe(false);
    const del = await rejection(client({ urls: [a.url, b.url] }).delete('k'));
    expect(del.code).toBe('KV_ERR_ROUTER_LOST');
    expect(a.data).toHaveLength(2);
    expect(b.data).toHaveLength(0);
  });

  it('sends a read again on another router after a dropped connection, a timeout or a 502/503/504', async () => {
    let n = 0;
    const a = await fake((req) => {
      if (req.url === '/readyz') return { status: 200 };
      n++;
      return n === 1 ? 'drop' : n === 2 ? 'hang' : n === 3 ? kvErr(503, 'KV_ERR_SHARD_UNAVAILABLE') : kvErr(504, 'KV_ERR_TIMEOUT');
    });
    const b = await fake(ready);
    for (let i = 0; i < 4; i++) {
      // A new client starts its round robin at router a.
      const c = client({ urls: [a.url, b.url], timeoutMs: 200 });
      expect((await c.getText('k'))?.value).toBe('x');
      expect(n).toBe(i + 1);
      expect(b.data).toHaveLength(i + 1);
    }
  });

  it('sends a write again only when the router said nothing was written (503 codes)', async () => {
    const a = await fake((req) => (req.url === '/readyz' ? { status: 200 } : kvErr(503, 'KV_ERR_BUSY', 'busy', { 'retry-after': '1' })));
    const b = await fake(() => ({ status: 204, headers: { etag: '"9"' } }));
    const c = client({ urls: [a.url, b.url] });
    expect(await c.put('k', 'v')).toBe(9);
    expect(a.data).toHaveLength(1);
    expect(b.data).toHaveLength(1);
    // 502 KV_ERR_OUTCOME_UNKNOWN: the write may have been applied; not sent again.
    a.handler = (req) => (req.url === '/readyz' ? { status: 200 } : kvErr(502, 'KV_ERR_OUTCOME_UNKNOWN'));
    const c2 = client({ urls: [a.url, b.url] });
    expect((await rejection(c2.put('k', 'v'))).code).toBe('KV_ERR_OUTCOME_UNKNOWN');
    expect(a.data).toHaveLength(2);
    expect(b.data.filter((r) => r.method === 'PUT')).toHaveLength(1);
  });

  it('takes a router that says it is not ready out of the rotation until /readyz answers 200', async () => {
    let isReady = false;
    const a = await fake((req) => (isReady ? ready(req) : kvErr(503, 'KV_ERR_NOT_READY', 'not ready: topology not loaded yet')));
    const b = await fake(ready);
    const c = client({ urls: [a.url, b.url] });
    for (let i = 0; i < 6; i++) await c.get('k');
    expect(a.data).toHaveLength(1);
    expect(b.data).toHaveLength(6);
    expect(c.stats()[0]).toMatchObject({ healthy: false });
    const probes = a.seen.filter((r) => r.url === '/readyz').length;
    await waitUntil(() => a.seen.filter((r) => r.url === '/readyz').length > probes, { timeoutMs: 5000 });
    isReady = true;
    await waitUntil(() => c.stats()[0]!.healthy, { timeoutMs: 5000, what: 'router a back in the rotation' });
    for (let i = 0; i < 6; i++) await c.get('k');
    expect(a.data).toHaveLength(4);
  });

  it('gives up after its retries with the last error', async () => {
    const p1 = await freePort();
    const p2 = await freePort();
    const c = client({ urls: [`http://127.0.0.1:${p1}`, `http://127.0.0.1:${p2}`], retries: 3 });
    const err = await rejection(c.get('k'));
    expect(err.code).toBe('KV_ERR_ROUTER_UNAVAILABLE');
    expect(err.statusCode).toBe(503);
  });

  it('times a write out with an unknown outcome, and does not send it again', async () => {
    const a = await fake((req) => (req.url === '/readyz' ? { status: 200 } : 'hang'));
    const b = await fake(ready);
    const c = client({ urls: [a.url, b.url], timeoutMs: 150 });
    const err = await rejection(c.put('k', 'v'));
    expect(err.code).toBe('KV_ERR_ROUTER_TIMEOUT');
    expect(b.data).toHaveLength(0);
  });

  it('ends a call at once when its signal aborts, with the signal reason, and sends it nowhere else', async () => {
    const a = await fake((req) => (req.url === '/readyz' ? { status: 200 } : 'hang'));
    const b = await fake(ready);
    const c = client({ urls: [a.url, b.url], timeoutMs: 30_000 });
    const ac = new AbortController();
    const t0 = Date.now();
    const p = c.get('k', { signal: ac.signal });
    await waitUntil(() => a.data.length === 1, { timeoutMs: 5000 });
    ac.abort();
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as Error).name).toBe('AbortError');
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(b.data).toHaveLength(0);
    // An already aborted signal sends nothing.
    await expect(c.get('k', { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
    expect(a.data.length + b.data.length).toBe(1);
  });
});

async function listenOn(port: number): Promise<FakeRouter> {
  const f = await FakeRouter.start(ready, port);
  fakes.push(f);
  return f;
}
