// Every kind of bad input gets its documented 4xx and KV_ERR_* code, nothing
// is partly written, and the router and shards keep serving.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster } from '../helpers/procs.js';
import { request, get, put } from '../helpers/http.js';
import { ADMIN_AUTH } from '../helpers/secrets.js';
import { RawPeer } from '../helpers/data-port.js';

let c: TestCluster;
const MAX_VALUE = 64 * 1024;
const MAX_BODY = 256 * 1024;

beforeAll(async () => {
  c = await TestCluster.start({
    shards: 3,
    workers: 2,
    routerSet: { maxValueBytes: MAX_VALUE, maxBodyBytes: MAX_BODY, maxBatchOps: 20, maxKeyBytes: 200 },
    shardSet: { maxValueBytes: MAX_VALUE, maxKeyBytes: 200 },
  });
});
afterAll(async () => {
  await c?.stop();
});

const json = { 'content-type': 'application/json' };

function expectError(res: { status: number; text: string; json: () => Record<string, unknown> }, status: number, code: string): void {
  expect(res.status, res.text).toBe(status);
  const body = res.json();
  expect(body['code']).toBe(code);
  expect(typeof body['message']).toBe('string');
  expect((body['message'] as string).length).toBeGreaterThan(5);
}

describe('bad input', () => {
  const cases: Array<{
    name: string;
    method: string;
    path: string;
    body?: string | Buffer;
    headers?: Record<string, string>;
    status: number;
    code: string;
    key?: string;
  }> = [
    { name: 'empty key', method: 'PUT', path: '/v1/kv/', body: 'x', status: 400, code: 'KV_ERR_KEY_EMPTY' },
    {
      name: 'key too long (bytes, not characters)',
      method: 'PUT',
      path: `/v1/kv/${encodeURIComponent('é'.repeat(101))}`,
      body: 'x',
      status: 400,
      code: 'KV_ERR_KEY_TOO_LONG',
    },
    { name: 'invalid UTF-8 %FF', method: 'PUT', path: '/v1/kv/%FF', body: 'x', status: 400, code: 'KV_ERR_KEY_INVALID' },
    { name: 'invalid UTF-8 sequence', method: 'GET', path: '/v1/kv/a%C3%28', status: 400, code: 'KV_ERR_KEY_INVALID' },
    { name: 'control character', method: 'PUT', path: '/v1/kv/a%00b', body: 'x', status: 400, code: 'KV_ERR_KEY_INVALID', key: 'a\u0000b' },
    {
      name: 'value over the limit',
      method: 'PUT',
      path: '/v1/kv/big',
      body: Buffer.alloc(MAX_VALUE + 1, 1),
      status: 413,
      code: 'KV_ERR_VALUE_TOO_LARGE',
      key: 'big',
    },
    {
      name: 'body over the limit',
      method: 'PUT',
      path: '/v1/kv/huge',
      body: Buffer.alloc(MAX_BODY + 1, 1),
      status: 413,
      code: 'KV_ERR_BODY_TOO_LARGE',
      key: 'huge',
    },
    { name: 'ttl zero', method: 'PUT', path: '/v1/kv/t1?ttl=0', body: 'x', status: 400, code: 'KV_ERR_BAD_TTL', key: 't1' },
    { name: 'ttl negative', method: 'PUT', path: '/v1/kv/t2?ttl=-5', body: 'x', status: 400, code: 'KV_ERR_BAD_TTL', key: 't2' },
    { name: 'ttl fractional', method: 'PUT', path: '/v1/kv/t3?ttl=1.5', body: 'x', status: 400, code: 'KV_ERR_BAD_TTL', key: 't3' },
    { name: 'ttl not a number', method: 'PUT', path: '/v1/kv/t4', body: 'x', headers: { 'x-kv-ttl': 'soon' }, status: 400, code: 'KV_ERR_BAD_TTL', key: 't4' },
    { name: 'ttl over the maximum', method: 'PUT', path: '/v1/kv/t5?ttl=999999999999', body: 'x', status: 400, code: 'KV_ERR_BAD_TTL', key: 't5' },
    {
      name: 'bad content type',
      method: 'PUT',
      path: '/v1/kv/ct',
      body: 'x',
      headers: { 'content-type': 'not a type' },
      status: 400,
      code: 'KV_ERR_BAD_CONTENT_TYPE',
      key: 'ct',
    },
    {
      name: 'bad If-Match',
      method: 'PUT',
      path: '/v1/kv/im',
      body: 'x',
      headers: { 'if-match': 'W/"1"' },
      status: 400,
      code: 'KV_ERR_BAD_PRECONDITION',
      key: 'im',
    },
    {
      name: 'bad If-None-Match',
      method: 'PUT',
      path: '/v1/kv/inm',
      body: 'x',
      headers: { 'if-none-match': '"3"' },
      status: 400,
      code: 'KV_ERR_BAD_PRECONDITION',
      key: 'inm',
    },
    { name: 'batch: bad JSON', method: 'POST', path: '/v1/kv/_batch', body: '{"ops": [', headers: json, status: 400, code: 'KV_ERR_BAD_JSON' },
    { name: 'batch: not an ops list', method: 'POST', path: '/v1/kv/_batch', body: '{"op":"get"}', headers: json, status: 400, code: 'KV_ERR_BAD_BATCH' },
    {
      name: 'batch: too many ops',
      method: 'POST',
      path: '/v1/kv/_batch',
      body: JSON.stringify({ ops: Array.from({ length: 21 }, (_, i) => ({ op: 'get', key: `k${i}` })) }),
      headers: json,
      status: 413,
      code: 'KV_ERR_BATCH_TOO_LARGE',
    },
    {
      name: 'batch: unknown op',
      method: 'POST',
      path: '/v1/kv/_batch',
      body: JSON.stringify({ ops: [{ op: 'incr', key: 'a' }] }),
      headers: json,
      status: 400,
      code: 'KV_ERR_BAD_BATCH',
    },
    { name: 'unknown route', method: 'GET', path: '/v2/nothing', status: 404, code: 'KV_ERR_ROUTE_NOT_FOUND' },
    { name: 'wrong method on a key', method: 'POST', path: '/v1/kv/abc', body: 'x', status: 405, code: 'KV_ERR_METHOD_NOT_ALLOWED', key: 'abc' },
    { name: 'wrong method on the batch route', method: 'DELETE', path: '/v1/kv/_batch', status: 405, code: 'KV_ERR_METHOD_NOT_ALLOWED' },
    { name: 'wrong method on health', method: 'PUT', path: '/healthz', body: 'x', status: 405, code: 'KV_ERR_METHOD_NOT_ALLOWED' },
  ];

  for (const t of cases) {
    it(`${t.name} -> ${t.status} ${t.code}`, async () => {
      const res = await request(t.method, c.url + t.path, { ...(t.body !== undefined ? { body: t.body } : {}), ...(t.headers ? { headers: t.headers } : {}) });
      expectError(res, t.status, t.code);
      if (t.key !== undefined) {
        // Nothing was written: the key is absent on every shard.
        for (const s of c.shards) {
          const r = await get(`${s.adminUrl}/kv/${encodeURIComponent(t.key)}`, { headers: ADMIN_AUTH });
          expect([400, 404]).toContain(r.status);
        }
      }
    });
  }

  it('a batch with one bad op writes none of its good ops', async () => {
    const ops = [
      ...Array.from({ length: 5 }, (_, i) => ({ op: 'put', key: `partial-${i}`, value: 'x' })),
      { op: 'put', key: 'partial-bad', value: 'x', ttl: -1 },
      { op: 'put', key: 'partial-6', value: 'x' },
    ];
    const res = await request('POST', `${c.url}/v1/kv/_batch`, { body: JSON.stringify({ ops }), headers: json });
    expectError(res, 400, 'KV_ERR_BAD_TTL');
    expect(res.json()['message']).toContain('ops[5]');
    for (const o of ops) expect((await get(`${c.url}/v1/kv/${o.key}`)).status).toBe(404);
  });

  it('garbage and oversized frames on a shard data port close only that connection', async () => {
    const s = c.shards[0]!;
    const huge = Buffer.alloc(8);
    huge.writeUInt32BE(0xfffffff0, 0);
    const garbage = Buffer.concat([Buffer.from([0, 0, 0, 4]), Buffer.from([0xc1, 0xc1, 0xc1, 0xc1])]);
    for (const bytes of [huge, garbage]) {
      // Before and after the handshake alike.
      for (const secret of [null, undefined]) {
        const p = await RawPeer.connect(s.dataPort, secret === null ? { secret: null } : {});
        p.send(bytes);
        expect(await p.closedWithin(3000)).toBe('closed');
      }
    }
    // Valid frame, nonsense requests: refused one by one, connection stays.
    const p = await RawPeer.connect(s.dataPort);
    p.send([
      { i: 1, o: 'explode', e: 1, k: 'a' },
      { i: 2, o: 'get', e: 1 },
      { i: 3, o: 'put', e: 1, k: 'a', v: 'not bytes' },
    ]);
    const answers = (await p.next()) as Array<{ i: number; err?: { code: string } }>;
    expect(answers.sort((a, b) => a.i - b.i).map((a) => a.err?.code)).toEqual(['KV_ERR_UNKNOWN_OP', 'KV_ERR_KEY_INVALID', 'KV_ERR_BAD_FRAME']);
    expect(p.isClosed).toBe(false);
    p.close();
  });

  it('router and every shard still serve after all of the above', async () => {
    for (const s of c.shards) expect((await get(`${s.adminUrl}/healthz`)).status).toBe(200);
    expect((await put(`${c.url}/v1/kv/after`, 'fine')).status).toBe(204);
    expect((await get(`${c.url}/v1/kv/after`)).text).toBe('fine');
    expect(c.router.child.exitCode).toBeNull();
    for (const s of c.shards) expect(s.child.exitCode).toBeNull();
  });
});
