// Who is calling: an API key or a session token (bearer or the kv_session
// cookie), resolved to a tenant. The check is cheap: each worker caches what
// it validated for authCacheMs, renews a session's idle TTL in Redis at most
// every few seconds, and drops a cached session or key the moment Redis
// announces its logout or revocation (pub/sub). The subscriber reconnecting
// (messages may have been lost) empties the cache.
import type { IncomingMessage } from 'node:http';
import type { Redis } from 'ioredis';
import { kvError } from '../core/errors.js';
import { API_KEY_PREFIX, IdentityStore, isApiKeyShape, isSessionShape, sha256, type ApiKeyRecord } from '../infra/identity-store.js';

export const SESSION_COOKIE = 'kv_session';

export interface Caller {
  /** null: anonymous (only with dataAuth=false): keys are not namespaced. */
  readonly tenant: string | null;
  readonly kind: 'session' | 'apikey' | 'anonymous';
  /** The API key this caller is, or that created its session. */
  readonly keyId?: string;
  /** The session's hash (sessions only). */
  readonly sessionHash?: string;
  /** Where this caller's scan cursors live, and how long that state lives after each use (undefined: as the session). */
  readonly stateKey?: string;
  readonly stateTtlMs?: number;
  readonly absoluteExpiresAt?: number;
}

export const ANONYMOUS: Caller = Object.freeze({ tenant: null, kind: 'anonymous' });

export interface AuthConfig {
  readonly sessionIdleTimeoutMs: number;
  readonly authCacheMs: number;
  readonly scanCursorTtlMs: number;
}

interface Cached {
  readonly caller: Caller;
  /** The token's SHA-256, as Redis and the revocation messages name it. */
  readonly hash: string;
  readonly validatedAt: number;
  touchedAt: number;
}

/** Most validated callers a worker keeps (the oldest go first). */
const CACHE_MAX = 100_000;

/**
 * The token a request carries (bearer first, then the session cookie), or
 * undefined. The cookie carries a session token only: the router sets it at
 * login, and an API key (long-lived) has no place in a browser's cookie jar.
 */
export function tokenOf(req: Pick<IncomingMessage, 'headers'>): string | undefined {
  const h = req.headers.authorization;
  if (h !== undefined) {
    if (!h.startsWith('Bearer ')) throw kvError('KV_ERR_BAD_CREDENTIALS', 'Authorization must be "Bearer <API key or session token>"');
    return h.slice(7).trim();
  }
  const cookie = req.headers.cookie;
  if (cookie === undefined) return undefined;
  for (const part of cookie.split(';')) {
    const i = part.indexOf('=');
    if (i <= 0 || part.slice(0, i).trim() !== SESSION_COOKIE) continue;
    const token = part.slice(i + 1).trim();
    if (token.startsWith(API_KEY_PREFIX)) throw kvError('KV_ERR_BAD_CREDENTIALS', 'the kv_session cookie carries a session token, not an API key');
    return token;
  }
  return undefined;
}

export class Authenticator {
  readonly #store: IdentityStore;
  readonly #sub: Redis;
  readonly #cfg: AuthConfig;
  /** By token (hashing each request's token would cost more than the lookup). */
  readonly #cache = new Map<string, Cached>();
  /** Token of each cached hash, for revocations. */
  readonly #tokenOf = new Map<string, string>();
  readonly #pending = new Map<string, Promise<Caller>>();
  /** Bumped on every revocation and reconnect: a lookup that started before must not fill the cache. */
  #generation = 0;

  constructor(store: IdentityStore, subscriber: Redis, cfg: AuthConfig) {
    this.#store = store;
    this.#sub = subscriber;
    this.#cfg = cfg;
  }

  async start(): Promise<void> {
    this.#sub.on('message', (channel: string, msg: string) => {
      if (channel !== this.#store.revokedChannel) return;
      const i = msg.indexOf(':');
      this.forget(msg.slice(i + 1));
    });
    // Messages sent while disconnected are lost: start from an empty cache.
    this.#sub.on('ready', () => this.#clear());
    await this.#sub.subscribe(this.#store.revokedChannel);
  }

  /** Drop what is cached for this token hash (a logout or revocation). */
  forget(hash: string): void {
    this.#generation++;
    const token = this.#tokenOf.get(hash);
    if (token !== undefined) this.#drop(token);
  }

  #drop(token: string): void {
    const c = this.#cache.get(token);
    if (!c) return;
    this.#cache.delete(token);
    this.#tokenOf.delete(c.hash);
  }

  #clear(): void {
    this.#generation++;
    this.#cache.clear();
    this.#tokenOf.clear();
  }

  /** The caller behind `token`: from the cache when fresh, else from Redis. Throws KV_ERR_BAD_CREDENTIALS. */
  resolve(token: string): Caller | Promise<Caller> {
    const now = Date.now();
    // Only well-formed tokens are ever cached, so a hit needs no shape check.
    const hit = this.#cache.get(token);
    if (hit && now - hit.validatedAt < this.#cfg.authCacheMs) {
      const c = hit.caller;
      if (c.absoluteExpiresAt !== undefined && c.absoluteExpiresAt <= now) {
        this.#drop(token);
        throw kvError('KV_ERR_BAD_CREDENTIALS', 'the session has expired');
      }
      // Sliding idle timeout: renew it in Redis now and then, not on every request.
      if (c.sessionHash && now - hit.touchedAt > this.#touchEveryMs) {
        hit.touchedAt = now;
        this.#store.touchSession(c.sessionHash, this.#cfg.sessionIdleTimeoutMs, c.absoluteExpiresAt ?? now).catch(() => undefined);
      }
      return c;
    }
    const session = isSessionShape(token);
    if (!session && !isApiKeyShape(token)) throw kvError('KV_ERR_BAD_CREDENTIALS', 'not an API key (kvk_…) or a session token (kvs_…)');
    const hash = hit?.hash ?? sha256(token);
    let p = this.#pending.get(hash);
    if (!p) {
      const generation = this.#generation;
      p = (session ? this.#lookupSession(hash) : this.#lookupKey(hash))
        .then((caller) => {
          if (generation === this.#generation) this.#remember(token, hash, caller);
          return caller;
        })
        .finally(() => this.#pending.delete(hash));
      this.#pending.set(hash, p);
    }
    return p;
  }

  /** Renew a session's idle TTL at most this often (a tenth of the idle timeout, at most every 5 s). */
  get #touchEveryMs(): number {
    return Math.min(5000, Math.floor(this.#cfg.sessionIdleTimeoutMs / 10));
  }

  #remember(token: string, hash: string, caller: Caller): void {
    this.#drop(token);
    if (this.#cache.size >= CACHE_MAX) this.#drop(this.#cache.keys().next().value!);
    const now = Date.now();
    this.#cache.set(token, { caller, hash, validatedAt: now, touchedAt: now });
    this.#tokenOf.set(hash, token);
  }

  async #lookupSession(hash: string): Promise<Caller> {
    const s = await this.#store.session(hash, this.#cfg.sessionIdleTimeoutMs);
    if (!s) throw kvError('KV_ERR_BAD_CREDENTIALS', 'unknown, ended or expired session');
    return {
      tenant: s.tenant,
      kind: 'session',
      keyId: s.keyId,
      sessionHash: hash,
      stateKey: this.#store.sessionKey(hash),
      absoluteExpiresAt: s.absoluteExpiresAt,
    };
  }

  async #lookupKey(hash: string): Promise<Caller> {
    const k: ApiKeyRecord | null = await this.#store.apiKey(hash);
    if (!k) throw kvError('KV_ERR_BAD_CREDENTIALS', 'unknown or revoked API key');
    return { tenant: k.tenant, kind: 'apikey', keyId: k.id, stateKey: this.#store.apiKeyStateKey(k.id), stateTtlMs: this.#cfg.scanCursorTtlMs };
  }

  /** The API key record behind a token (for logging in), checked in Redis. */
  async apiKeyOf(token: string): Promise<ApiKeyRecord> {
    if (!isApiKeyShape(token)) throw kvError('KV_ERR_AUTH_REQUIRED', 'logging in takes an API key (Authorization: Bearer kvk_…)');
    const k = await this.#store.apiKey(sha256(token));
    if (!k) throw kvError('KV_ERR_BAD_CREDENTIALS', 'unknown or revoked API key');
    return k;
  }

  close(): void {
    this.#sub.disconnect();
  }
}
