// The fast path (router/kv-fast.ts) answers exactly as the Fastify routes:
// the same sequences of raw requests go to a router with fastPath=true and to
// one with fastPath=false on the same shards, and every answer must match in
// status, headers and body (request ids, versions, dates and the worker id
// aside). Each router gets its own key names, of the same length.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, startRouter, type RouterProc } from '../helpers/procs.js';
import { rawHttp, type RawResponse } from '../helpers/raw-http.js';
import { createApiKey, createTenant, login } from '../helpers/tenants.js';

let c: TestCluster;
let slow: RouterProc;
let apiKey: string;
let session: string;
const MAX_KEY = 200;
const MAX_VALUE = 4096;
const MAX_BODY = 8192;
const LIMITS = { maxKeyBytes: MAX_KEY, maxValueBytes: MAX_VALUE, maxBodyBytes: MAX_BODY, dataAuth: 'true' };

beforeAll(async () => {
  c = await TestCluster.start({ shards: 3, workers: 2, routerSet: LIMITS, shardSet: { maxKeyBytes: MAX_KEY, maxValueBytes: MAX_VALUE } });
  slow = await startRouter({ redisUrl: c.redis.url, prefix: c.prefix, workers: 1, set: { ...LIMITS, fastPath: 'false' } });
  await createTenant(c.router.url, 'fp');
  apiKey = (await createApiKey(c.router.url, 'fp')).key;
  session = await login(c.router.url, apiKey);
}, 60_000);
afterAll(async () => {
  await slow?.stop();
  await c?.stop();
});

/** One request: `{K}` in it becomes the router's own key tag; `{AUTH}` the API key header. */
type Req = { method: string; path: string; headers?: Record<string, string>; body?: string | Buffer; raw?: string };

function serialize(r: Req, tag: string): Buffer {
  if (r.raw !== undefined) return Buffer.from(r.raw.replaceAll('{K}', tag));
  const body = r.body === undefined ? Buffer.alloc(0) : Buffer.from(r.body);
  const headers: Record<string, string> = { host: 'x', authorization: `Bearer ${apiKey}`, ...r.headers };
  if (r.body !== undefined && headers['transfer-encoding'] === undefined) headers['content-length'] ??= String(body.length);
  const lines = Object.entries(headers)
    .filter(([, v]) => v !== '')
    .map(([k, v]) => `${k}: ${v.replaceAll('{SESSION}', session)}\r\n`);
  const head = `${r.method} ${r.path.replaceAll('{K}', tag)} HTTP/1.1\r\n${lines.join('')}\r\n`;
  return Buffer.concat([Buffer.from(head), body]);
}

/** What must agree between the two routers. */
function comparable(res: RawResponse, tag: string): Record<string, unknown> {
  const h: Record<string, string> = {};
  for (const [k, v] of Object.entries(res.headers)) {
    if (k === 'date' || k === 'x-kv-worker' || k === 'keep-alive') continue;
    h[k] = k === 'etag' || k === 'x-kv-expires-at' ? 'V' : v;
  }
  let body: unknown = res.body.toString('utf8').replaceAll(tag, '{K}');
  if (res.json && typeof res.json === 'object') {
    const j = { ...(res.json as Record<string, unknown>) };
    if ('requestId' in j) j['requestId'] = 'R';
    if (typeof j['message'] === 'string')
      j['message'] = j['message']
        .replaceAll(tag, '{K}')
        .replace(/\d{10,}/g, 'V')
        .replace(/request \S+/, 'request R');
    // Where Fastify refuses before a route runs (a bad percent-escape, a media type it cannot parse), its words are
    // generic; the fast path names the cause. Status and code must still agree.
    if (j['code'] === 'KV_ERR_KEY_INVALID' || j['code'] === 'KV_ERR_BAD_CONTENT_TYPE') j['message'] = 'M';
    body = j;
    // The JSON body's length varies with the request id and the versions in it.
    delete h['content-length'];
  }
  return { status: res.status, headers: h, body };
}

async function both(name: string, reqs: Req[]): Promise<void> {
  const methods = reqs.map((r) => (r.raw ?? r.method).split(' ')[0]!);
  // One request at a time (pipelining has its own test below).
  const run = async (port: number, tag: string) => {
    const out: Array<Record<string, unknown>> = [];
    for (const [n, r] of reqs.entries()) {
      const res = await rawHttp(port, [serialize(r, tag)], { methods: [methods[n]!], responses: 1, timeoutMs: 5000 });
      out.push(...res.responses.map((x) => comparable(x, tag)));
    }
    return out;
  };
  // Tags of the same length: key-length limits hit both alike.
  const fast = await run(c.router.port, `fa${name.length % 10}`);
  const ref = await run(slow.port, `fb${name.length % 10}`);
  expect(fast.length, `${name}: ${JSON.stringify(fast.at(-1))}`).toBe(reqs.length);
  expect(fast, name).toEqual(ref);
}

const long = 'k'.repeat(MAX_KEY + 1);

describe('the fast path answers as Fastify does', () => {
  it('values: put, get, head, delete, missing keys', async () => {
    await both('values', [
      { method: 'PUT', path: '/v1/kv/{K}-a', headers: { 'content-type': 'text/plain' }, body: 'abc' },
      { method: 'GET', path: '/v1/kv/{K}-a' },
      { method: 'HEAD', path: '/v1/kv/{K}-a' },
      { method: 'PUT', path: '/v1/kv/{K}-empty', body: '' },
      { method: 'GET', path: '/v1/kv/{K}-empty' },
      { method: 'PUT', path: '/v1/kv/{K}-nobody' },
      { method: 'GET', path: '/v1/kv/{K}-nobody' },
      { method: 'PUT', path: '/v1/kv/{K}-nct', headers: {}, body: 'xyz' },
      { method: 'GET', path: '/v1/kv/{K}-nct' },
      { method: 'DELETE', path: '/v1/kv/{K}-a' },
      { method: 'GET', path: '/v1/kv/{K}-a' },
      { method: 'HEAD', path: '/v1/kv/{K}-a' },
      { method: 'DELETE', path: '/v1/kv/{K}-a' },
      { method: 'PUT', path: '/v1/kv/{K}-b/c//d', headers: { 'content-type': 'application/json; charset=utf-8' }, body: '{"a":1}' },
      { method: 'GET', path: '/v1/kv/{K}-b/c//d' },
      { method: 'PUT', path: '/v1/kv/{K}-%C3%A9%E2%82%AC', body: 'u' },
      { method: 'GET', path: '/v1/kv/{K}-%C3%A9%E2%82%AC' },
    ]);
  });

  it('preconditions and TTLs', async () => {
    await both('conditions', [
      { method: 'PUT', path: '/v1/kv/{K}-c', headers: { 'if-none-match': '*' }, body: '1' },
      { method: 'PUT', path: '/v1/kv/{K}-c', headers: { 'if-none-match': '*' }, body: '2' },
      { method: 'PUT', path: '/v1/kv/{K}-c', headers: { 'if-none-match': '"5"' }, body: '2' },
      { method: 'PUT', path: '/v1/kv/{K}-c', headers: { 'if-match': '"1"' }, body: '2' },
      { method: 'PUT', path: '/v1/kv/{K}-c', headers: { 'if-match': 'abc' }, body: '2' },
      { method: 'PUT', path: '/v1/kv/{K}-c', headers: { 'if-match': '*' }, body: '3' },
      { method: 'PUT', path: '/v1/kv/{K}-none', headers: { 'if-match': '*' }, body: '3' },
      { method: 'PUT', path: '/v1/kv/{K}-c', headers: { 'if-match': '*', 'if-none-match': '*' }, body: '3' },
      { method: 'DELETE', path: '/v1/kv/{K}-c', headers: { 'if-match': '"7"' } },
      { method: 'DELETE', path: '/v1/kv/{K}-c', headers: { 'if-match': 'nope' } },
      { method: 'PUT', path: '/v1/kv/{K}-t', headers: { 'x-kv-ttl': '100' }, body: 't' },
      { method: 'GET', path: '/v1/kv/{K}-t' },
      { method: 'PUT', path: '/v1/kv/{K}-t', headers: { 'x-kv-ttl': '0' }, body: 't' },
      { method: 'PUT', path: '/v1/kv/{K}-t', headers: { 'x-kv-ttl': 'abc' }, body: 't' },
      { method: 'PUT', path: '/v1/kv/{K}-t', headers: { 'x-kv-ttl': '999999999999' }, body: 't' },
      { method: 'PUT', path: '/v1/kv/{K}-t?ttl=5', body: 't' },
      { method: 'PUT', path: '/v1/kv/{K}-t?ttl=5', headers: { 'x-kv-ttl': '6' }, body: 't' },
      { method: 'GET', path: '/v1/kv/{K}-t?x=1' },
    ]);
  });

  it('bad keys, bodies and content types', async () => {
    await both('bad input', [
      { method: 'GET', path: '/v1/kv/%ZZ' },
      { method: 'GET', path: '/v1/kv/{K}%C3%28' },
      { method: 'GET', path: '/v1/kv/{K}%00' },
      { method: 'GET', path: '/v1/kv/{K}%EF%BF%BFx' },
      { method: 'GET', path: `/v1/kv/${long}` },
      { method: 'PUT', path: `/v1/kv/${'k'.repeat(MAX_KEY - 2)}`, body: 'x' },
      { method: 'GET', path: '/v1/kv/' },
      { method: 'GET', path: '/v1/kv/_batch' },
      { method: 'PUT', path: '/v1/kv/_scan', body: 'x' },
      { method: 'PATCH', path: '/v1/kv/{K}', body: 'x' },
      { method: 'PUT', path: '/v1/kv/{K}-big', body: Buffer.alloc(MAX_VALUE + 1, 1) },
      { method: 'PUT', path: '/v1/kv/{K}-ct', headers: { 'content-type': 'garbage' }, body: 'x' },
      { method: 'PUT', path: '/v1/kv/{K}-ct', headers: { 'content-type': `text/${'p'.repeat(300)}` }, body: 'x' },
      { method: 'PUT', path: '/v1/kv/{K}-chunked', headers: { 'transfer-encoding': 'chunked' }, body: '3\r\nabc\r\n0\r\n\r\n' },
      { method: 'GET', path: '/v1/kv/{K}-chunked' },
    ]);
    // Bodies over the limit close the connection: one request per run.
    await both('too large', [{ method: 'PUT', path: '/v1/kv/{K}-huge', body: Buffer.alloc(MAX_BODY + 1, 1) }]);
  });

  it('credentials', async () => {
    await both('credentials', [
      { method: 'GET', path: '/v1/kv/{K}', headers: { authorization: '' } },
      { method: 'PUT', path: '/v1/kv/{K}', headers: { authorization: '' }, body: 'x' },
      { method: 'GET', path: '/v1/kv/{K}', headers: { authorization: 'Basic abc' } },
      { method: 'GET', path: '/v1/kv/{K}', headers: { authorization: 'Bearer kvk_nope' } },
      { method: 'GET', path: '/v1/kv/{K}', headers: { authorization: 'Bearer something' } },
      { method: 'GET', path: '/v1/kv/{K}', headers: { authorization: '', cookie: `kv_session=${apiKey}` } },
      { method: 'PUT', path: '/v1/kv/{K}-s', headers: { authorization: 'Bearer {SESSION}' }, body: 's' },
      { method: 'GET', path: '/v1/kv/{K}-s', headers: { authorization: '', cookie: 'a=b; kv_session={SESSION}' } },
      { method: 'DELETE', path: '/v1/kv/{K}-s', headers: { authorization: '', cookie: 'kv_session={SESSION}' } },
    ]);
  });

  it('pipelined requests on one connection run in order, on both paths', async () => {
    for (const [port, tag] of [
      [c.router.port, 'pa'],
      [slow.port, 'pb'],
    ] as const) {
      const reqs: Req[] = [
        { method: 'PUT', path: '/v1/kv/{K}-p', body: 'one' },
        { method: 'GET', path: '/v1/kv/{K}-p' },
        { method: 'PUT', path: '/v1/kv/{K}-p?ttl=60', body: 'two' },
        { method: 'GET', path: '/v1/kv/{K}-p' },
        { method: 'DELETE', path: '/v1/kv/{K}-p' },
        { method: 'GET', path: '/v1/kv/{K}-p' },
        { method: 'PUT', path: '/v1/kv/{K}-p', headers: { 'if-none-match': '*' }, body: 'three' },
        { method: 'HEAD', path: '/v1/kv/{K}-p' },
      ];
      const methods = reqs.map((r) => r.method);
      const res = await rawHttp(port, [Buffer.concat(reqs.map((r) => serialize(r, tag)))], { methods, responses: reqs.length, timeoutMs: 5000 });
      expect(
        res.responses.map((r) => [r.status, r.body.toString()]),
        String(port),
      ).toEqual([
        [204, ''],
        [200, 'one'],
        [204, ''],
        [200, 'two'],
        [204, ''],
        [404, expect.stringContaining('KV_ERR_NOT_FOUND')],
        [204, ''],
        [200, ''],
      ]);
    }
  });

  it('HTTP versions and framing', async () => {
    await both('http', [{ method: 'GET', path: '/v1/kv/{K}', raw: 'GET /v1/kv/{K} HTTP/1.0\r\nAuthorization: Bearer x\r\n\r\n' }]);
    await both('nohost', [{ method: 'GET', path: '/v1/kv/{K}', raw: 'GET /v1/kv/{K} HTTP/1.1\r\n\r\n' }]);
    await both('absolute', [{ method: 'GET', path: 'http://x/v1/kv/{K}' }]);
  });
});
