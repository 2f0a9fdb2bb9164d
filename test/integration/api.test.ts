// REST API end to end: real Redis, three real shard processes, a router
// cluster with several workers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { TestCluster } from '../helpers/procs.js';
import { request, get, put, del, onEveryWorker } from '../helpers/http.js';
import { nextEpoch, ringOf } from '../../src/core/topology.js';
import { waitUntil } from '../../src/local/wait.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { ADMIN_AUTH } from '../helpers/secrets.js';

const WORKERS = 3;
let c: TestCluster;
const kv = (key: string) => `${c.url}/v1/kv/${encodeURIComponent(key)}`;

beforeAll(async () => {
  c = await TestCluster.start({ shards: 3, workers: WORKERS });
});
afterAll(async () => {
  await c?.stop();
});

describe('put and get through every worker', () => {
  it('returns values and content types byte-exact on every worker', async () => {
    const cases: Array<{ key: string; body: Uint8Array; type: string }> = [
      { key: 'text', body: Buffer.from('hello, world'), type: 'text/plain; charset=utf-8' },
      { key: 'json', body: Buffer.from('{"a":[1,2,3]}'), type: 'application/json' },
      { key: 'binary', body: randomBytes(4096), type: 'application/octet-stream' },
      { key: 'all-bytes', body: Uint8Array.from({ length: 256 }, (_, i) => i), type: 'image/x-test' },
      { key: 'empty', body: new Uint8Array(0), type: 'application/octet-stream' },
      { key: 'ключ/with/slashes ✓', body: Buffer.from('unicode key'), type: 'text/plain' },
    ];
    for (const t of cases) {
      const res = await put(kv(t.key), t.body, { headers: { 'content-type': t.type } });
      expect(res.status, res.text).toBe(204);
      expect(res.headers.etag).toMatch(/^"\d+"$/);
    }
    for (const t of cases) {
      const seen = await onEveryWorker(kv(t.key), WORKERS, (res) => {
        expect(res.status).toBe(200);
        expect(res.headers['content-type']).toBe(t.type);
        expect(Buffer.compare(res.body, Buffer.from(t.body))).toBe(0);
        return res.headers.etag;
      });
      expect(new Set(seen.values()).size).toBe(1);
    }
  });

  it('spreads keys over all three shards and each key lives only on its ring owner', async () => {
    const t = await c.store.get();
    const ring = ringOf(t);
    for (let i = 0; i < 60; i++) expect((await put(kv(`spread-${i}`), `v${i}`)).status).toBe(204);
    const owners = new Set<string>();
    for (let i = 0; i < 60; i++) {
      const key = `spread-${i}`;
      const owner = ring.ownerOf(key)!;
      owners.add(owner);
      for (const s of c.shards) {
        const res = await get(`${s.adminUrl}/kv/${encodeURIComponent(key)}`, { headers: ADMIN_AUTH });
        expect(res.status, `${key} on ${s.id}`).toBe(s.id === owner ? 200 : 404);
      }
    }
    expect(owners.size).toBe(3);
  });

  it('HEAD gives headers without a body; DELETE removes; a second DELETE is 404', async () => {
    await put(kv('h'), 'abc', { headers: { 'content-type': 'text/plain' } });
    const head = await request('HEAD', kv('h'));
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    expect(head.headers.etag).toMatch(/^"\d+"$/);
    expect((await del(kv('h'))).status).toBe(204);
    const after = await get(kv('h'));
    expect(after.status).toBe(404);
    expect(after.json()['code']).toBe('KV_ERR_NOT_FOUND');
    expect((await del(kv('h'))).status).toBe(404);
  });

  it('batch: multi-put and multi-get across shards', async () => {
    const ops = Array.from({ length: 50 }, (_, i) => ({ op: 'put', key: `b-${i}`, value: `value ${i}` }));
    ops.push({
      op: 'put',
      key: 'b-bin',
      value: Buffer.from([0, 255, 1]).toString('base64'),
      encoding: 'base64',
      contentType: 'application/octet-stream',
    } as never);
    const w = await request('POST', `${c.url}/v1/kv/_batch`, { body: JSON.stringify({ ops }), headers: { 'content-type': 'application/json' } });
    expect(w.status, w.text).toBe(200);
    const wr = w.json<{ results: Array<{ status: number }> }>().results;
    expect(wr.every((r) => r.status === 204)).toBe(true);
    const gets = [...ops.map((o) => ({ op: 'get', key: o.key })), { op: 'get', key: 'b-missing' }];
    const r = await request('POST', `${c.url}/v1/kv/_batch`, { body: JSON.stringify({ ops: gets }), headers: { 'content-type': 'application/json' } });
    const rr = r.json<{ results: Array<{ key: string; status: number; value?: string; encoding?: string }> }>().results;
    expect(rr).toHaveLength(52);
    for (let i = 0; i < 50; i++) expect(rr[i]).toMatchObject({ key: `b-${i}`, status: 200, value: `value ${i}`, encoding: 'utf8' });
    expect(rr[50]).toMatchObject({ key: 'b-bin', status: 200, value: Buffer.from([0, 255, 1]).toString('base64'), encoding: 'base64' });
    expect(rr[51]).toMatchObject({ key: 'b-missing', status: 404, code: 'KV_ERR_NOT_FOUND' });
    // Each single key also reads back through the plain API.
    expect((await get(kv('b-7'))).text).toBe('value 7');
  });
});

describe('TTL', () => {
  it('serves a key until it expires and never after', async () => {
    expect((await put(`${kv('ttl-q')}?ttl=1`, 'short')).status).toBe(204);
    expect((await put(kv('ttl-h'), 'short', { headers: { 'x-kv-ttl': '1' } })).status).toBe(204);
    expect((await put(`${kv('ttl-long')}?ttl=3600`, 'long')).status).toBe(204);
    const first = await get(kv('ttl-q'));
    expect(first.status).toBe(200);
    const expiresAt = Number(first.headers['x-kv-expires-at']);
    expect(expiresAt).toBeGreaterThan(Date.now() - 100);
    expect(expiresAt).toBeLessThanOrEqual(Date.now() + 1100);
    // Poll across the expiry instant: every read after expiresAt must miss.
    const deadline = expiresAt + 1500;
    while (Date.now() < deadline) {
      const sentAt = Date.now();
      const res = await get(kv('ttl-q'), { fresh: true });
      if (sentAt > expiresAt) expect(res.status, `served ${sentAt - expiresAt} ms after expiry`).toBe(404);
      await sleep(25); // pacing of the reads across the expiry instant
    }
    expect((await get(kv('ttl-h'))).status).toBe(404);
    expect((await get(kv('ttl-long'))).status).toBe(200);
  });
});

describe('compare-and-set', () => {
  it('If-Match: exactly one of many concurrent writers wins per version', async () => {
    const first = await put(kv('cas'), 'v0');
    let version = first.headers.etag as string;
    for (let round = 0; round < 5; round++) {
      const writers = await Promise.all(
        Array.from({ length: 12 }, (_, i) => put(kv('cas'), `round ${round} writer ${i}`, { headers: { 'if-match': version }, fresh: true })),
      );
      const winners = writers.filter((r) => r.status === 204);
      const losers = writers.filter((r) => r.status === 412);
      expect(winners).toHaveLength(1);
      expect(losers).toHaveLength(11);
      for (const l of losers) expect(l.json()['code']).toBe('KV_ERR_PRECONDITION_FAILED');
      version = winners[0]!.headers.etag as string;
      const now = await get(kv('cas'));
      expect(now.headers.etag).toBe(version);
    }
  });

  it('If-None-Match: * creates only once; If-Match on a missing key fails', async () => {
    const a = await put(kv('create-once'), 'a', { headers: { 'if-none-match': '*' } });
    const b = await put(kv('create-once'), 'b', { headers: { 'if-none-match': '*' } });
    expect(a.status).toBe(204);
    expect(b.status).toBe(412);
    expect((await get(kv('create-once'))).text).toBe('a');
    expect((await put(kv('never-was'), 'x', { headers: { 'if-match': '"123"' } })).status).toBe(412);
    expect((await get(kv('never-was'))).status).toBe(404);
    const stale = await del(kv('create-once'), { headers: { 'if-match': '"1"' } });
    expect(stale.status).toBe(412);
    expect((await get(kv('create-once'))).status).toBe(200);
  });
});

describe('stale epochs', () => {
  it('a router behind the topology is refused by the shard and recovers by itself', async () => {
    // A second router that polls rarely; the change below is written without
    // a publish, so only the shards (polling every second) learn of it.
    const { startRouter } = await import('../helpers/procs.js');
    const slow = await startRouter({ redisUrl: c.redis.url, prefix: c.prefix, workers: 2, set: { topologyPollMs: 600_000 } });
    try {
      const before = await c.store.get();
      expect((await get(`${slow.url}/readyz`)).json()['epoch']).toBe(before.epoch);
      // Change the weights: ownership of many keys moves.
      const changed = nextEpoch(before, { shards: before.shards.map((s) => (s.id === 's1' ? { ...s, weight: 3 } : s)) });
      await c.admin.set(`${c.prefix}topology`, JSON.stringify(changed));
      // Wait until every shard has seen the new epoch.
      for (const s of c.shards) {
        await waitUntil(async () => (await get(`${s.adminUrl}/healthz`)).json()['epoch'] === changed.epoch, {
          timeoutMs: 10_000,
          intervalMs: 50,
          what: `shard ${s.id} at epoch ${changed.epoch}`,
        });
      }
      const ring = ringOf(changed);
      for (let i = 0; i < 30; i++) {
        const key = `stale-${i}`;
        const res = await put(`${slow.url}/v1/kv/${key}`, `v${i}`, { fresh: true });
        expect(res.status, res.text).toBe(204);
        const owner = c.shards.find((s) => s.id === ring.ownerOf(key))!;
        expect((await get(`${owner.adminUrl}/kv/${key}`, { headers: ADMIN_AUTH })).text).toBe(`v${i}`);
      }
      // Every worker of the slow router moved to the new epoch by itself.
      const epochs = await onEveryWorker(`${slow.url}/readyz`, 2, (r) => r.json()['epoch']);
      for (const e of epochs.values()) expect(e).toBe(changed.epoch);
      const stats = await onEveryWorker(`${slow.url}/v1/stats`, 2, (r) => r.json()['retries'] as number);
      expect([...stats.values()].reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    } finally {
      await slow.stop();
      // Put the original weights back for the other tests (a proper publish).
      await c.store.update((cur) => nextEpoch(cur, { shards: cur.shards.map((s) => ({ ...s, weight: 1 })) }));
    }
  });
});
