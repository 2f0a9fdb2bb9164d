// The one error table. Every error that leaves a process carries a stable
// `KV_ERR_*` code; callers match on `code`, never on the message. Codes are
// never reused for another meaning. The error table in docs/errors.md is checked
// against this object by test/unit/errors.test.ts.

export interface ErrorDef {
  readonly status: number;
  readonly message: string;
}

export const ERRORS = {
  KV_ERR_NOT_FOUND: { status: 404, message: 'key not found' },
  KV_ERR_KEY_EMPTY: { status: 400, message: 'key must not be empty' },
  KV_ERR_KEY_TOO_LONG: { status: 400, message: 'key is %s bytes, the limit is %s bytes' },
  KV_ERR_KEY_INVALID: { status: 400, message: 'key is not valid: %s' },
  KV_ERR_VALUE_TOO_LARGE: { status: 413, message: 'value is larger than the limit of %s bytes' },
  KV_ERR_BAD_TTL: { status: 400, message: 'ttl must be a whole number of seconds from 1 to %s, got %s' },
  KV_ERR_BAD_CONTENT_TYPE: { status: 400, message: 'content type is not valid: %s' },
  KV_ERR_BAD_JSON: { status: 400, message: 'request body is not valid JSON: %s' },
  KV_ERR_BAD_BATCH: { status: 400, message: 'batch is not valid: %s' },
  KV_ERR_BATCH_TOO_LARGE: { status: 413, message: 'batch has %s operations, the limit is %s' },
  KV_ERR_BAD_PRECONDITION: {
    status: 400,
    message: 'conditional header is not valid: If-Match takes one version ETag such as "12" or *, If-None-Match takes only *; got %s',
  },
  KV_ERR_PRECONDITION_FAILED: { status: 412, message: 'version does not match: expected %s, current %s' },
  KV_ERR_BAD_REQUEST: { status: 400, message: 'bad request: %s' },
  KV_ERR_BAD_QUERY: { status: 400, message: 'query parameter is not valid: %s' },
  KV_ERR_BAD_HTTP: { status: 400, message: 'the request is not valid HTTP/1.1: %s' },
  KV_ERR_HEADERS_TOO_LARGE: { status: 431, message: 'request line and headers are larger than the limit of %s bytes' },
  KV_ERR_REQUEST_TIMEOUT: { status: 408, message: 'the request did not arrive in time (%s)' },
  KV_ERR_EXPECTATION_FAILED: { status: 417, message: 'Expect: %s is not supported (only 100-continue)' },
  KV_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'this endpoint takes %s, got %s' },
  KV_ERR_BUSY: { status: 503, message: 'this router worker has %s shard operations pending, its limit; nothing was sent; retry after %s s' },
  KV_ERR_TOO_MANY_REQUESTS: {
    status: 429,
    message: 'this connection has %s shard operations pending, over its fair share of %s while the router is busy; retry after %s s',
  },
  KV_ERR_BODY_TOO_LARGE: { status: 413, message: 'request body is larger than the limit of %s bytes' },
  KV_ERR_ROUTE_NOT_FOUND: { status: 404, message: 'no route %s %s' },
  KV_ERR_METHOD_NOT_ALLOWED: { status: 405, message: 'method %s is not allowed on %s' },
  KV_ERR_NO_SHARDS: { status: 503, message: 'no shard is in the ring; put registered shards into it with `kv topology init <ids...>`' },
  KV_ERR_NOT_READY: { status: 503, message: 'not ready: %s' },
  KV_ERR_SHARD_UNAVAILABLE: { status: 503, message: 'shard %s is unavailable (%s); nothing was written' },
  KV_ERR_OVERLOADED: { status: 503, message: 'too many requests in flight to shard %s (limit %s); nothing was written' },
  KV_ERR_OUTCOME_UNKNOWN: { status: 502, message: 'connection to shard %s was lost before it answered; the write may or may not have been applied' },
  KV_ERR_TIMEOUT: { status: 504, message: 'shard %s did not answer within %s ms; the outcome is unknown' },
  KV_ERR_TOPOLOGY_CHANGING: { status: 503, message: 'topology kept changing after %s retries; nothing was written' },
  KV_ERR_REDIS_UNAVAILABLE: { status: 503, message: 'Redis is unavailable: %s' },
  KV_ERR_METRICS_UNAVAILABLE: { status: 503, message: "the host's metrics could not be gathered: %s" },
  KV_ERR_BAD_TOPOLOGY: { status: 400, message: 'topology is not valid: %s' },
  KV_ERR_BAD_WEIGHT: { status: 400, message: 'weight of shard %s is not valid: %s' },
  KV_ERR_REBALANCE_IN_PROGRESS: { status: 409, message: 'rebalance job %s (%s) is still %s; wait for it or cancel it with `kv rebalance cancel`' },
  KV_ERR_NO_REBALANCE: { status: 409, message: 'no rebalance job is running' },
  KV_ERR_CANNOT_CANCEL: { status: 409, message: 'rebalance job %s is %s and can no longer be cancelled; it will finish by itself' },
  KV_ERR_MIGRATION_FREEZE: {
    status: 503,
    message: 'writes to this key wait while every shard switches to a new topology; that took over %s ms; nothing was written',
  },
  KV_ERR_SHARD_NOT_REGISTERED: { status: 400, message: 'shard %s is not registered; start it first (`kv shard start --id %s`)' },
  KV_ERR_SHARD_IN_RING: { status: 409, message: 'shard %s is already in the ring' },
  KV_ERR_SHARD_NOT_IN_RING: { status: 404, message: 'shard %s is not in the ring' },
  KV_ERR_LAST_SHARD: { status: 400, message: 'shard %s is the last one in the ring; the data would have nowhere to go' },
  KV_ERR_SHARD_NOT_EMPTY: {
    status: 409,
    message:
      'shard %s already holds %s records (from an earlier membership?); a joining shard must start on an empty data directory, or old values could come back',
  },
  KV_ERR_SHARD_ALIVE: { status: 409, message: 'shard %s is alive (registered); drain it with `kv shards remove %s`, or stop it first if it really is lost' },
  KV_ERR_UNAUTHORIZED: { status: 401, message: 'admin endpoints need the admin token: %s' },
  KV_ERR_AUTH_REQUIRED: { status: 401, message: 'this endpoint needs credentials: %s' },
  KV_ERR_BAD_CREDENTIALS: { status: 401, message: 'the credentials are not valid: %s' },
  KV_ERR_RATE_LIMITED: { status: 429, message: 'tenant %s is over its rate of %s requests per second; retry after %s s' },
  KV_ERR_BAD_PAGE_TOKEN: { status: 400, message: 'page token is not valid: %s' },
  KV_ERR_BAD_TENANT: { status: 400, message: 'tenant name must match ^[a-z0-9][a-z0-9-]{0,31}$, got %s' },
  KV_ERR_TENANT_EXISTS: { status: 409, message: 'tenant %s already exists' },
  KV_ERR_TENANT_NOT_FOUND: { status: 404, message: 'no tenant %s' },
  KV_ERR_KEY_NOT_FOUND: { status: 404, message: 'no API key %s' },
  KV_ERR_AUTH_FAILED: { status: 401, message: 'peer authentication on the data port failed: %s' },
  // Wire-level refusals from a shard. The router handles these by refreshing
  // its topology and retrying; they reach a client only inside other codes.
  KV_ERR_STALE_EPOCH: { status: 409, message: 'request epoch %s is older than the shard epoch %s' },
  KV_ERR_NOT_OWNER: { status: 409, message: 'shard %s does not own this key at epoch %s' },
  KV_ERR_FRAME_TOO_LARGE: { status: 413, message: 'frame of %s bytes is over the limit of %s bytes' },
  KV_ERR_BAD_FRAME: { status: 400, message: 'frame is not valid: %s' },
  KV_ERR_UNKNOWN_OP: { status: 400, message: 'unknown operation %s' },
  KV_ERR_CONFIG: { status: 500, message: 'configuration is not valid: %s' },
  KV_ERR_INTERNAL: { status: 500, message: 'internal error: %s' },
  // Made by the client SDK (src/client) about its own connection to a router;
  // no server sends them.
  KV_ERR_ROUTER_UNAVAILABLE: { status: 503, message: 'no router could be reached (%s); nothing was sent' },
  KV_ERR_ROUTER_LOST: {
    status: 502,
    message: 'the connection to router %s was lost before it answered (%s); a write may or may not have been applied',
  },
  KV_ERR_ROUTER_TIMEOUT: { status: 504, message: 'router %s did not answer within %s ms; a write may or may not have been applied' },
  KV_ERR_BAD_RESPONSE: { status: 502, message: 'router %s answered %s without a KV_ERR_* error: %s' },
} as const satisfies Record<string, ErrorDef>;

export type ErrorCode = keyof typeof ERRORS;

function format(template: string, args: readonly unknown[]): string {
  let i = 0;
  return template.replace(/%s/g, () => (i < args.length ? String(args[i++]) : '%s'));
}

export class KvError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  /** Extra machine-readable detail (e.g. the shard's epoch on KV_ERR_STALE_EPOCH). */
  readonly detail: Record<string, unknown> | undefined;
  /** For a refusal caused by load: when to try again (HTTP Retry-After). */
  retryAfterS: number | undefined;
  /** The id under which the server logged the request (errors received over HTTP). */
  requestId: string | undefined;

  constructor(code: ErrorCode, message: string, detail?: Record<string, unknown>) {
    super(message);
    this.name = 'KvError';
    this.code = code;
    this.statusCode = ERRORS[code].status;
    this.detail = detail;
    this.retryAfterS = undefined;
    this.requestId = undefined;
  }

  toJSON(): { code: ErrorCode; message: string } & Record<string, unknown> {
    return { ...(this.detail ?? {}), code: this.code, message: this.message };
  }
}

/** Build a KvError from the table, filling the message's `%s` slots in order. */
export function kvError(code: ErrorCode, ...args: unknown[]): KvError {
  return new KvError(code, format(ERRORS[code].message, args));
}

/** A refusal caused by load, with the seconds after which the client may try again. */
export function kvErrorRetry(code: ErrorCode, retryAfterS: number, ...args: unknown[]): KvError {
  const e = kvError(code, ...args);
  e.retryAfterS = retryAfterS;
  return e;
}

export function kvErrorWith(code: ErrorCode, detail: Record<string, unknown>, ...args: unknown[]): KvError {
  return new KvError(code, format(ERRORS[code].message, args), detail);
}

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERRORS, code);
}

/** Rebuild a typed error from its wire form `{code, message}`. */
export function fromWire(wire: { code?: unknown; message?: unknown; [k: string]: unknown }): KvError {
  const { code, message, ...detail } = wire;
  const err = isErrorCode(code)
    ? new KvError(code, typeof message === 'string' ? message : ERRORS[code].message, detail)
    : kvError('KV_ERR_INTERNAL', `unknown error code ${String(code)}: ${String(message)}`);
  if (typeof detail['requestId'] === 'string') err.requestId = detail['requestId'];
  return err;
}

export function toWire(err: unknown): { code: ErrorCode; message: string } & Record<string, unknown> {
  if (err instanceof KvError) return err.toJSON();
  const msg = err instanceof Error ? err.message : String(err);
  return { code: 'KV_ERR_INTERNAL', message: format(ERRORS.KV_ERR_INTERNAL.message, [msg]) };
}
