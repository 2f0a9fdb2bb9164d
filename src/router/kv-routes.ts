// The data API: GET/HEAD/PUT/DELETE /v1/kv/<key>, POST /v1/kv/_batch and the
// paged scan GET /v1/kv. Every request is scoped to its caller's tenant: the
// keys it names are stored under the tenant's namespace (core/tenant.ts), so
// no tenant can name, list or overwrite another's.
import type { IncomingMessage } from 'node:http';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { RouterConfig } from '../core/config.js';
import { KvError, kvError } from '../core/errors.js';
import { OPS } from '../core/protocol.js';
import { decodeKeyFromPath, etag, parseIfMatch, parseTtl, validateContentType, validateKey, validateValue } from '../core/validate.js';
import { checkClientKey, clientKeyOf, storedKey } from '../core/tenant.js';
import { bodyBytes, queryParam, requireJson, targetPath } from '../infra/http.js';
import type { IdentityStore } from '../infra/identity-store.js';
import type { Admission } from './admission.js';
import { ANONYMOUS, tokenOf, type Authenticator, type Caller } from './authenticator.js';
import { parseBatch, runBatch } from './batch.js';
import type { Forwarder } from './forwarder.js';
import { scanPage } from './scan.js';
import type { TenantRateLimiter } from './tenant-rate.js';
import { recordFgLatency } from './fg-latency.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who sent a data request (set by the data API's auth hook). */
    caller: Caller;
  }
}

export const KV_PREFIX = '/v1/kv/';
export const BATCH_PATH = '/v1/kv/_batch';
export const TTL_HEADER = 'x-kv-ttl';

/** Names under /v1/kv/ that are API endpoints, not keys. */
export const RESERVED = new Map([
  ['_batch', ['POST']],
  ['_scan', ['GET']],
]);

export interface KvRoutesDeps {
  readonly config: RouterConfig;
  readonly forwarder: Forwarder;
  readonly admission: Admission;
  readonly callerOf: CallerOf;
  readonly identity: IdentityStore;
}

/** Who sent a data request, once its tenant is within its rate; throws (or rejects with) the refusal. */
export type CallerOf = (req: Pick<IncomingMessage, 'headers'>) => Caller | Promise<Caller>;

/**
 * The data API's credentials check, shared by the Fastify routes and the
 * fast path (kv-fast.ts). insecure=true switches it off as it does the
 * admin token; with dataAuth=false a request without credentials is
 * anonymous, one with credentials is still checked and scoped.
 */
export function callerCheck(config: RouterConfig, auth: Authenticator, rate: TenantRateLimiter): CallerOf {
  const dataAuth = config.dataAuth && !config.insecure;
  const admit = (c: Caller): Caller | Promise<Caller> => {
    if (c.tenant === null) return c;
    const wait = rate.take(c.tenant);
    return wait === undefined ? c : wait.then(() => c);
  };
  return (req) => {
    const token = tokenOf(req);
    if (token === undefined) {
      if (dataAuth)
        throw kvError('KV_ERR_AUTH_REQUIRED', 'send an API key or a session token: Authorization: Bearer kvk_… or kvs_… (or the kv_session cookie)');
      return ANONYMOUS;
    }
    const caller = auth.resolve(token);
    return caller instanceof Promise ? caller.then(admit) : admit(caller);
  };
}

export const SCAN_PATH = '/v1/kv';
const DEFAULT_SCAN_LIMIT = 100;

/**
 * The TTL of a PUT, from `?ttl=` or the x-kv-ttl header; both may be given
 * only when they agree, and an empty value is refused, not read as "none".
 */
export function ttlOf(query: string | undefined, header: string | string[] | undefined, cfg: RouterConfig): number | undefined {
  if (Array.isArray(header)) throw kvError('KV_ERR_BAD_TTL', cfg.maxTtlSeconds, 'x-kv-ttl given more than once');
  if (query === '' || header === '') throw kvError('KV_ERR_BAD_TTL', cfg.maxTtlSeconds, 'an empty value');
  if (query !== undefined && header !== undefined && query !== header) {
    throw kvError(
      'KV_ERR_BAD_TTL',
      cfg.maxTtlSeconds,
      `?ttl=${JSON.stringify(query.slice(0, 20))} and x-kv-ttl: ${JSON.stringify(header.slice(0, 20))} disagree`,
    );
  }
  return parseTtl(query ?? header, cfg);
}

/** A validated client key as the shards store it for `caller`; the limit counts the whole stored key. */
export function storedKeyOf(caller: Caller, key: string, cfg: RouterConfig): string {
  // `key` has passed validateKey: only the namespace's length is left to check.
  checkClientKey(key);
  if (caller.tenant === null) return key;
  const stored = storedKey(caller.tenant, key);
  const bytes = Buffer.byteLength(stored, 'utf8');
  if (bytes > cfg.maxKeyBytes) throw kvError('KV_ERR_KEY_TOO_LONG', bytes, cfg.maxKeyBytes);
  return stored;
}

/** The stored key of a /v1/kv/ request, from the raw URL (strict UTF-8, slashes allowed). */
function keyOf(req: FastifyRequest, cfg: RouterConfig): string {
  const path = targetPath(req.raw.url ?? '');
  const raw = path.slice(KV_PREFIX.length);
  if (RESERVED.has(raw)) throw kvError('KV_ERR_METHOD_NOT_ALLOWED', req.method, path);
  return storedKeyOfPath(req.caller, raw, cfg);
}

/** The stored key of a raw /v1/kv/ path segment for `caller`: decoded, validated, namespaced. */
export function storedKeyOfPath(caller: Caller, raw: string, cfg: RouterConfig): string {
  return storedKeyOf(caller, validateKey(decodeKeyFromPath(raw), cfg), cfg);
}

export const kvRoutes: FastifyPluginAsync<KvRoutesDeps> = async (app, { config, forwarder, admission, callerOf, identity }) => {
  // Each HTTP connection is one client for admission control.
  const one = <T>(req: FastifyRequest, fn: () => Promise<T>) => admission.run(req.raw.socket, 1, fn);

  app.decorateRequest('caller', null as unknown as Caller);
  // Who is calling, and whether the tenant is within its rate. The common
  // case (a cached session or key, budget left) needs no Redis round trip.
  app.addHook('onRequest', (req, _reply, done) => {
    let caller: Caller | Promise<Caller>;
    try {
      caller = callerOf(req.raw);
    } catch (err) {
      return done(err as Error);
    }
    if (!(caller instanceof Promise)) {
      req.caller = caller;
      return done();
    }
    caller.then((c) => {
      req.caller = c;
      done();
    }, done);
  });
  // Each data request's latency, for the rebalance pacing's foreground signal.
  app.addHook('onResponse', (_req, reply, done) => {
    recordFgLatency(reply.elapsedTime);
    done();
  });

  app.get(SCAN_PATH, { config: { query: ['prefix', 'limit', 'page'] } }, async (req) => {
    const c = req.caller;
    const stateKey = c.stateKey ?? identity.anonymousStateKey;
    // A session's state is its own Redis hash: writing a cursor slides its idle TTL, as any use does (and a
    // cursor written just after a logout leaves nothing behind for longer than that).
    const stateTtl =
      c.kind === 'session' ? Math.max(1, Math.min(config.sessionIdleTimeoutMs, (c.absoluteExpiresAt ?? 0) - Date.now())) : config.scanCursorTtlMs;
    const page = queryParam(req, 'page');
    let prefix: string;
    let limit: number;
    let after: string | undefined;
    if (page !== undefined) {
      const cur = await identity.takeCursor(stateKey, page);
      if (!cur) throw kvError('KV_ERR_BAD_PAGE_TOKEN', 'unknown, used, expired, or from another caller');
      const qp = queryParam(req, 'prefix');
      const ql = queryParam(req, 'limit');
      if ((qp !== undefined && qp !== cur.prefix) || (ql !== undefined && Number(ql) !== cur.limit)) {
        throw kvError('KV_ERR_BAD_PAGE_TOKEN', 'prefix and limit belong to the first page; leave them out or give the same');
      }
      ({ prefix, limit, after } = cur);
    } else {
      prefix = queryParam(req, 'prefix') ?? '';
      // Held to the key limit with the tenant's namespace counted, as a key is (the shards refuse a longer one).
      if (prefix !== '') storedKeyOf(c, validateKey(prefix, config), config);
      const ql = queryParam(req, 'limit');
      limit = ql === undefined ? DEFAULT_SCAN_LIMIT : Number(ql);
      if (ql !== undefined && !/^\d{1,5}$/.test(ql)) limit = NaN;
      if (!Number.isSafeInteger(limit) || limit < 1 || limit > config.maxScanKeys) {
        throw kvError('KV_ERR_BAD_QUERY', `limit must be a whole number from 1 to ${config.maxScanKeys}, got ${JSON.stringify((ql ?? '').slice(0, 20))}`);
      }
    }
    const listPrefix = storedKey(c.tenant, prefix);
    const p = await admission.run(req.raw.socket, limit, () =>
      scanPage(forwarder, listPrefix, after === undefined ? undefined : storedKey(c.tenant, after), limit),
    );
    const keys: Array<{ key: string; etag: string; expiresAt?: number }> = [];
    for (const e of p.entries) {
      // An anonymous caller's scan skips the tenants' namespaces.
      const key = clientKeyOf(c.tenant, e.stored);
      if (key !== undefined) keys.push({ key, etag: etag(e.ver), ...(e.x ? { expiresAt: e.x } : {}) });
    }
    let next: string | null = null;
    if (p.next !== undefined) {
      // An anonymous caller's page may end on a tenant's key it skipped: its stored and client keys are the same.
      const nextAfter = c.tenant === null ? p.next : clientKeyOf(c.tenant, p.next)!;
      next = await identity.putCursor(stateKey, { prefix, limit, after: nextAfter, expiresAt: Date.now() + config.scanCursorTtlMs }, stateTtl);
    }
    return { keys, next };
  });

  app.get('/v1/kv/*', async (req, reply) => {
    const k = keyOf(req, config);
    const rec = await one(req, () => forwarder.exec({ o: OPS.GET, k }));
    if (!rec) throw kvError('KV_ERR_NOT_FOUND');
    void reply.header('etag', etag(rec.ver)).type(rec.ct);
    if (rec.x) void reply.header('x-kv-expires-at', String(rec.x));
    return reply.send(Buffer.from(rec.v.buffer, rec.v.byteOffset, rec.v.byteLength));
  });

  app.put('/v1/kv/*', { config: { query: ['ttl'] } }, async (req, reply) => {
    const key = keyOf(req, config);
    const value = validateValue(bodyBytes(req.body), config);
    const ttl = ttlOf(queryParam(req, 'ttl'), req.headers[TTL_HEADER], config);
    const contentType = validateContentType(req.headers['content-type'], config);
    const ifMatch = parseIfMatch(req.headers['if-match']);
    const inm = req.headers['if-none-match'];
    if (inm !== undefined && inm !== '*') throw kvError('KV_ERR_BAD_PRECONDITION', JSON.stringify(inm));
    const r = await one(req, () =>
      forwarder.exec({
        o: OPS.PUT,
        k: key,
        v: value,
        ct: contentType,
        x: ttl ? Date.now() + ttl * 1000 : 0,
        ...(ifMatch !== undefined ? { m: ifMatch } : {}),
        ...(inm === '*' ? { n: true } : {}),
      }),
    );
    return reply.code(204).header('etag', etag(r.ver)).send();
  });

  app.delete('/v1/kv/*', async (req, reply) => {
    const key = keyOf(req, config);
    const ifMatch = parseIfMatch(req.headers['if-match']);
    const r = await one(req, () => forwarder.exec({ o: OPS.DEL, k: key, ...(ifMatch !== undefined ? { m: ifMatch } : {}) }));
    if (!r.deleted) throw kvError('KV_ERR_NOT_FOUND');
    return reply.code(204).send();
  });

  app.post(BATCH_PATH, async (req) => {
    requireJson(req);
    const ops = parseBatch(bodyBytes(req.body), config);
    const clientKeys = ops.map((op) => op.key);
    const scoped = ops.map((op, n) => {
      try {
        return { ...op, key: storedKeyOf(req.caller, op.key, config) };
      } catch (err) {
        throw err instanceof KvError ? new KvError(err.code, `ops[${n}]: ${err.message}`, { index: n }) : err;
      }
    });
    const results = await admission.run(req.raw.socket, ops.length, () => runBatch(scoped, forwarder));
    return { results: results.map((r, n) => ({ ...r, key: clientKeys[n]! })) };
  });
};
