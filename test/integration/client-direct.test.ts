// KvClient in direct mode against a real cluster (private Redis, three
// shards, a router with dataAuth off): it reads what router-mode clients
// wrote and the other way round, fails compare-and-set with the same codes,
// is refused by the shards with a wrong cluster secret, and gets coded errors,
// not hangs, when a shard dies under it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvClient, KvError } from '../../src/index.js';
import { waitUntil } from '../../src/local/wait.js';
import { TestCluster } from '../helpers/procs.js';
import { TEST_CLUSTER_SECRET } from '../helpers/secrets.js';

let cluster: TestCluster;
const clients: KvClient[] = [];
function client(o: Partial<ConstructorParameters<typeof KvClient>[0]> = {}): KvClient {
  const c = new KvClient({ urls: cluster.url, ...o });
  clients.push(c);
  return c;
}
const direct = (o: Partial<ConstructorParameters<typeof KvClient>[0]> = {}) => client({ direct: { clusterSecret: TEST_CLUSTER_SECRET }, ...o });

beforeAll(async () => {
  cluster = await TestCluster.start({ shards: 3, workers: 1 });
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

describe('KvClient in direct mode', () => {
  it('sees the writes of a router-mode client and the other way round, with the same metadata', async () => {
    const d = direct();
    const r = client();
    const v1 = await r.put('shared/text', 'héllo', { ttl: 3600 });
    const viaDirect = await d.getText('shared/text');
    const viaRouter = await r.getText('shared/text');
    expect(viaDirect).toEqual(viaRouter);
    expect(viaDirect).toMatchObject({ value: 'héllo', version: v1, etag: `"${v1}"`, contentType: 'text/plain; charset=utf-8' });
    expect(viaDirect!.expiresAt).toBeGreaterThan(Date.now());

    const v2 = await d.put('shared/doc', { a: [1, 'two'] });
    expect(await r.getJson('shared/doc')).toEqual(await d.getJson('shared/doc'));
    expect((await r.getJson('shared/doc'))?.version).toBe(v2);
    await d.put('shared/bytes', new Uint8Array([0, 255, 7]), { contentType: 'application/x-thing' });
    expect(await r.head('shared/bytes')).toEqual(await d.head('shared/bytes'));
    expect([...(await r.get('shared/bytes'))!.value]).toEqual([0, 255, 7]);
    // Keys the router keeps for endpoints are plain keys here too.
    await d.put('_batch', 'x');
    expect((await r.getText('_batch'))?.value).toBe('x');

    expect(await d.delete('shared/doc')).toBe(true);
    expect(await r.get('shared/doc')).toBeUndefined();
    expect(await d.delete('shared/doc')).toBe(false);
    expect(await r.delete('shared/doc')).toBe(false);
    expect(await d.get('never-written')).toBeUndefined();
    expect(await d.head('never-written')).toBeUndefined();
  });

  it('fails compare-and-set with the codes a router gives', async () => {
    const d = direct();
    const r = client();
    for (const [c, other, key] of [
      [d, r, 'cas/d'],
      [r, d, 'cas/r'],
    ] as const) {
      const v = await c.put(key, 'one', { ifNoneMatch: '*' });
      const codes = async (k: KvClient) => [
        (await rejection(k.put(key, 'two', { ifNoneMatch: '*' }))).code,
        (await rejection(k.put(key, 'two', { ifMatch: v + 100 }))).code,
        (await rejection(k.delete(key, { ifMatch: v + 100 }))).code,
        (await rejection(k.put('cas/absent', 'x', { ifMatch: '*' }))).code,
      ];
      expect(await codes(c)).toEqual(await codes(other));
      expect(await codes(c)).toEqual(['KV_ERR_PRECONDITION_FAILED', 'KV_ERR_PRECONDITION_FAILED', 'KV_ERR_PRECONDITION_FAILED', 'KV_ERR_PRECONDITION_FAILED']);
      const v2 = await other.put(key, 'two', { ifMatch: v });
      expect(await c.put(key, 'three', { ifMatch: `"${v2}"` })).toBeGreaterThan(v2);
      expect(await other.delete(key, { ifMatch: '*' })).toBe(true);
    }
  });

  it('runs a batch with the results a router gives', async () => {
    const d = direct();
    const r = client();
    await r.put('b/old', 'old');
    const ops = [
      { op: 'put', key: 'b/new', value: 'new', ttl: 600 },
      { op: 'get', key: 'b/old' },
      { op: 'get', key: 'b/missing' },
      { op: 'del', key: 'b/missing' },
      { op: 'put', key: 'b/old', value: 'x', ifMatch: 999_999 },
    ] as const;
    const viaDirect = await d.batch(ops);
    await r.delete('b/new');
    const viaRouter = await r.batch(ops);
    const shape = (rs: typeof viaDirect) =>
      rs.map((x) => ({ key: x.key, status: x.status, code: x.error?.code, value: x.value && Buffer.from(x.value).toString() }));
    expect(shape(viaDirect)).toEqual(shape(viaRouter));
    expect(shape(viaDirect).map((x) => x.status)).toEqual([204, 200, 404, 404, 412]);
    expect(viaDirect[0]!.version).toBeGreaterThan(0);
  });

  it('is refused by the shards with a wrong cluster secret, with a clear error', async () => {
    const d = client({ direct: { clusterSecret: 'not-the-cluster-secret-0123456789' }, retries: 0 });
    const err = await rejection(d.get('anything'));
    expect(err.code).toBe('KV_ERR_SHARD_UNAVAILABLE');
    expect(err.message).toMatch(/refused|secret/);
    const w = await rejection(d.put('anything', 'x'));
    expect(w.code).toBe('KV_ERR_SHARD_UNAVAILABLE');
    expect(await client().get('anything')).toBeUndefined();
  });

  it('gets coded errors, not hangs, when a shard is killed under load, and works again when it is back', async () => {
    const d = direct({ timeoutMs: 3000, retries: 1 });
    const keys = Array.from({ length: 300 }, (_, i) => `dead/${i}`);
    await Promise.all(keys.map((k) => d.put(k, k)));
    const victim = cluster.shard('s2');
    let done = 0;
    const load = Promise.allSettled(
      Array.from({ length: 8 }, async (_, w) => {
        const out: string[] = [];
        for (let i = w; i < keys.length * 2; i += 8) {
          const k = keys[i % keys.length]!;
          out.push(
            await (i % 2 ? d.put(k, `v${i}`) : d.get(k)).then(
              () => 'ok',
              (e: unknown) => (e instanceof KvError ? e.code : `untyped: ${String(e)}`),
            ),
          );
          done++;
        }
        return out;
      }),
    );
    // kill -9 in the middle of the run: requests in flight on it lose their connection.
    await waitUntil(() => done >= 100, { timeoutMs: 10_000, what: '100 operations before the kill' });
    victim.kill('SIGKILL');
    await victim.exited();
    const results = (await load).flatMap((r) => (r.status === 'fulfilled' ? r.value : [`rejected: ${String(r.reason)}`]));
    const errors = results.filter((x) => x !== 'ok');
    expect(errors.filter((x) => !/^KV_ERR_(SHARD_UNAVAILABLE|OUTCOME_UNKNOWN|TIMEOUT)$/.test(x))).toEqual([]);
    // Keys of s2 now fail at once with a code; keys of the others still work.
    const after = await Promise.all(
      keys.slice(0, 60).map((k) =>
        d.get(k).then(
          () => 'ok',
          (e: KvError) => e.code,
        ),
      ),
    );
    expect(after).toContain('ok');
    expect(after).toContain('KV_ERR_SHARD_UNAVAILABLE');
    await cluster.restartShard(victim);
    // The connection to s2 waits out its reconnect backoff (at most 1 s) first.
    await waitUntil(
      async () =>
        (
          await Promise.all(
            keys.slice(0, 60).map((k) =>
              d.get(k).then(
                () => true,
                () => false,
              ),
            ),
          )
        ).every(Boolean),
      {
        timeoutMs: 10_000,
        what: 'every key readable again',
      },
    );
  });
});
