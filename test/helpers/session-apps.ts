// The suite that runs KvSessionStore under a real session framework
// (test/integration/session-express.test.ts, session-fastify.test.ts): the
// framework runs as two app processes (test/fixtures/session-*-app.mjs) on
// one store, and every "browser" sends its requests to the two in turn,
// carrying its cookie. A session made on one process is the same on the
// other, counts exactly, ends everywhere on logout, and expires with its
// cookie. The apps reach a cluster with dataAuth on through a KvClient with
// an API key of their tenant.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvClient, KvSessionStore } from '../../src/index.js';
import { Child } from '../../src/local/child.js';
import { waitUntil } from '../../src/local/wait.js';
import { forEachLimit } from '../../dev/http.js';
import { TestCluster } from './procs.js';
import { createApiKey, createTenant } from './tenants.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures');
const SESSIONS = 1000;
const INCREMENTS = 3;
const CONCURRENCY = 100;

interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** A browser: a cookie jar, and request n goes to app process n % 2. */
class Browser {
  readonly #apps: readonly string[];
  readonly #jar = new Map<string, string>();
  #n = 0;

  readonly #agent: Agent;

  constructor(agent: Agent, apps: readonly string[], first = 0) {
    this.#agent = agent;
    this.#apps = apps;
    this.#n = first;
  }

  async send(method: 'GET' | 'POST', p: string, json?: object): Promise<Answer> {
    const base = this.#apps[this.#n++ % this.#apps.length]!;
    const cookie = [...this.#jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await request(base + p, {
      method,
      dispatcher: this.#agent,
      headers: { ...(cookie ? { cookie } : {}), ...(json ? { 'content-type': 'application/json' } : {}) },
      ...(json ? { body: JSON.stringify(json) } : {}),
    });
    const set = res.headers['set-cookie'];
    for (const c of Array.isArray(set) ? set : set ? [set] : []) {
      const [pair] = c.split(';');
      const i = pair!.indexOf('=');
      this.#jar.set(pair!.slice(0, i).trim(), pair!.slice(i + 1).trim());
    }
    const text = await res.body.text();
    return { status: res.statusCode, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  }
}

export interface Framework {
  readonly name: string;
  /** The app's file in test/fixtures. */
  readonly script: string;
  /** The store's key prefix. */
  readonly prefix: string;
}

/** The whole suite for one framework, on a cluster of its own. */
export function sessionStoreSuite({ name, script, prefix }: Framework): void {
  let cluster: TestCluster;
  let apiKey: string;
  let kv: KvClient;
  const agent = new Agent({ connections: CONCURRENCY, pipelining: 1 });
  const procs: Child[] = [];
  let apps: string[] = [];
  let pids: number[] = [];

  beforeAll(async () => {
    cluster = await TestCluster.start({ routerSet: { dataAuth: 'true' } });
    await createTenant(cluster.url, 'webapp');
    apiKey = (await createApiKey(cluster.url, 'webapp')).key;
    kv = new KvClient({ urls: cluster.url, apiKey });
    for (let i = 0; i < 2; i++) {
      procs.push(new Child(path.join(FIXTURES, script), [], { env: { ...process.env, KV_URLS: cluster.url, KV_API_KEY: apiKey, SESSION_PREFIX: prefix } }));
    }
    const ready = await Promise.all(procs.map((p) => p.ready(20_000)));
    apps = ready.map((m) => `http://127.0.0.1:${Number(m['port'])}`);
    pids = procs.map((p) => p.pid);
  });
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop(10_000)));
    await agent.close();
    await kv?.close();
    await cluster?.stop();
  });

  describe(`KvSessionStore with ${name} on two app processes`, () => {
    const stored = async (id: string) => (await kv.getJson<Record<string, unknown>>(prefix + id))?.value;

    it('a session made on one process counts on both, and logout ends it everywhere', async () => {
      const b = new Browser(agent, apps);
      const login = await b.send('POST', '/login', { user: 'ada' });
      expect(login.status).toBe(200);
      const id = String(login.body['id']);
      const servedBy = new Set<unknown>([login.body['pid']]);
      for (let i = 1; i <= 6; i++) {
        const r = await b.send('POST', '/incr');
        expect(r.status).toBe(200);
        expect(r.body).toMatchObject({ user: 'ada', count: i });
        servedBy.add(r.body['pid']);
      }
      expect([...servedBy].sort()).toEqual([...pids].sort());
      expect(await stored(id)).toMatchObject({ user: 'ada', count: 6 });

      const out = await b.send('POST', '/logout');
      expect(out.status).toBe(200);
      expect(await stored(id)).toBeUndefined();
      for (let i = 0; i < 2; i++) {
        const r = await b.send('GET', '/me');
        expect(r.status).toBe(401);
        expect(r.body['session']).toBe(false);
      }
      const again = await b.send('POST', '/incr');
      expect(again.status).toBe(401);
      expect(await stored(id)).toBeUndefined();
    });

    it('a session expires with its cookie and is gone from the store', async () => {
      const b = new Browser(agent, apps, 1);
      const login = await b.send('POST', '/login', { user: 'bob', maxAgeMs: 1500 });
      const id = String(login.body['id']);
      const e = await kv.get(prefix + id);
      expect(e).toBeDefined();
      expect(e!.expiresAt).toBeGreaterThan(Date.now());
      expect(e!.expiresAt!).toBeLessThanOrEqual(Date.now() + 2500);
      // Watch the store only: a request to an app would extend the session.
      await waitUntil(async () => (await kv.get(prefix + id)) === undefined, { timeoutMs: 10_000, intervalMs: 100, what: 'the session to expire' });
      for (let i = 0; i < 2; i++) expect((await b.send('GET', '/me')).status).toBe(401);
      expect(await kv.get(prefix + id)).toBeUndefined();
    });

    it(`keeps the counters of ${SESSIONS} concurrent sessions exact`, async () => {
      const ids: string[] = new Array<string>(SESSIONS);
      const wrong: string[] = [];
      await forEachLimit(
        Array.from({ length: SESSIONS }, (_, i) => i),
        CONCURRENCY,
        async (i) => {
          const b = new Browser(agent, apps, i);
          const user = `u${i}`;
          const login = await b.send('POST', '/login', { user });
          if (login.status !== 200) return void wrong.push(`${user} login: ${login.status} ${JSON.stringify(login.body)}`);
          ids[i] = String(login.body['id']);
          for (let n = 1; n <= INCREMENTS; n++) {
            const r = await b.send('POST', '/incr');
            if (r.status !== 200 || r.body['count'] !== n || r.body['user'] !== user) wrong.push(`${user} incr ${n}: ${r.status} ${JSON.stringify(r.body)}`);
          }
        },
      );
      expect(wrong).toEqual([]);
      expect(new Set(ids).size).toBe(SESSIONS);
      // What the store holds, read apart from the apps.
      const res = await kv.batch(ids.map((id) => ({ op: 'get' as const, key: prefix + id })));
      const counts = res.map((r, i) => {
        const s = r.value ? (JSON.parse(Buffer.from(r.value).toString('utf8')) as { user: string; count: number }) : undefined;
        return s?.user === `u${i}` ? s.count : -1;
      });
      expect(counts.filter((c) => c !== INCREMENTS)).toEqual([]);
    });

    it('lists, counts and clears the sessions under its prefix', async () => {
      const store = new KvSessionStore({ client: kv, prefix, scanCount: 250 });
      const ids = (await store.ids())!;
      expect(ids.length).toBeGreaterThanOrEqual(SESSIONS);
      expect(await store.length()).toBe(ids.length);
      const all = (await store.all())!;
      expect(all.map((s) => s.id).sort()).toEqual([...ids].sort());
      expect(all.filter((s: { count?: number }) => s.count === INCREMENTS).length).toBeGreaterThanOrEqual(SESSIONS);
      await store.clear();
      expect(await store.length()).toBe(0);
      expect(await kv.get(prefix + ids[0]!)).toBeUndefined();
    });
  });
}
