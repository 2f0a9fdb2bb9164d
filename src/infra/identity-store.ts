// Tenants, API keys and client sessions in Redis. Only a SHA-256 of each API
// key and session token is stored, so the contents of Redis cannot be used to
// log in. A session is a hash with an idle TTL (sliding: routers renew it as
// it is used) and an absolute expiry; a logout or a revoked key is announced
// on a channel so every router worker drops its cached copy at once.
//
//   <p>tenants                    set of tenant names
//   <p>tenant:<name>              {"name","createdAt"}
//   <p>tenant:<name>:apikeys      set of API key ids
//   <p>apikey:<sha256>            {"id","tenant","createdAt"}
//   <p>apikeyid:<id>              the key's sha256
//   <p>apikey-sessions:<id>       set of the sha256 of sessions created with the key
//   <p>apikey-state:<id>          hash: scan cursors of callers that use the key directly
//   <p>session:<sha256>           hash: tenant, keyId, createdAt, absoluteExpiresAt, cursor:<id> ...
//   <p>auth:revoked               channel: "session:<sha256>" or "apikey:<sha256>"
import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { kvError } from '../core/errors.js';
import { validateTenantName } from '../core/tenant.js';

export const API_KEY_PREFIX = 'kvk_';
export const SESSION_PREFIX = 'kvs_';
const API_KEY_RE = /^kvk_([a-z0-9]{12})_[A-Za-z0-9_-]{43}$/;
const SESSION_RE = /^kvs_[A-Za-z0-9_-]{43}$/;

export const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

export const isApiKeyShape = (s: string): boolean => API_KEY_RE.test(s);
export const isSessionShape = (s: string): boolean => SESSION_RE.test(s);

export interface Tenant {
  readonly name: string;
  readonly createdAt: number;
}

export interface ApiKeyRecord {
  readonly id: string;
  readonly tenant: string;
  readonly createdAt: number;
}

export interface SessionRecord {
  readonly tenant: string;
  readonly keyId: string;
  readonly createdAt: number;
  readonly absoluteExpiresAt: number;
}

/** What one scan cursor remembers between pages. */
export interface CursorState {
  readonly prefix: string;
  readonly limit: number;
  /** The last client key returned, or undefined before the first page. */
  readonly after: string | undefined;
  readonly expiresAt: number;
}

/** Unfinished scans one caller may hold; beyond it the oldest page tokens stop working. */
const MAX_CURSORS = 256;

const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
function newId(n: number): string {
  const b = randomBytes(n);
  let s = '';
  for (const x of b) s += ID_ALPHABET[x % ID_ALPHABET.length];
  return s;
}

export class IdentityStore {
  readonly #redis: Redis;
  readonly #p: string;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#p = prefix;
  }

  get revokedChannel(): string {
    return `${this.#p}auth:revoked`;
  }

  sessionKey(hash: string): string {
    return `${this.#p}session:${hash}`;
  }

  /** Scan cursors of anonymous callers (dataAuth=false). */
  get anonymousStateKey(): string {
    return `${this.#p}anonymous-state`;
  }

  apiKeyStateKey(keyId: string): string {
    return `${this.#p}apikey-state:${keyId}`;
  }

  // ------------------------------------------------------------ tenants

  async createTenant(name: string): Promise<Tenant> {
    validateTenantName(name);
    const t: Tenant = { name, createdAt: Date.now() };
    const created = await this.#redis.set(`${this.#p}tenant:${name}`, JSON.stringify(t), 'NX');
    if (created === null) throw kvError('KV_ERR_TENANT_EXISTS', name);
    await this.#redis.sadd(`${this.#p}tenants`, name);
    return t;
  }

  async tenant(name: string): Promise<Tenant | null> {
    const raw = await this.#redis.get(`${this.#p}tenant:${name}`);
    return raw === null ? null : (JSON.parse(raw) as Tenant);
  }

  async listTenants(): Promise<Array<Tenant & { apiKeys: number }>> {
    const names = (await this.#redis.smembers(`${this.#p}tenants`)).sort();
    return Promise.all(
      names.map(async (name) => ({
        ...((await this.tenant(name)) ?? { name, createdAt: 0 }),
        apiKeys: await this.#redis.scard(`${this.#p}tenant:${name}:apikeys`),
      })),
    );
  }

  // ------------------------------------------------------------ API keys

  /** A new API key for `tenant`; the key itself is returned only here. */
  async createApiKey(tenant: string): Promise<ApiKeyRecord & { key: string }> {
    validateTenantName(tenant);
    if (!(await this.tenant(tenant))) throw kvError('KV_ERR_TENANT_NOT_FOUND', tenant);
    const id = newId(12);
    const key = `${API_KEY_PREFIX}${id}_${randomBytes(32).toString('base64url')}`;
    const rec: ApiKeyRecord = { id, tenant, createdAt: Date.now() };
    const hash = sha256(key);
    await this.#redis
      .multi()
      .set(`${this.#p}apikey:${hash}`, JSON.stringify(rec))
      .set(`${this.#p}apikeyid:${id}`, hash)
      .sadd(`${this.#p}tenant:${tenant}:apikeys`, id)
      .exec();
    return { ...rec, key };
  }

  async apiKey(hash: string): Promise<ApiKeyRecord | null> {
    const raw = await this.#redis.get(`${this.#p}apikey:${hash}`);
    return raw === null ? null : (JSON.parse(raw) as ApiKeyRecord);
  }

  /** Revoke a key and end every session created with it; every worker hears of it. */
  async revokeApiKey(id: string): Promise<void> {
    if (!/^[a-z0-9]{12}$/.test(id)) throw kvError('KV_ERR_KEY_NOT_FOUND', JSON.stringify(id.slice(0, 40)));
    const hash = await this.#redis.get(`${this.#p}apikeyid:${id}`);
    if (hash === null) throw kvError('KV_ERR_KEY_NOT_FOUND', id);
    const rec = await this.apiKey(hash);
    const sessions = await this.#redis.smembers(`${this.#p}apikey-sessions:${id}`);
    const m = this.#redis.multi().del(`${this.#p}apikey:${hash}`, `${this.#p}apikeyid:${id}`, `${this.#p}apikey-sessions:${id}`, this.apiKeyStateKey(id));
    if (rec) m.srem(`${this.#p}tenant:${rec.tenant}:apikeys`, id);
    for (const s of sessions) m.del(this.sessionKey(s));
    m.publish(this.revokedChannel, `apikey:${hash}`);
    for (const s of sessions) m.publish(this.revokedChannel, `session:${s}`);
    await m.exec();
  }

  // ------------------------------------------------------------ sessions

  /** A new session of the key's tenant: a fresh 256-bit token, returned only here. */
  async createSession(key: ApiKeyRecord, idleMs: number, absoluteMs: number): Promise<{ token: string; hash: string; record: SessionRecord }> {
    const token = `${SESSION_PREFIX}${randomBytes(32).toString('base64url')}`;
    const hash = sha256(token);
    const now = Date.now();
    const record: SessionRecord = { tenant: key.tenant, keyId: key.id, createdAt: now, absoluteExpiresAt: now + absoluteMs };
    await this.#redis
      .multi()
      .hset(this.sessionKey(hash), { tenant: record.tenant, keyId: record.keyId, createdAt: String(now), absoluteExpiresAt: String(record.absoluteExpiresAt) })
      .pexpire(this.sessionKey(hash), Math.min(idleMs, absoluteMs))
      .sadd(`${this.#p}apikey-sessions:${key.id}`, hash)
      .exec();
    return { token, hash, record };
  }

  /** The session, renewing its idle TTL (not past its absolute expiry); null when it is gone. */
  async session(hash: string, idleMs: number): Promise<SessionRecord | null> {
    const k = this.sessionKey(hash);
    const [[, fields]] = (await this.#redis.multi().hmget(k, 'tenant', 'keyId', 'createdAt', 'absoluteExpiresAt').exec()) as [[unknown, (string | null)[]]];
    const [tenant, keyId, createdAt, abs] = fields;
    if (!tenant || !keyId || !createdAt || !abs) return null;
    const record: SessionRecord = { tenant, keyId, createdAt: Number(createdAt), absoluteExpiresAt: Number(abs) };
    if (record.absoluteExpiresAt <= Date.now()) return null;
    await this.touchSession(hash, idleMs, record.absoluteExpiresAt);
    return record;
  }

  /** Renew the idle TTL of a session that exists (never past its absolute expiry). */
  async touchSession(hash: string, idleMs: number, absoluteExpiresAt: number): Promise<void> {
    const ttl = Math.min(idleMs, absoluteExpiresAt - Date.now());
    if (ttl > 0) await this.#redis.pexpire(this.sessionKey(hash), ttl, 'XX');
  }

  /** The session's idle expiry as Redis holds it (ms since the epoch), or null. */
  async sessionExpiresAt(hash: string): Promise<number | null> {
    const ttl = await this.#redis.pttl(this.sessionKey(hash));
    return ttl > 0 ? Date.now() + ttl : null;
  }

  async endSession(hash: string, keyId: string): Promise<void> {
    await this.#redis
      .multi()
      .del(this.sessionKey(hash))
      .srem(`${this.#p}apikey-sessions:${keyId}`, hash)
      .publish(this.revokedChannel, `session:${hash}`)
      .exec();
  }

  // ------------------------------------------------------------ scan cursors

  /**
   * Store a cursor in the caller's state (its session, or its API key's state) under a new id,
   * and give the state `stateTtlMs` to live (for a session: what is left of its idle timeout, so
   * a hash made anew for a session that ended meanwhile goes soon too).
   */
  async putCursor(stateKey: string, state: CursorState, stateTtlMs: number | undefined): Promise<string> {
    const id = randomBytes(16).toString('base64url');
    const m = this.#redis.multi().hset(stateKey, `cursor:${id}`, JSON.stringify(state)).hlen(stateKey);
    if (stateTtlMs !== undefined) m.pexpire(stateKey, stateTtlMs);
    const [, [, fields]] = (await m.exec()) as [unknown, [unknown, number]];
    if (fields > MAX_CURSORS) await this.#pruneCursors(stateKey);
    return id;
  }

  /** Scans a client started and never finished: drop the expired cursors, and the oldest beyond MAX_CURSORS. */
  async #pruneCursors(stateKey: string): Promise<void> {
    const all = await this.#redis.hgetall(stateKey);
    const now = Date.now();
    const live: Array<[string, number]> = [];
    const drop: string[] = [];
    for (const [f, v] of Object.entries(all)) {
      if (!f.startsWith('cursor:')) continue;
      const x = (JSON.parse(v) as CursorState).expiresAt;
      if (x <= now) drop.push(f);
      else live.push([f, x]);
    }
    live.sort((a, b) => a[1] - b[1]);
    for (const [f] of live.slice(0, Math.max(0, live.length - MAX_CURSORS / 2))) drop.push(f);
    if (drop.length > 0) await this.#redis.hdel(stateKey, ...drop);
  }

  /** Take a cursor (it is used once: the next page gets a new one); null when unknown or expired. */
  async takeCursor(stateKey: string, id: string): Promise<CursorState | null> {
    if (!/^[A-Za-z0-9_-]{22}$/.test(id)) return null;
    const field = `cursor:${id}`;
    const [[, raw]] = (await this.#redis.multi().hget(stateKey, field).hdel(stateKey, field).exec()) as [[unknown, string | null], unknown];
    if (raw === null) return null;
    const c = JSON.parse(raw) as CursorState;
    return c.expiresAt > Date.now() ? c : null;
  }
}
