// The options of a KvClient: one DEFAULTS object with the units in the
// names, validated once by parseClientOptions(), which rejects unknown keys
// and freezes the result.
import { kvError } from '../core/errors.js';

export const CLIENT_DEFAULTS = {
  /** Each attempt of a request gets an answer (headers, then the whole body) within this long. */
  timeoutMs: 10_000,
  /** A new connection to a router is up within this long, or that router counts as unreachable. */
  connectTimeoutMs: 3_000,
  /** Further attempts of a request that may be repeated (reads; writes only when nothing was sent). */
  retries: 2,
  /** Wait before an attempt that goes to a router already tried (doubles each time, at most 1 s). */
  retryDelayMs: 50,
  /** Keep-alive connections per router URL, at most. */
  connections: 16,
  /** How often a router that was skipped is asked `GET /readyz` until it answers 200. */
  readyProbeMs: 500,
  /** Largest response body the client reads. */
  maxResponseBytes: 64 * 1024 * 1024,
} as const;

export interface KvClientOptions {
  /** One router URL or several; the client balances over them itself (e.g. `http://10.0.0.5:8080`). */
  readonly urls: string | readonly string[];
  /** An API key (`kvk_…`): sent as the bearer token, and what login() trades for a session. */
  readonly apiKey?: string | undefined;
  /** A session token (`kvs_…`) to use from the start; wins over the API key. */
  readonly sessionToken?: string | undefined;
  readonly timeoutMs?: number;
  readonly connectTimeoutMs?: number;
  readonly retries?: number;
  readonly retryDelayMs?: number;
  readonly connections?: number;
  readonly readyProbeMs?: number;
  readonly maxResponseBytes?: number;
  /** For https URLs: the CA to trust (PEM), e.g. a private CA the routers' certificates come from. */
  readonly ca?: string | Uint8Array | undefined;
}

export interface ClientConfig {
  readonly urls: readonly string[];
  readonly apiKey: string | undefined;
  readonly sessionToken: string | undefined;
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly connections: number;
  readonly readyProbeMs: number;
  readonly maxResponseBytes: number;
  readonly ca: string | Uint8Array | undefined;
}

const KNOWN = new Set(['urls', 'apiKey', 'sessionToken', 'ca', ...Object.keys(CLIENT_DEFAULTS)]);

/** Limits of the numeric options: [min, max]. */
const RANGES: Record<keyof typeof CLIENT_DEFAULTS, readonly [number, number]> = {
  timeoutMs: [1, 3_600_000],
  connectTimeoutMs: [1, 600_000],
  retries: [0, 10],
  retryDelayMs: [0, 60_000],
  connections: [1, 10_000],
  readyProbeMs: [10, 3_600_000],
  maxResponseBytes: [1024, 2 ** 32],
};

function bad(what: string): never {
  throw kvError('KV_ERR_CONFIG', `client: ${what}`);
}

function normalizeUrl(raw: unknown): string {
  if (typeof raw !== 'string') bad(`every URL must be a string, got ${JSON.stringify(raw)}`);
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    bad(`${JSON.stringify(raw)} is not a URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') bad(`${JSON.stringify(raw)}: only http and https URLs are supported`);
  if (u.pathname !== '/' || u.search !== '' || u.hash !== '' || u.username !== '' || u.password !== '')
    bad(`${JSON.stringify(raw)}: give the router's origin only (scheme, host and port)`);
  return u.origin;
}

export function parseClientOptions(o: KvClientOptions): ClientConfig {
  if (typeof o !== 'object' || o === null) bad('options must be an object');
  for (const k of Object.keys(o)) if (!KNOWN.has(k)) bad(`unknown option ${JSON.stringify(k)}`);
  const list = typeof o.urls === 'string' ? [o.urls] : o.urls;
  if (!Array.isArray(list) || list.length === 0) bad('urls must be a URL or a non-empty array of URLs');
  const urls = [...new Set(list.map(normalizeUrl))];
  for (const k of ['apiKey', 'sessionToken'] as const) {
    const v = o[k];
    if (v !== undefined && (typeof v !== 'string' || v === '' || /[\s]/.test(v))) bad(`${k} must be a non-empty token without spaces`);
  }
  const num = {} as Record<keyof typeof CLIENT_DEFAULTS, number>;
  for (const k of Object.keys(CLIENT_DEFAULTS) as (keyof typeof CLIENT_DEFAULTS)[]) {
    const v = o[k] ?? CLIENT_DEFAULTS[k];
    const [min, max] = RANGES[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
      bad(`option "${k}" must be a whole number from ${min} to ${max}, got ${String(v)}`);
    num[k] = v;
  }
  return Object.freeze({ urls: Object.freeze(urls), apiKey: o.apiKey, sessionToken: o.sessionToken, ca: o.ca, ...num });
}
