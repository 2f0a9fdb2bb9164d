// KvSessionStore: web sessions of an Express or Fastify app kept in shardkv,
// as TTL'd keys of the client's tenant (docs/client.md). It implements the
// store contract of express-session (get, set, destroy, touch, all, length,
// clear, plus the base Store's regenerate, load and createSession) and of
// @fastify/session (get, set, destroy with callbacks), without depending on
// either: express-session is loaded only when it calls createSession(), and
// so is already installed.
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { KvError } from '../core/errors.js';
import type { KvClient } from './kv-client.js';

/** The part of a session this store reads: its cookie's expiry. */
export interface SessionLike {
  cookie?: { expires?: Date | string | null | undefined } | undefined;
}

export interface SessionSerializer<S> {
  parse(text: string): S;
  stringify(session: S): string;
}

/**
 * The session type when none is named: loose on purpose, so the same store
 * type-checks as an express-session Store and a @fastify/session store,
 * whose session types differ. Name yours for a typed store.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnySession = any;

export interface KvSessionStoreOptions<S extends SessionLike = AnySession> {
  readonly client: KvClient;
  /** Put before each session id to make its key (default `sess:`). */
  readonly prefix?: string;
  /** Seconds a session lives when its cookie has no expiry, or a function that decides for each session (default 86400). */
  readonly ttl?: number | ((session: S) => number);
  /** Store sessions without a TTL (they live until destroyed). */
  readonly disableTTL?: boolean;
  /** touch() does nothing (express-session's resave: false then never extends a session's TTL). */
  readonly disableTouch?: boolean;
  /** How a session becomes the stored text and back (default JSON). */
  readonly serializer?: SessionSerializer<S>;
  /** Keys per scan page (and per batch) for all(), ids(), length() and clear() (default 100). */
  readonly scanCount?: number;
}

type Callback<T = void> = (err: unknown, value?: T) => void;

/** A stored session as all() hands it out: with its id. */
export type StoredSession<S> = S & { id: string };

const DEFAULT_TTL_S = 86_400;
const JSON_TYPE = 'application/json';
const TEXT_TYPE = 'text/plain; charset=utf-8';

/** Hand a promise's outcome to a node-style callback, outside the promise (so a throwing callback is not swallowed). */
function settle<T>(p: Promise<T>, cb: Callback<T> | undefined): Promise<T> | undefined {
  if (cb === undefined) return p;
  p.then(
    (v) => process.nextTick(cb, null, v),
    (err: unknown) => process.nextTick(cb, err),
  );
  return undefined;
}

interface ExpressStoreProto {
  createSession(this: unknown, req: unknown, sess: unknown): unknown;
}
let expressStore: ExpressStoreProto | undefined;

/** express-session's Store.prototype, loaded the first time express-session asks for it. */
function expressStoreProto(): ExpressStoreProto {
  if (expressStore === undefined) {
    const mod = createRequire(import.meta.url)('express-session') as { Store: { prototype: ExpressStoreProto } };
    expressStore = mod.Store.prototype;
  }
  return expressStore;
}

const isGone = (err: unknown) => err instanceof KvError && (err.code === 'KV_ERR_PRECONDITION_FAILED' || err.code === 'KV_ERR_NOT_FOUND');

/** How long a read's version is used by a touch that follows it, and how many reads are kept for that. */
const RECENT_MS = 2000;
const RECENT_MAX = 10_000;

interface RecentRead {
  readonly value: string;
  readonly version: number;
  readonly contentType: string;
  readonly at: number;
}

export class KvSessionStore<S extends SessionLike = AnySession> extends EventEmitter {
  readonly client: KvClient;
  readonly prefix: string;
  readonly #ttl: number | ((session: S) => number);
  readonly #disableTTL: boolean;
  readonly #disableTouch: boolean;
  readonly #serializer: SessionSerializer<S>;
  readonly #scanCount: number;
  /**
   * The last read of each session in this process, for a moment: express-session
   * touches a session at the end of the request that read it, and with the
   * version of that read the touch is one conditional write instead of a read
   * and a write.
   */
  readonly #recent = new Map<string, RecentRead>();
  /** Set by express-session on the store it is given: makes a new session on a request. */
  generate?: (req: unknown) => void;

  constructor(o: KvSessionStoreOptions<S>) {
    super();
    if (o?.client === undefined) throw new TypeError('KvSessionStore needs a KvClient as the "client" option');
    this.client = o.client;
    this.prefix = o.prefix ?? 'sess:';
    this.#ttl = o.ttl ?? DEFAULT_TTL_S;
    this.#disableTTL = o.disableTTL ?? false;
    this.#disableTouch = o.disableTouch ?? false;
    this.#serializer = o.serializer ?? (JSON as SessionSerializer<S>);
    this.#scanCount = o.scanCount ?? 100;
    if (!Number.isInteger(this.#scanCount) || this.#scanCount < 1) throw new TypeError('scanCount must be a whole number of at least 1');
    if (typeof this.#ttl === 'number' && !(this.#ttl > 0)) throw new TypeError('ttl must be a number of seconds above 0, or a function');
  }

  #key(sid: string): string {
    return this.prefix + sid;
  }

  /**
   * Seconds the session is to live: the ttl function's answer; else until
   * its cookie expires; else the ttl option. Zero or less: already expired.
   */
  ttlOf(session: S): number {
    if (typeof this.#ttl === 'function') return this.#ttl(session);
    const expires = session.cookie?.expires;
    if (expires !== undefined && expires !== null) {
      const at = new Date(expires).getTime();
      if (!Number.isNaN(at)) return Math.ceil((at - Date.now()) / 1000);
    }
    return this.#ttl;
  }

  get(sid: string, cb?: Callback<S | null>): Promise<S | null> | undefined {
    return settle(
      this.client.getText(this.#key(sid)).then((e) => {
        this.#recent.delete(sid);
        if (e === undefined) return null;
        if (this.#recent.size >= RECENT_MAX) this.#recent.delete(this.#recent.keys().next().value!);
        this.#recent.set(sid, { value: e.value, version: e.version, contentType: e.contentType, at: Date.now() });
        return this.#serializer.parse(e.value);
      }),
      cb,
    );
  }

  /** Store the session with its TTL; a TTL that has already run out destroys it instead. */
  set(sid: string, session: S, cb?: Callback): Promise<void> | undefined {
    return settle(this.#set(sid, session), cb);
  }

  async #set(sid: string, session: S): Promise<void> {
    this.#recent.delete(sid);
    const ttl = this.#disableTTL ? undefined : this.ttlOf(session);
    if (ttl !== undefined && ttl <= 0) return this.#destroy(sid);
    const contentType = this.#serializer === (JSON as unknown) ? JSON_TYPE : TEXT_TYPE;
    await this.client.put(this.#key(sid), this.#serializer.stringify(session), { contentType, ...(ttl !== undefined ? { ttl } : {}) });
  }

  destroy(sid: string, cb?: Callback): Promise<void> | undefined {
    return settle(this.#destroy(sid), cb);
  }

  async #destroy(sid: string): Promise<void> {
    this.#recent.delete(sid);
    await this.client.delete(this.#key(sid));
  }

  /**
   * Give the session a new TTL from `session` without changing what is
   * stored: the stored bytes are written back with `If-Match` on the version
   * just read. A session destroyed (or rewritten) in between fails that
   * condition and is left as it is, so a touch never brings a destroyed
   * session back; a session that is gone is not an error.
   */
  touch(sid: string, session: S, cb?: Callback): Promise<void> | undefined {
    return settle(this.#touch(sid, session), cb);
  }

  async #touch(sid: string, session: S): Promise<void> {
    if (this.#disableTouch || this.#disableTTL) return;
    const ttl = this.ttlOf(session);
    if (ttl <= 0) return this.#destroy(sid);
    const key = this.#key(sid);
    const recent = this.#recent.get(sid);
    this.#recent.delete(sid);
    if (recent !== undefined && Date.now() - recent.at < RECENT_MS) {
      try {
        await this.client.put(key, recent.value, { ttl, ifMatch: recent.version, contentType: recent.contentType });
        return;
      } catch (err) {
        // Written (or destroyed) since that read: look again.
        if (!isGone(err)) throw err;
      }
    }
    const cur = await this.client.get(key);
    if (cur === undefined) return;
    try {
      await this.client.put(key, cur.value, { ttl, ifMatch: cur.version, contentType: cur.contentType });
    } catch (err) {
      if (!isGone(err)) throw err;
    }
  }

  /** Every stored session, each with its `id`. */
  all(cb?: Callback<StoredSession<S>[]>): Promise<StoredSession<S>[]> | undefined {
    return settle(this.#all(), cb);
  }

  async #all(): Promise<StoredSession<S>[]> {
    const out: StoredSession<S>[] = [];
    for await (const keys of this.#pages()) {
      if (keys.length === 0) continue;
      const results = await this.client.batch(keys.map((key) => ({ op: 'get', key })));
      for (const r of results) {
        if (r.value === undefined) continue; // expired or destroyed since the scan
        const s = this.#serializer.parse(Buffer.from(r.value).toString('utf8'));
        out.push(Object.assign(s as object, { id: r.key.slice(this.prefix.length) }) as StoredSession<S>);
      }
    }
    return out;
  }

  /** The ids of every stored session. */
  ids(cb?: Callback<string[]>): Promise<string[]> | undefined {
    return settle(this.#ids(), cb);
  }

  async #ids(): Promise<string[]> {
    const out: string[] = [];
    for await (const keys of this.#pages()) for (const k of keys) out.push(k.slice(this.prefix.length));
    return out;
  }

  /** How many sessions are stored. */
  length(cb?: Callback<number>): Promise<number> | undefined {
    return settle(
      this.#ids().then((ids) => ids.length),
      cb,
    );
  }

  /** Destroy every session under the prefix. */
  clear(cb?: Callback): Promise<void> | undefined {
    return settle(this.#clear(), cb);
  }

  async #clear(): Promise<void> {
    for await (const keys of this.#pages()) {
      if (keys.length > 0) await this.client.batch(keys.map((key) => ({ op: 'del', key })));
    }
  }

  async *#pages(): AsyncGenerator<string[]> {
    for await (const page of this.client.scan({ prefix: this.prefix, limit: this.#scanCount })) yield page.keys.map((k) => k.key);
  }

  // express-session's base Store methods, built on the ones above.

  /** Destroy the request's session and make a new one (express-session's req.session.regenerate()). */
  regenerate(req: { sessionID: string }, fn: (err?: unknown) => void): void {
    void this.destroy(req.sessionID, (err) => {
      this.generate?.(req);
      fn(err);
    });
  }

  /** Load a session by id as an express-session Session. */
  load<R>(sid: string, fn: (err: unknown, session?: R) => void): void {
    void this.get(sid, (err, sess) => {
      if (err) return fn(err);
      if (!sess) return fn(null);
      fn(null, this.createSession<R>({ sessionID: sid, sessionStore: this }, sess));
    });
  }

  /** Turn stored session data into express-session's Session (express-session calls this). */
  createSession<R>(req: unknown, session: S): R {
    return expressStoreProto().createSession.call(this, req, session) as R;
  }
}
