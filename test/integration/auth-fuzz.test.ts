// Credentials and page tokens at their edges, on a router with dataAuth=true
// and two workers: a revoked API key and an ended session stop working on
// every worker at once (their cached copies included), a page token works
// once and only for the session or key that got it, a kv_session cookie
// carries a session token and nothing else, an expired session is refused,
// and a scan prefix is held to the key limit like a key.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, startRouter, type RouterProc } from '../helpers/procs.js';
import { request, type HttpResult } from '../helpers/http.js';
import { waitUntil } from '../../src/local/wait.js';
import { sha256 } from '../../src/infra/identity-store.js';
import { bearer, createApiKey, login, logout, revokeApiKey, scanPage, sessionCookie, tenantWithSession, type TenantCreds } from '../helpers/tenants.js';

const WORKERS = 2;
const MAX_KEY = 200;
/** A revocation or logout reaches every worker over pub/sub within this (well under authCacheMs). */
const PROPAGATION_MS = 2000;
const AUTH_CACHE_MS = 10_000;

let c: TestCluster;
let a: TenantCreds;
let b: TenantCreds;

beforeAll(async () => {
  c = await TestCluster.start({
    shards: 2,
    workers: WORKERS,
    routerSet: { dataAuth: 'true', authCacheMs: AUTH_CACHE_MS, maxKeyBytes: MAX_KEY },
    shardSet: { maxKeyBytes: MAX_KEY },
  });
  a = await tenantWithSession(c.url, 'afa');
  b = await tenantWithSession(c.url, 'afb');
  for (let n = 0; n < 12; n++) {
    for (const [t, value] of [
      [a, `value-a-${n}`],
      [b, `SECRET-B-${n}`],
    ] as const) {
      const r = await request('PUT', `${c.url}/v1/kv/k-${String(n).padStart(2, '0')}`, {
        headers: { ...bearer(t.key.key), 'content-type': 'text/plain' },
        body: value,
      });
      if (r.status !== 204) throw new Error(`seed: ${r.status} ${r.text}`);
    }
  }
}, 90_000);

afterAll(async () => {
  await c?.stop();
}, 60_000);

const codeOf = (r: HttpResult): unknown => {
  try {
    return r.json<{ code?: unknown }>().code;
  } catch {
    return undefined;
  }
};
const summary = (r: HttpResult) => `${r.status} ${String(codeOf(r))} (worker ${String(r.headers['x-kv-worker'])})`;

/**
 * Answers of `url` with `headers` from every worker (fresh connections), as
 * `worker -> status code`, until each worker has answered once.
 */
async function fromEveryWorker(method: string, url: string, headers: Record<string, string>): Promise<Map<string, HttpResult>> {
  const seen = new Map<string, HttpResult>();
  for (let i = 0; i < 40 && seen.size < WORKERS; i++) {
    const r = await request(method, url, { headers, fresh: true });
    const w = String(r.headers['x-kv-worker']);
    if (!seen.has(w)) seen.set(w, r);
  }
  if (seen.size < WORKERS) throw new Error(`reached only workers ${[...seen.keys()].join(', ')}`);
  return seen;
}

/**
 * After `act`, every worker must refuse `headers` with 401 `code` within
 * PROPAGATION_MS, and keep refusing: the problems seen (a worker that still
 * answered 2xx past the bound, or never refused).
 */
async function refusedEverywhereAfter(act: () => Promise<void>, headers: Record<string, string>, code: string): Promise<string[]> {
  const url = `${c.url}/v1/kv/k-00`;
  // Warm every worker's cache, so that what is tested is the cached copy being dropped.
  const warm = await fromEveryWorker('GET', url, headers);
  const problems = [...warm].filter(([, r]) => r.status !== 200).map(([w, r]) => `before: worker ${w} answered ${summary(r)}`);
  await act();
  const done = Date.now();
  const refused = new Set<string>();
  while (refused.size < WORKERS && Date.now() - done < PROPAGATION_MS + 3000) {
    const r = await request('GET', url, { headers, fresh: true });
    const w = String(r.headers['x-kv-worker']);
    const late = Date.now() - done;
    if (r.status === 401 && codeOf(r) === code) refused.add(w);
    else if ((r.status !== 200 || refused.has(w) || late > PROPAGATION_MS) && problems.length < 20) problems.push(`${late} ms after: ${summary(r)}`);
  }
  if (refused.size < WORKERS) problems.push(`refused on workers ${[...refused].join(', ') || 'none'} only`);
  // And it stays refused, on every worker.
  for (const [w, r] of await fromEveryWorker('GET', url, headers))
    if (r.status !== 401 || codeOf(r) !== code) problems.push(`afterwards: worker ${w} answered ${summary(r)}`);
  return problems;
}

describe('credentials and page tokens (dataAuth=true)', () => {
  it('a revoked API key, and the sessions made with it, are refused on every worker within the bound', async () => {
    const key = await createApiKey(c.url, a.name);
    const session = await login(c.url, key.key);
    // The session's cache is warmed first, then the key's; the revocation ends both.
    await fromEveryWorker('GET', `${c.url}/v1/kv/k-00`, bearer(session));
    const problems = await refusedEverywhereAfter(() => revokeApiKey(c.url, key.id), bearer(key.key), 'KV_ERR_BAD_CREDENTIALS');
    for (const [w, r] of await fromEveryWorker('GET', `${c.url}/v1/kv/k-00`, bearer(session)))
      if (r.status !== 401 || codeOf(r) !== 'KV_ERR_BAD_CREDENTIALS') problems.push(`session of the revoked key: worker ${w} answered ${summary(r)}`);
    const again = await request('POST', `${c.url}/v1/sessions`, { headers: bearer(key.key) });
    if (again.status !== 401) problems.push(`logging in with the revoked key: ${summary(again)}`);
    // The tenant's other key is untouched.
    const other = await request('GET', `${c.url}/v1/kv/k-00`, { headers: bearer(a.key.key) });
    if (other.status !== 200 || other.text !== 'value-a-0') problems.push(`the tenant's other key: ${summary(other)} ${other.text}`);
    expect(problems).toEqual([]);
  });

  it('a session that logged out is refused on every worker within the bound, by bearer and by cookie', async () => {
    const session = await login(c.url, a.key.key);
    await fromEveryWorker('GET', `${c.url}/v1/kv/k-00`, sessionCookie(session));
    const problems = await refusedEverywhereAfter(() => logout(c.url, session), bearer(session), 'KV_ERR_BAD_CREDENTIALS');
    for (const [w, r] of await fromEveryWorker('GET', `${c.url}/v1/kv/k-00`, sessionCookie(session)))
      if (r.status !== 401 || codeOf(r) !== 'KV_ERR_BAD_CREDENTIALS') problems.push(`by cookie: worker ${w} answered ${summary(r)}`);
    const current = await request('GET', `${c.url}/v1/sessions/current`, { headers: bearer(session) });
    if (current.status !== 401) problems.push(`GET /v1/sessions/current: ${summary(current)}`);
    expect(problems).toEqual([]);
  });

  it('a session past its absolute expiry is refused, on every worker', async () => {
    // A router whose sessions end one second after login, on the same Redis.
    let short: RouterProc | undefined;
    try {
      short = await startRouter({
        redisUrl: c.redis.url,
        prefix: c.prefix,
        workers: 1,
        set: { dataAuth: 'true', sessionIdleTimeoutMs: 1000, sessionAbsoluteTimeoutMs: 1000, rebalanceCoordinator: 'false' },
      });
      // Fresh connections to the routers this test stops: an idle keep-alive one would hold their drain.
      const r = await request('POST', `${short.url}/v1/sessions`, { headers: bearer(a.key.key), fresh: true });
      expect(r.status).toBe(201);
      const { token, absoluteExpiresAt } = r.json<{ token: string; absoluteExpiresAt: number }>();
      expect(absoluteExpiresAt - Date.now()).toBeLessThanOrEqual(1000);
      // It works until then: on the main router too, whose own timeouts are long.
      const before = await request('GET', `${c.url}/v1/kv/k-01`, { headers: bearer(token) });
      if (Date.now() < absoluteExpiresAt) expect(summary(before)).toMatch(/^200 /);
      await waitUntil(async () => (await request('GET', `${c.url}/v1/kv/k-01`, { headers: bearer(token), fresh: true })).status === 401, {
        timeoutMs: 5000,
        what: 'the session to expire',
      });
      expect(Date.now()).toBeGreaterThanOrEqual(absoluteExpiresAt);
      const after = await fromEveryWorker('GET', `${c.url}/v1/kv/k-01`, bearer(token));
      expect([...after.values()].map((x) => `${x.status} ${String(codeOf(x))}`)).toEqual(Array(WORKERS).fill('401 KV_ERR_BAD_CREDENTIALS'));
      const cur = await request('GET', `${c.url}/v1/sessions/current`, { headers: sessionCookie(token) });
      expect(summary(cur)).toMatch(/^401 KV_ERR_BAD_CREDENTIALS/);
    } finally {
      await short?.stop();
    }
  });

  it('a page asked for by a session that expired a moment ago (still trusted by the worker) leaves no state without an expiry in Redis', async () => {
    let short: RouterProc | undefined;
    try {
      // Sessions idle out after a second; the worker trusts what it validated for a minute.
      short = await startRouter({
        redisUrl: c.redis.url,
        prefix: c.prefix,
        workers: 1,
        set: { dataAuth: 'true', sessionIdleTimeoutMs: 1000, authCacheMs: 60_000, rebalanceCoordinator: 'false' },
      });
      const url = short.url;
      const r = await request('POST', `${url}/v1/sessions`, { headers: bearer(a.key.key), fresh: true });
      expect(r.status).toBe(201);
      const token = r.json<{ token: string }>().token;
      const redisKey = `${c.prefix}session:${sha256(token)}`;
      await scanPage(url, bearer(token), 'prefix=k-&limit=2', { fresh: true });
      await waitUntil(async () => (await c.admin.exists(redisKey)) === 0, { timeoutMs: 10_000, what: 'the session to idle out in Redis' });
      // The worker still trusts it: the page is served, and its token must not bring the session's key back for good.
      const page = await scanPage(url, bearer(token), 'prefix=k-&limit=2', { fresh: true });
      expect(page.next).toEqual(expect.any(String));
      const ttl = await c.admin.pttl(redisKey);
      expect(ttl === -2 || ttl > 0, `the session's key has PTTL ${ttl}`).toBe(true);
      // And the session is not back.
      const cur = await request('GET', `${c.url}/v1/sessions/current`, { headers: bearer(token) });
      expect(summary(cur)).toMatch(/^401 KV_ERR_BAD_CREDENTIALS/);
    } finally {
      await short?.stop();
    }
  });

  it('a page token works once, and only for the session or API key that got it', async () => {
    const x = a.session;
    const y = await login(c.url, a.key.key);
    const first = await scanPage(c.url, bearer(x), 'prefix=k-&limit=5');
    expect(first.keys.map((k) => k.key)).toEqual(['k-00', 'k-01', 'k-02', 'k-03', 'k-04']);
    expect(first.next).toEqual(expect.any(String));
    const page = `${c.url}/v1/kv?page=${encodeURIComponent(first.next!)}`;
    const refused: Array<[string, Record<string, string>]> = [
      ['another session of the same key', bearer(y)],
      ['another session of the same key, by cookie', sessionCookie(y)],
      ['the API key that made the session', bearer(a.key.key)],
      ["another tenant's session", bearer(b.session)],
      ["another tenant's API key", bearer(b.key.key)],
    ];
    const problems: string[] = [];
    for (const [who, headers] of refused) {
      const r = await request('GET', page, { headers });
      if (r.status !== 400 || codeOf(r) !== 'KV_ERR_BAD_PAGE_TOKEN') problems.push(`${who}: ${summary(r)} ${r.text.slice(0, 200)}`);
      if (r.text.includes('SECRET-B') || r.text.includes('k-05')) problems.push(`${who}: the answer shows keys: ${r.text.slice(0, 200)}`);
    }
    // The refusals did not use the token up: its own session gets the next page, once, by cookie as well as by bearer.
    const second = await request('GET', page, { headers: sessionCookie(x) });
    if (second.status !== 200) problems.push(`its own session: ${summary(second)}`);
    else expect(second.json<{ keys: Array<{ key: string }> }>().keys.map((k) => k.key)).toEqual(['k-05', 'k-06', 'k-07', 'k-08', 'k-09']);
    const twice = await request('GET', page, { headers: bearer(x) });
    if (twice.status !== 400 || codeOf(twice) !== 'KV_ERR_BAD_PAGE_TOKEN') problems.push(`used twice: ${summary(twice)}`);
    expect(problems).toEqual([]);
  });

  it("a page token with another prefix or limit than its first page's is refused, and that uses it up", async () => {
    const problems: string[] = [];
    for (const q of ['prefix=x', 'prefix=', 'limit=6', 'limit=x', 'limit=0', 'prefix=k-&limit=5&limit=5']) {
      const first = await scanPage(c.url, bearer(a.key.key), 'prefix=k-&limit=5');
      const page = `${c.url}/v1/kv?page=${encodeURIComponent(first.next!)}`;
      const r = await request('GET', `${page}&${q}`, { headers: bearer(a.key.key) });
      const want = q.endsWith('&limit=5') ? 'KV_ERR_BAD_QUERY' : 'KV_ERR_BAD_PAGE_TOKEN';
      if (r.status !== 400 || codeOf(r) !== want) problems.push(`&${q}: ${summary(r)}, expected 400 ${want}`);
      // A refused query never got to the token; a mismatch took it.
      const retry = await request('GET', page, { headers: bearer(a.key.key) });
      const usedUp = want === 'KV_ERR_BAD_PAGE_TOKEN';
      if (usedUp ? retry.status !== 400 || codeOf(retry) !== 'KV_ERR_BAD_PAGE_TOKEN' : retry.status !== 200)
        problems.push(`&${q}, then the token alone: ${summary(retry)}`);
      // The same prefix and limit are fine (an API key's state, not a session's).
      const same = await scanPage(c.url, bearer(a.key.key), 'prefix=k-&limit=5');
      const ok = await request('GET', `${c.url}/v1/kv?page=${encodeURIComponent(same.next!)}&prefix=k-&limit=5`, { headers: bearer(a.key.key) });
      if (ok.status !== 200) problems.push(`the same prefix and limit: ${summary(ok)}`);
    }
    expect(problems).toEqual([]);
  });

  it('a tenant lists and reads only its own keys, whatever the prefix', async () => {
    const all: string[] = [];
    let next: string | null = null;
    for (let n = 0; n < 20; n++) {
      const p = await scanPage(c.url, bearer(a.session), next === null ? 'limit=3' : `page=${encodeURIComponent(next)}`);
      all.push(...p.keys.map((k) => k.key));
      next = p.next;
      if (next === null) break;
    }
    expect(next).toBeNull();
    expect(all).toEqual(Array.from({ length: 12 }, (_, n) => `k-${String(n).padStart(2, '0')}`));
    const r = await request('GET', `${c.url}/v1/kv/k-03`, { headers: bearer(a.session) });
    expect(r.text).toBe('value-a-3');
    const batch = await request('POST', `${c.url}/v1/kv/_batch`, {
      headers: { ...bearer(a.session), 'content-type': 'application/json' },
      body: JSON.stringify({ ops: [{ op: 'get', key: 'k-03' }] }),
    });
    expect(batch.text).toContain('value-a-3');
    expect(batch.text).not.toContain('SECRET-B');
    // A prefix or key that names the tenant namespace is refused, not read.
    for (const path of ['/v1/kv/%EF%BF%BFafb%EF%BF%BFk-03', '/v1/kv?prefix=%EF%BF%BFafb%EF%BF%BF', '/v1/kv?prefix=%EF%BF%BE', '/v1/kv/k%EF%BF%BE']) {
      const x = await request('GET', `${c.url}${path}`, { headers: bearer(a.session) });
      expect(`${path}: ${summary(x)}`).toMatch(/: 400 KV_ERR_KEY_INVALID/);
    }
  });

  it('a kv_session cookie that carries an API key is refused', async () => {
    const problems: string[] = [];
    for (const path of ['/v1/kv/k-00', '/v1/kv?prefix=k-', '/v1/sessions/current']) {
      const r = await request('GET', `${c.url}${path}`, { headers: sessionCookie(a.key.key) });
      if (r.status !== 401 || codeOf(r) !== 'KV_ERR_BAD_CREDENTIALS') problems.push(`GET ${path}: ${summary(r)}`);
    }
    const w = await request('PUT', `${c.url}/v1/kv/cookie-key`, { headers: sessionCookie(a.key.key), body: 'x' });
    if (w.status !== 401 || codeOf(w) !== 'KV_ERR_BAD_CREDENTIALS') problems.push(`PUT: ${summary(w)}`);
    const gone = await request('GET', `${c.url}/v1/kv/cookie-key`, { headers: bearer(a.key.key) });
    if (gone.status !== 404) problems.push(`the PUT by cookie wrote: ${summary(gone)}`);
    // A session token in the cookie works (the cookie is for sessions).
    const ok = await request('GET', `${c.url}/v1/kv/k-00`, { headers: sessionCookie(a.session) });
    if (ok.status !== 200 || ok.text !== 'value-a-0') problems.push(`a session in the cookie: ${summary(ok)}`);
    expect(problems).toEqual([]);
  });

  it("an anonymous caller's scan (dataAuth=false) walks past the tenants' namespaces to its end, and lists none of their keys", async () => {
    let open: RouterProc | undefined;
    try {
      open = await startRouter({
        redisUrl: c.redis.url,
        prefix: c.prefix,
        workers: 1,
        set: { dataAuth: 'false', rebalanceCoordinator: 'false', maxKeyBytes: MAX_KEY },
      });
      // Keys on both sides of the namespaces (U+FFFF sorts below 4-byte UTF-8).
      const mine = ['anon-1', 'anon-2', 'zz', '\u{1F600}-after'];
      for (const k of mine) expect((await request('PUT', `${open.url}/v1/kv/${encodeURIComponent(k)}`, { body: 'anon', fresh: true })).status).toBe(204);
      const listed: string[] = [];
      let next: string | null = null;
      let pages = 0;
      for (; pages < 100; pages++) {
        const p = await scanPage(open.url, {}, next === null ? 'limit=2' : `page=${encodeURIComponent(next)}`, { fresh: true });
        listed.push(...p.keys.map((k) => k.key));
        next = p.next;
        if (next === null) break;
      }
      expect(next, `the walk did not end within ${pages} pages; it listed ${listed.length} keys`).toBeNull();
      expect(listed).toEqual(mine);
    } finally {
      await open?.stop();
    }
  });

  it('a page holds at most limit keys', async () => {
    const problems: string[] = [];
    for (const limit of [1, 2, 5, 11]) {
      const seen: string[] = [];
      let next: string | null = null;
      for (let n = 0; n < 30; n++) {
        const p = await scanPage(c.url, bearer(b.session), next === null ? `prefix=k-&limit=${limit}` : `page=${encodeURIComponent(next)}`);
        if (p.keys.length > limit) problems.push(`limit=${limit}: a page of ${p.keys.length} keys`);
        seen.push(...p.keys.map((k) => k.key));
        next = p.next;
        if (next === null) break;
      }
      if (seen.length !== 12 || new Set(seen).size !== 12) problems.push(`limit=${limit}: the walk listed ${JSON.stringify(seen)}`);
    }
    expect(problems).toEqual([]);
  });

  it('a scan prefix is held to the key limit with the namespace counted, like a key', async () => {
    const problems: string[] = [];
    for (const n of [MAX_KEY - 8, MAX_KEY - 1, MAX_KEY]) {
      const prefix = 'p'.repeat(n);
      const r = await request('GET', `${c.url}/v1/kv?prefix=${prefix}`, { headers: bearer(a.session) });
      const k = await request('GET', `${c.url}/v1/kv/${prefix}`, { headers: bearer(a.session) });
      // A key that long is too long in the namespace; a prefix that long is the same.
      if (k.status !== 400 || codeOf(k) !== 'KV_ERR_KEY_TOO_LONG') problems.push(`key of ${n} bytes: ${summary(k)}`);
      if (r.status !== 400 || codeOf(r) !== 'KV_ERR_KEY_TOO_LONG') problems.push(`prefix of ${n} bytes: ${summary(r)} ${r.text.slice(0, 200)}`);
    }
    const ok = await request('GET', `${c.url}/v1/kv?prefix=${'p'.repeat(MAX_KEY - 20)}`, { headers: bearer(a.session) });
    if (ok.status !== 200) problems.push(`a prefix within the limit: ${summary(ok)}`);
    expect(problems).toEqual([]);
  });
});
