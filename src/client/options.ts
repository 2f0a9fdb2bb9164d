// The options of a KvClient: one DEFAULTS object with the units in the
// names, validated once by parseClientOptions(), which rejects unknown keys
// and freezes the result.
import { isWeakSecret } from '../core/config.js';
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

/**
 * Direct mode (docs/client.md, "Direct mode"): the client talks the binary
 * protocol to the shards itself, as a router does, with the cluster secret.
 */
export interface DirectOptions {
  /** The cluster secret the shards check (KV_CLUSTER_SECRET of the routers and shards). */
  readonly clusterSecret: string;
  /** Connect to the shards' data ports with TLS (as the routers' dataTls). */
  readonly dataTls?: boolean | undefined;
  /** PEM file of the CA that signed the shards' certificates; unset = the system CAs. */
  readonly tlsCaFile?: string | undefined;
  /** How often the topology is fetched from a router anyway (it is also fetched whenever a shard says it is behind). */
  readonly topologyPollMs?: number | undefined;
}

export interface DirectConfig {
  readonly clusterSecret: string;
  readonly dataTls: boolean;
  readonly tlsCaFile: string;
  readonly topologyPollMs: number;
}

/** Default of `direct.topologyPollMs`. */
const DIRECT_TOPOLOGY_POLL_MS = 1000;
const DIRECT_KNOWN = new Set(['clusterSecret', 'dataTls', 'tlsCaFile', 'topologyPollMs']);

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
  /** Direct mode: keys go straight to their shards; scans go through the routers. */
  readonly direct?: DirectOptions | undefined;
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
  readonly direct: DirectConfig | undefined;
}

const KNOWN = new Set(['urls', 'apiKey', 'sessionToken', 'ca', 'direct', ...Object.keys(CLIENT_DEFAULTS)]);

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

function parseDirect(o: KvClientOptions): DirectConfig | undefined {
  const d = o.direct;
  if (d === undefined) return undefined;
  if (typeof d !== 'object' || d === null) bad('direct must be an object: { clusterSecret }');
  for (const k of Object.keys(d)) if (!DIRECT_KNOWN.has(k)) bad(`unknown option "direct.${k}"`);
  if (typeof d.clusterSecret !== 'string' || isWeakSecret(d.clusterSecret))
    bad('direct.clusterSecret must be the cluster secret of the shards (at least 16 characters, not a placeholder)');
  // Direct mode stores keys un-namespaced, as an anonymous caller's: a tenant's credentials would be ignored.
  if (o.apiKey !== undefined || o.sessionToken !== undefined)
    bad('direct mode cannot be combined with apiKey or sessionToken: it stores keys un-namespaced, as the anonymous caller; use a second client for a tenant');
  if (d.dataTls !== undefined && typeof d.dataTls !== 'boolean') bad('direct.dataTls must be true or false');
  if (d.tlsCaFile !== undefined && (typeof d.tlsCaFile !== 'string' || d.tlsCaFile === '')) bad('direct.tlsCaFile must be the path of a PEM file');
  const poll = d.topologyPollMs ?? DIRECT_TOPOLOGY_POLL_MS;
  if (typeof poll !== 'number' || !Number.isInteger(poll) || poll < 10 || poll > 3_600_000)
    bad(`option "direct.topologyPollMs" must be a whole number from 10 to 3600000, got ${String(poll)}`);
  return Object.freeze({ clusterSecret: d.clusterSecret, dataTls: d.dataTls ?? false, tlsCaFile: d.tlsCaFile ?? '', topologyPollMs: poll });
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
  const direct = parseDirect(o);
  return Object.freeze({ urls: Object.freeze(urls), apiKey: o.apiKey, sessionToken: o.sessionToken, ca: o.ca, direct, ...num });
}
