// KvClient: the program-side SDK of the router's HTTP API (docs/client.md).
// It keeps keep-alive connections to every router it is given (one undici
// Pool per URL), balances over them itself (balancer.ts), retries only what
// is safe to send again (transport.ts), and rebuilds every error as a typed
// KvError from its KV_ERR_* code. In direct mode (direct.ts) the key
// operations skip the router and go to the owning shards.
import { EventEmitter } from 'node:events';
import { KvError, fromWire, kvError } from '../core/errors.js';
import type { StoredValue } from '../core/protocol.js';
import { etag, isWellFormed } from '../core/validate.js';
import { Balancer, type RouterStats } from './balancer.js';
import { DirectPath } from './direct.js';
import { parseClientOptions, type ClientConfig, type KvClientOptions } from './options.js';
import { Transport, errorOf, type Answer, type Exchange } from './transport.js';

/** What put() stores: bytes as they are, a string as UTF-8 text, anything else as JSON. */
export type KvValue = Uint8Array | string | number | boolean | null | readonly unknown[] | { readonly [k: string]: unknown };

/** A version to compare against: the number put() returned, its ETag (`"12"`), or `*` (any live value). */
export type KvVersion = number | string;

export interface KvEntry<T> {
  readonly key: string;
  readonly value: T;
  readonly contentType: string;
  /** Grows with every write of the key. */
  readonly version: number;
  /** The version as the HTTP ETag (`"<version>"`). */
  readonly etag: string;
  /** Absolute expiry in ms since the Unix epoch; undefined for a key without a TTL. */
  readonly expiresAt: number | undefined;
}

export type KvMeta = Omit<KvEntry<never>, 'value'>;

export interface CallOptions {
  readonly signal?: AbortSignal | undefined;
}

export interface PutOptions extends CallOptions {
  /** Seconds until the key expires (whole, from 1 to the router's maxTtlSeconds). */
  readonly ttl?: number | undefined;
  /** Write only when this version is current (`*`: when the key has a live value). */
  readonly ifMatch?: KvVersion | undefined;
  /** Write only when the key has no live value. */
  readonly ifNoneMatch?: '*' | true | undefined;
  /** Stored with the value and returned by get(); by default from the value's type. */
  readonly contentType?: string | undefined;
}

export interface DeleteOptions extends CallOptions {
  readonly ifMatch?: KvVersion | undefined;
}

export type BatchOp =
  | { readonly op: 'get'; readonly key: string }
  | {
      readonly op: 'put';
      readonly key: string;
      readonly value: KvValue;
      readonly contentType?: string | undefined;
      readonly ttl?: number | undefined;
      readonly ifMatch?: KvVersion | undefined;
    }
  | { readonly op: 'del'; readonly key: string; readonly ifMatch?: KvVersion | undefined };

export interface BatchResult {
  readonly key: string;
  readonly op: BatchOp['op'];
  /** The operation's own HTTP status: 200 (get), 204 (put, del), or its error's. */
  readonly status: number;
  /** Set when the operation failed (e.g. KV_ERR_NOT_FOUND, KV_ERR_PRECONDITION_FAILED). */
  readonly error: KvError | undefined;
  /** A get's value. */
  readonly value?: Uint8Array;
  readonly contentType?: string;
  /** A get's or put's version. */
  readonly version?: number;
  readonly etag?: string;
  readonly expiresAt?: number;
}

export interface ScanOptions extends CallOptions {
  /** Only keys that start with this (default: all of the caller's keys). */
  readonly prefix?: string | undefined;
  /** Keys per page, at most (the router's default is 100, its limit maxScanKeys). */
  readonly limit?: number | undefined;
}

export interface ScanKey {
  readonly key: string;
  readonly version: number;
  readonly etag: string;
  readonly expiresAt: number | undefined;
}

export interface ScanPage {
  /** In key order (UTF-8 bytes). A page may hold fewer keys than the limit, even none, while more follow. */
  readonly keys: readonly ScanKey[];
  /** More pages follow. */
  readonly more: boolean;
}

export interface SessionInfo {
  readonly tenant: string;
  readonly createdAt: number;
  /** When the session ends unless it is used (sliding idle timeout). */
  readonly expiresAt: number;
  /** When it ends in any case. */
  readonly absoluteExpiresAt: number;
}

export interface LoginInfo extends SessionInfo {
  readonly token: string;
}

export interface KvClientEvents {
  /** A router was taken out of the rotation (connection failure, or a 502/503 of its own). */
  'router-down': [url: string, reason: string];
  /** It answered GET /readyz with 200 and is used again. */
  'router-up': [url: string];
}

const TEXT = 'text/plain; charset=utf-8';
const JSON_TYPE = 'application/json';
const BYTES = 'application/octet-stream';
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Key names the router keeps for endpoints; their first byte is percent-encoded to name the key instead. */
const RESERVED = new Set(['_batch', '_scan']);

function keyPath(key: string): string {
  if (typeof key !== 'string' || key === '') throw kvError('KV_ERR_KEY_EMPTY');
  if (!isWellFormed(key)) throw kvError('KV_ERR_KEY_INVALID', 'a lone surrogate');
  const enc = encodeURIComponent(key);
  return `/v1/kv/${RESERVED.has(key) ? `%5F${enc.slice(1)}` : enc}`;
}

function ifMatchHeader(v: KvVersion): string {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw kvError('KV_ERR_BAD_PRECONDITION', String(v));
    return `"${v}"`;
  }
  if (v === '*' || /^"\d{1,16}"$/.test(v)) return v;
  if (/^\d{1,16}$/.test(v)) return `"${v}"`;
  throw kvError('KV_ERR_BAD_PRECONDITION', JSON.stringify(v));
}

function versionOf(etag: string | string[] | undefined): number {
  const m = typeof etag === 'string' ? /^"(\d{1,16})"$/.exec(etag) : null;
  if (!m) throw kvError('KV_ERR_BAD_RESPONSE', 'the router', 200, `ETag ${JSON.stringify(etag)}`);
  return Number(m[1]);
}

function header(a: Answer, name: string): string | undefined {
  const v = a.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** A value as bytes and the content type it gets unless the caller names one. */
export function encodeValue(value: KvValue): { bytes: Uint8Array; contentType: string } {
  if (value instanceof Uint8Array) return { bytes: value, contentType: BYTES };
  if (typeof value === 'string') {
    // A lone surrogate would silently become U+FFFD on the wire.
    if (!isWellFormed(value)) throw kvError('KV_ERR_BAD_REQUEST', 'the value is not valid UTF-8 text (lone surrogate); store binary data as a Uint8Array');
    return { bytes: Buffer.from(value, 'utf8'), contentType: TEXT };
  }
  const json = JSON.stringify(value);
  if (json === undefined) throw kvError('KV_ERR_BAD_REQUEST', `a ${typeof value} cannot be stored; give bytes, a string or a JSON value`);
  return { bytes: Buffer.from(json, 'utf8'), contentType: JSON_TYPE };
}

function metaOf(key: string, a: Answer): KvMeta {
  const etag = header(a, 'etag') ?? '';
  const x = header(a, 'x-kv-expires-at');
  return {
    key,
    contentType: header(a, 'content-type') ?? BYTES,
    version: versionOf(etag),
    etag,
    expiresAt: x === undefined ? undefined : Number(x),
  };
}

/** A record a shard returned, as the router's GET would have given it. */
function entryOf(key: string, rec: StoredValue): KvEntry<Uint8Array> {
  return {
    key,
    value: new Uint8Array(rec.v.buffer, rec.v.byteOffset, rec.v.byteLength),
    contentType: rec.ct,
    version: rec.ver,
    etag: etag(rec.ver),
    expiresAt: rec.x ? rec.x : undefined,
  };
}

export class KvClient extends EventEmitter<KvClientEvents> {
  readonly config: ClientConfig;
  readonly #balancer: Balancer;
  readonly #transport: Transport;
  /** Set in direct mode: key operations go straight to the shards. */
  readonly #direct: DirectPath | undefined;
  #session: string | undefined;
  #closed = false;

  constructor(options: KvClientOptions) {
    super();
    this.config = parseClientOptions(options);
    this.#session = this.config.sessionToken;
    this.#balancer = new Balancer(this.config.urls, this.config);
    this.#balancer.on('router-down', (url, reason) => this.emit('router-down', url, reason));
    this.#balancer.on('router-up', (url) => this.emit('router-up', url));
    this.#transport = new Transport(this.config, this.#balancer);
    this.#direct = this.config.direct ? new DirectPath(this.config, this.config.direct, this.#balancer) : undefined;
  }

  /** The direct path, when the client is in direct mode and open. */
  #directPath(): DirectPath | undefined {
    if (this.#direct && this.#closed) throw kvError('KV_ERR_ROUTER_UNAVAILABLE', 'the client is closed');
    return this.#direct;
  }

  /** The session token in use (after login(), or given as `sessionToken`). */
  get sessionToken(): string | undefined {
    return this.#session;
  }

  /** Per router: in the rotation or not, and how many requests it answered. */
  stats(): RouterStats[] {
    return this.#balancer.stats();
  }

  #auth(token = this.#session ?? this.config.apiKey): Record<string, string> {
    return token === undefined ? {} : { authorization: `Bearer ${token}` };
  }

  async #call(x: Omit<Exchange, 'headers'> & { headers?: Record<string, string> }): Promise<Answer> {
    if (this.#closed) throw kvError('KV_ERR_ROUTER_UNAVAILABLE', 'the client is closed');
    return this.#transport.send({ ...x, headers: { ...this.#auth(), ...x.headers } });
  }

  /** The value of `key` as bytes, or undefined when it has no live value. */
  async get(key: string, o: CallOptions = {}): Promise<KvEntry<Uint8Array> | undefined> {
    const direct = this.#directPath();
    if (direct) {
      const rec = await direct.get(key, o.signal);
      return rec ? entryOf(key, rec) : undefined;
    }
    const a = await this.#call({ method: 'GET', path: keyPath(key), idempotent: true, signal: o.signal });
    if (a.status === 404 && errorOf(a).code === 'KV_ERR_NOT_FOUND') return undefined;
    if (a.status !== 200) throw errorOf(a);
    return { ...metaOf(key, a), value: new Uint8Array(a.body.buffer, a.body.byteOffset, a.body.byteLength) };
  }

  /** The value of `key` decoded as UTF-8 text (an error when it is not UTF-8), or undefined. */
  async getText(key: string, o: CallOptions = {}): Promise<KvEntry<string> | undefined> {
    const e = await this.get(key, o);
    if (e === undefined) return undefined;
    let text: string;
    try {
      text = utf8.decode(e.value);
    } catch {
      throw kvError('KV_ERR_BAD_RESPONSE', 'the router', 200, `the value of ${JSON.stringify(key)} is not UTF-8 text`);
    }
    return { ...e, value: text };
  }

  /** The value of `key` parsed as JSON, or undefined. The type is the caller's claim; it is not checked. */
  async getJson<T = unknown>(key: string, o: CallOptions = {}): Promise<KvEntry<T> | undefined> {
    const e = await this.getText(key, o);
    if (e === undefined) return undefined;
    let value: T;
    try {
      value = JSON.parse(e.value) as T;
    } catch {
      throw kvError('KV_ERR_BAD_RESPONSE', 'the router', 200, `the value of ${JSON.stringify(key)} is not JSON`);
    }
    return { ...e, value };
  }

  /** The metadata of `key` (version, content type, expiry) without its value, or undefined. */
  async head(key: string, o: CallOptions = {}): Promise<KvMeta | undefined> {
    if (this.#direct) {
      const e = await this.get(key, o);
      if (e === undefined) return undefined;
      const { value: _value, ...meta } = e;
      return meta;
    }
    const a = await this.#call({ method: 'HEAD', path: keyPath(key), idempotent: true, signal: o.signal });
    if (a.status === 404) return undefined;
    if (a.status !== 200) throw errorOf(a);
    return metaOf(key, a);
  }

  /**
   * Store `value` under `key` and return its new version. A failed
   * condition (`ifMatch`, `ifNoneMatch`) throws KV_ERR_PRECONDITION_FAILED.
   */
  async put(key: string, value: KvValue, o: PutOptions = {}): Promise<number> {
    const { bytes, contentType } = encodeValue(value);
    const direct = this.#directPath();
    if (direct) {
      const ifMatch = o.ifMatch === undefined ? undefined : ifMatchHeader(o.ifMatch);
      return direct.put(key, bytes, o.contentType ?? contentType, { ttl: o.ttl, ifMatch, ifNoneMatch: o.ifNoneMatch !== undefined }, o.signal);
    }
    const headers: Record<string, string> = { 'content-type': o.contentType ?? contentType };
    if (o.ifMatch !== undefined) headers['if-match'] = ifMatchHeader(o.ifMatch);
    if (o.ifNoneMatch !== undefined) headers['if-none-match'] = '*';
    const path = keyPath(key) + (o.ttl !== undefined ? `?ttl=${encodeURIComponent(String(o.ttl))}` : '');
    const a = await this.#call({ method: 'PUT', path, headers, body: bytes, idempotent: false, signal: o.signal });
    if (a.status !== 204 && a.status !== 200) throw errorOf(a);
    return versionOf(header(a, 'etag'));
  }

  /** Delete `key`; false when it had no live value. A failed `ifMatch` throws KV_ERR_PRECONDITION_FAILED. */
  async delete(key: string, o: DeleteOptions = {}): Promise<boolean> {
    const direct = this.#directPath();
    if (direct) return direct.del(key, o.ifMatch === undefined ? undefined : ifMatchHeader(o.ifMatch), o.signal);
    const headers: Record<string, string> = {};
    if (o.ifMatch !== undefined) headers['if-match'] = ifMatchHeader(o.ifMatch);
    const a = await this.#call({ method: 'DELETE', path: keyPath(key), headers, idempotent: false, signal: o.signal });
    if (a.status === 204 || a.status === 200) return true;
    const err = errorOf(a);
    if (err.code === 'KV_ERR_NOT_FOUND') return false;
    throw err;
  }

  /**
   * Many operations in one request (at most the router's maxBatchOps). Not
   * atomic: each result has its own status and error. A batch that does not
   * validate throws and runs nothing.
   */
  async batch(ops: readonly BatchOp[], o: CallOptions = {}): Promise<BatchResult[]> {
    const wire = ops.map((op) => {
      if (op.op === 'get') return { op: 'get', key: op.key };
      const ifMatch = op.ifMatch === undefined ? {} : { ifMatch: ifMatchHeader(op.ifMatch) };
      if (op.op === 'del') return { op: 'del', key: op.key, ...ifMatch };
      const { bytes, contentType } = encodeValue(op.value);
      const text = op.value instanceof Uint8Array ? undefined : Buffer.from(bytes).toString('utf8');
      return {
        op: 'put',
        key: op.key,
        ...(text !== undefined ? { value: text } : { value: Buffer.from(bytes).toString('base64'), encoding: 'base64' }),
        contentType: op.contentType ?? contentType,
        ...(op.ttl !== undefined ? { ttl: op.ttl } : {}),
        ...ifMatch,
      };
    });
    const body = JSON.stringify({ ops: wire });
    const direct = this.#directPath();
    if (direct) return (await direct.batch(body, o.signal)).map((r, n) => resultOf(r, ops[n]!.op));
    const a = await this.#call({
      method: 'POST',
      path: '/v1/kv/_batch',
      headers: { 'content-type': JSON_TYPE },
      body,
      idempotent: ops.every((op) => op.op === 'get'),
      signal: o.signal,
    });
    if (a.status !== 200) throw errorOf(a);
    const doc = JSON.parse(a.body.toString('utf8')) as { results: WireResult[] };
    return doc.results.map((r, n) => resultOf(r, ops[n]!.op));
  }

  /**
   * The caller's keys in key order, a page at a time. Each page after the
   * first is fetched with the router's single-use page token, so any router
   * may serve it; the iteration ends when the router says there is no more.
   */
  async *scan(o: ScanOptions = {}): AsyncGenerator<ScanPage, void, undefined> {
    const q = new URLSearchParams();
    if (o.prefix !== undefined && o.prefix !== '') q.set('prefix', o.prefix);
    if (o.limit !== undefined) q.set('limit', String(o.limit));
    let path = `/v1/kv${q.size > 0 ? `?${q.toString()}` : ''}`;
    // The first page may be asked again; a page token is used up by the
    // request that reaches a router, so a later page is sent again only when
    // it surely never left.
    let idempotent = true;
    for (;;) {
      const a = await this.#call({ method: 'GET', path, idempotent, signal: o.signal });
      if (a.status !== 200) throw errorOf(a);
      const doc = JSON.parse(a.body.toString('utf8')) as { keys: { key: string; etag: string; expiresAt?: number }[]; next: string | null };
      const keys = doc.keys.map((k) => ({ key: k.key, etag: k.etag, version: versionOf(k.etag), expiresAt: k.expiresAt }));
      yield { keys, more: doc.next !== null };
      if (doc.next === null) return;
      path = `/v1/kv?page=${encodeURIComponent(doc.next)}`;
      idempotent = false;
    }
  }

  /** Every key of scan(), one at a time. */
  async *keys(o: ScanOptions = {}): AsyncGenerator<ScanKey, void, undefined> {
    for await (const page of this.scan(o)) yield* page.keys;
  }

  /**
   * Trade the API key for a session (POST /v1/sessions); later requests
   * carry the session token instead of the key.
   */
  async login(o: CallOptions = {}): Promise<LoginInfo> {
    const key = this.config.apiKey;
    if (key === undefined) throw kvError('KV_ERR_AUTH_REQUIRED', 'login() needs the apiKey option');
    const a = await this.#call({ method: 'POST', path: '/v1/sessions', headers: this.#auth(key), idempotent: false, signal: o.signal });
    if (a.status !== 201) throw errorOf(a);
    const info = JSON.parse(a.body.toString('utf8')) as LoginInfo;
    this.#session = info.token;
    return info;
  }

  /** The current session (GET /v1/sessions/current). */
  async session(o: CallOptions = {}): Promise<SessionInfo> {
    if (this.#session === undefined) throw kvError('KV_ERR_AUTH_REQUIRED', 'no session: call login() first, or give sessionToken');
    const a = await this.#call({ method: 'GET', path: '/v1/sessions/current', idempotent: true, signal: o.signal });
    if (a.status !== 200) throw errorOf(a);
    return JSON.parse(a.body.toString('utf8')) as SessionInfo;
  }

  /**
   * End the session on every router (DELETE /v1/sessions/current); later
   * requests carry the API key again, if there is one. A session that had
   * already ended counts as logged out.
   */
  async logout(o: CallOptions = {}): Promise<void> {
    if (this.#session === undefined) return;
    const a = await this.#call({ method: 'DELETE', path: '/v1/sessions/current', idempotent: false, signal: o.signal });
    if (a.status !== 204 && errorOf(a).code !== 'KV_ERR_BAD_CREDENTIALS') throw errorOf(a);
    this.#session = undefined;
  }

  /** Close every connection (requests under way to routers finish first; to shards, in direct mode, they fail); the client cannot be used again. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#direct?.close();
    await this.#balancer.close();
  }
}

interface WireResult {
  key: string;
  status: number;
  code?: string;
  message?: string;
  value?: string;
  encoding?: 'utf8' | 'base64';
  contentType?: string;
  etag?: string;
  expiresAt?: number;
}

function resultOf(r: WireResult, op: BatchOp['op']): BatchResult {
  const base = { key: r.key, op, status: r.status };
  if (r.code !== undefined) {
    return { ...base, error: fromWire({ code: r.code, message: r.message }) };
  }
  const value = r.value === undefined ? {} : { value: new Uint8Array(Buffer.from(r.value, r.encoding === 'base64' ? 'base64' : 'utf8')) };
  const version = r.etag === undefined ? {} : { version: versionOf(r.etag), etag: r.etag };
  return {
    ...base,
    error: undefined,
    ...value,
    ...version,
    ...(r.contentType !== undefined ? { contentType: r.contentType } : {}),
    ...(r.expiresAt !== undefined ? { expiresAt: r.expiresAt } : {}),
  };
}
