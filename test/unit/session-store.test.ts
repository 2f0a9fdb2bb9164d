// KvSessionStore's contract against a fake router: TTLs from the cookie, a
// touch that never brings a destroyed session back, callbacks and promises,
// and (at compile time) that it is a store for express-session and
// @fastify/session.
import type { Store } from 'express-session';
import type { SessionStore as FastifySessionStore } from '@fastify/session';
import { afterEach, describe, expect, it } from 'vitest';
import { KvClient, KvSessionStore } from '../../src/index.js';
import { FakeRouter, kvErr, type SeenRequest } from '../helpers/fake-router.js';

interface Rec {
  value: Buffer;
  type: string;
  ver: number;
  ttl: string | undefined;
}

/** A router that keeps values in a map and checks If-Match. */
async function memoryRouter(): Promise<{ router: FakeRouter; data: Map<string, Rec> }> {
  const data = new Map<string, Rec>();
  let ver = 0;
  const router = await FakeRouter.start((req: SeenRequest) => {
    const u = new URL(req.url, 'http://x');
    const key = decodeURIComponent(u.pathname.slice('/v1/kv/'.length));
    const cur = data.get(key);
    const im = req.headers['if-match'];
    if (im !== undefined && (cur === undefined || (im !== '*' && im !== `"${cur.ver}"`))) return kvErr(412, 'KV_ERR_PRECONDITION_FAILED');
    if (req.method === 'GET') {
      if (!cur) return kvErr(404, 'KV_ERR_NOT_FOUND');
      return { status: 200, headers: { etag: `"${cur.ver}"`, 'content-type': cur.type }, body: cur.value };
    }
    if (req.method === 'PUT') {
      data.set(key, { value: req.body, type: String(req.headers['content-type']), ver: ++ver, ttl: u.searchParams.get('ttl') ?? undefined });
      return { status: 204, headers: { etag: `"${ver}"` } };
    }
    if (req.method === 'DELETE') return data.delete(key) ? { status: 204 } : kvErr(404, 'KV_ERR_NOT_FOUND');
    return kvErr(404, 'KV_ERR_ROUTE_NOT_FOUND');
  });
  return { router, data };
}

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((o) => o.close()));
});

async function setup(o: Omit<ConstructorParameters<typeof KvSessionStore>[0], 'client'> = {}) {
  const { router, data } = await memoryRouter();
  const client = new KvClient({ urls: router.url });
  open.push(client, router);
  return { store: new KvSessionStore({ client, ...o }), data, router };
}

const inSeconds = (s: number) => ({ cookie: { expires: new Date(Date.now() + s * 1000).toISOString() } });

describe('KvSessionStore', () => {
  it('is a store for express-session and for @fastify/session (checked by tsc)', async () => {
    const { store } = await setup();
    // As an app writes it: no session type named.
    const plain = new KvSessionStore({ client: store.client });
    const forExpress: Store = plain;
    const forFastify: FastifySessionStore = plain;
    // express-session calls these base Store methods; they must be there at run time too.
    for (const m of ['get', 'set', 'destroy', 'touch', 'all', 'length', 'clear', 'regenerate', 'load', 'createSession'] as const)
      expect(typeof (forExpress as unknown as Record<string, unknown>)[m], m).toBe('function');
    expect(typeof forFastify.destroy).toBe('function');
  });

  it('stores a session under the prefix with the TTL of its cookie, else the ttl option', async () => {
    const { store, data } = await setup({ prefix: 'app:', ttl: 600 });
    await store.set('a', { ...inSeconds(90), user: 'ada' } as never);
    await store.set('b', { user: 'bob' } as never);
    expect(data.get('app:a')?.ttl).toBe('90');
    expect(data.get('app:b')?.ttl).toBe('600');
    expect(data.get('app:a')?.type).toBe('application/json');
    expect(await store.get('a')).toMatchObject({ user: 'ada' });
    expect(await store.get('nope')).toBeNull();
  });

  it('takes the TTL from a function, or none with disableTTL', async () => {
    const f = await setup({ ttl: (s) => ((s as { long?: boolean }).long ? 1000 : 10) });
    await f.store.set('x', { long: true, ...inSeconds(5) } as never);
    expect(f.data.get('sess:x')?.ttl).toBe('1000');
    const n = await setup({ disableTTL: true });
    await n.store.set('x', inSeconds(5));
    expect(n.data.get('sess:x')?.ttl).toBeUndefined();
  });

  it('destroys a session whose cookie has already expired instead of storing it', async () => {
    const { store, data } = await setup();
    await store.set('s', inSeconds(60));
    expect(data.has('sess:s')).toBe(true);
    await store.set('s', inSeconds(-1));
    expect(data.has('sess:s')).toBe(false);
  });

  it('touch gives a new TTL and keeps the stored value as it was', async () => {
    const { store, data } = await setup();
    await store.set('s', { ...inSeconds(60), n: 1 } as never);
    const before = data.get('sess:s')!;
    await store.touch('s', { ...inSeconds(300), n: 2 } as never);
    const after = data.get('sess:s')!;
    expect(after.ttl).toBe('300');
    expect(after.value.equals(before.value)).toBe(true);
    expect(after.ver).toBeGreaterThan(before.ver);
  });

  it('touch never brings back a destroyed session, and a lost race is not an error', async () => {
    const { store, data, router } = await setup();
    await store.touch('gone', inSeconds(60));
    expect(data.has('sess:gone')).toBe(false);
    // Destroyed between the touch's read and its write: the If-Match fails.
    await store.set('s', inSeconds(60));
    const handler = router.handler;
    router.handler = (req) => {
      if (req.method === 'PUT') data.delete('sess:s');
      return handler(req);
    };
    await store.touch('s', inSeconds(600));
    expect(data.has('sess:s')).toBe(false);
    expect(router.seen.filter((r) => r.method === 'PUT').at(-1)!.headers['if-match']).toMatch(/^"\d+"$/);
  });

  it('a touch right after a read is one conditional write; after a write by someone else it reads again', async () => {
    const { store, data, router } = await setup();
    await store.set('s', { ...inSeconds(60), n: 1 } as never);
    const seen = () => router.seen.map((r) => r.method);
    const n0 = router.seen.length;
    expect(await store.get('s')).toMatchObject({ n: 1 });
    await store.touch('s', { ...inSeconds(120), n: 1 } as never);
    expect(seen().slice(n0)).toEqual(['GET', 'PUT']);
    expect(data.get('sess:s')!.ttl).toBe('120');
    // Another process rewrites it between our read and our touch: the touch's If-Match fails, it reads again and keeps the new value.
    await store.get('s');
    const other = new KvSessionStore({ client: store.client });
    await other.set('s', { ...inSeconds(60), n: 2 } as never);
    const n1 = router.seen.length;
    await store.touch('s', { ...inSeconds(300), n: 1 } as never);
    expect(seen().slice(n1)).toEqual(['PUT', 'GET', 'PUT']);
    expect(JSON.parse(data.get('sess:s')!.value.toString())).toMatchObject({ n: 2 });
    expect(data.get('sess:s')!.ttl).toBe('300');
    // Destroyed between the read and the touch: nothing comes back.
    await store.get('s');
    await other.destroy('s');
    await store.touch('s', inSeconds(300));
    expect(data.has('sess:s')).toBe(false);
  });

  it('calls callbacks node-style, errors included', async () => {
    const { store, router } = await setup();
    const got = await new Promise<unknown[]>((resolve) => store.set('s', inSeconds(60), (...a) => resolve(a)));
    expect(got[0]).toBeNull();
    const sess = await new Promise<unknown>((resolve, reject) => store.get('s', (err, s) => (err ? reject(err as Error) : resolve(s))));
    expect(sess).toHaveProperty('cookie');
    router.handler = () => kvErr(400, 'KV_ERR_KEY_TOO_LONG');
    const err = await new Promise<unknown>((resolve) => store.destroy('s', resolve));
    expect(err).toMatchObject({ code: 'KV_ERR_KEY_TOO_LONG' });
  });
});
