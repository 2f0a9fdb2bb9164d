// A router worker's request metrics, kept in preallocated typed arrays: a
// request costs a few array increments (no allocation, no label lookup, no
// metrics library on the request path). The arrays become Prometheus values
// only when /metrics is scraped (metrics.ts). Both request paths record: the
// fast path (kv-fast.ts) and Fastify's routes (a global onResponse hook in
// app.ts). The option requestMetrics=false turns all of it off.
import { ERRORS, type ErrorCode } from '../core/errors.js';
import { BucketCounts, histogramSamples, type SampleValue } from '../infra/prom.js';
import type { HttpObserver } from '../infra/http.js';

/** Route labels: route templates, a fixed and small set. */
export const ROUTES = [
  '/v1/kv/:key',
  '/v1/kv',
  '/v1/kv?scan',
  '/v1/sessions',
  '/v1/admin',
  '/metrics',
  '/dashboard',
  '/healthz',
  '/readyz',
  '/v1/topology',
  '/v1/stats',
  '/v1/ring',
  'other',
] as const;
export type RouteLabel = (typeof ROUTES)[number];
export const ROUTE_KV_KEY = 0;
const ROUTE_OTHER = ROUTES.length - 1;

export const METHODS = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'other'] as const;
const METHOD_OTHER = METHODS.length - 1;

/** The method's index in METHODS. */
export function methodIndex(m: string | undefined): number {
  switch (m) {
    case 'GET':
      return 0;
    case 'HEAD':
      return 1;
    case 'PUT':
      return 2;
    case 'POST':
      return 3;
    case 'DELETE':
      return 4;
    default:
      return METHOD_OTHER;
  }
}

/** The route label of a Fastify route template (undefined: no route matched). */
export function routeOfTemplate(url: string | undefined): number {
  if (url === undefined) return ROUTE_OTHER;
  if (url === '/v1/kv/*') return ROUTE_KV_KEY;
  if (url === '/v1/kv/_batch') return 1;
  if (url === '/v1/kv') return 2;
  if (url.startsWith('/v1/sessions')) return 3;
  if (url.startsWith('/v1/admin')) return 4;
  if (url === '/metrics') return 5;
  if (url.startsWith('/dashboard')) return 6;
  const i = ROUTES.indexOf(url as RouteLabel);
  return i >= 0 ? i : ROUTE_OTHER;
}

/** Status codes 100..599 each have a slot; anything else counts as 599 (never happens with Node's HTTP server). */
const STATUS_MIN = 100;
const STATUS_SLOTS = 500;

/** Latency bucket bounds, in ms (the contract's bounds in seconds × 1000). */
export const LATENCY_BOUNDS_MS = [0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500] as const;
const NB = LATENCY_BOUNDS_MS.length + 1;

const CODES = Object.keys(ERRORS) as ErrorCode[];
const CODE_INDEX = new Map<string, number>(CODES.map((c, i) => [c, i]));

export class RequestMetrics implements HttpObserver {
  /** [route][method][status - 100]. */
  readonly #requests = new Float64Array(ROUTES.length * METHODS.length * STATUS_SLOTS);
  /** [route][method][bucket]: per-bucket counts, +Inf last. */
  readonly #buckets = new Float64Array(ROUTES.length * METHODS.length * NB);
  /** [route][method]: sum of latencies in ms. */
  readonly #sums = new Float64Array(ROUTES.length * METHODS.length);
  readonly #errors = new Float64Array(CODES.length);
  /** Requests received and not closed yet (the HTTP server counts them, see infra/http.ts). */
  inFlight = 0;

  /** One answered request. */
  record(route: number, method: number, status: number, ms: number): void {
    const rm = route * METHODS.length + method;
    let s = status - STATUS_MIN;
    if (!(s >= 0 && s < STATUS_SLOTS)) s = STATUS_SLOTS - 1;
    this.#requests[rm * STATUS_SLOTS + s]!++;
    let b = 0;
    while (b < NB - 1 && ms > LATENCY_BOUNDS_MS[b]!) b++;
    this.#buckets[rm * NB + b]!++;
    this.#sums[rm]! += ms;
  }

  /** One error answer, by its code. */
  error(code: string): void {
    const i = CODE_INDEX.get(code);
    if (i !== undefined) this.#errors[i]!++;
  }

  requestSamples(): SampleValue[] {
    const out: SampleValue[] = [];
    const r = this.#requests;
    for (let i = 0; i < r.length; i++) {
      if (r[i] === 0) continue;
      const s = i % STATUS_SLOTS;
      const rm = (i - s) / STATUS_SLOTS;
      const m = rm % METHODS.length;
      out.push({ value: r[i]!, labels: { route: ROUTES[(rm - m) / METHODS.length]!, method: METHODS[m]!, status: String(s + STATUS_MIN) } });
    }
    return out;
  }

  durationSamples(name: string): SampleValue[] {
    const out: SampleValue[] = [];
    for (let rm = 0; rm < this.#sums.length; rm++) {
      let n = 0;
      for (let b = 0; b < NB; b++) n += this.#buckets[rm * NB + b]!;
      if (n === 0) continue;
      const m = rm % METHODS.length;
      const labels = { route: ROUTES[(rm - m) / METHODS.length]!, method: METHODS[m]! };
      histogramSamples(name, LATENCY_BOUNDS_MS, this.#buckets, rm * NB, this.#sums[rm]!, labels, 0.001, out);
    }
    return out;
  }

  errorSamples(): SampleValue[] {
    const out: SampleValue[] = [];
    for (let i = 0; i < CODES.length; i++) if (this.#errors[i]! > 0) out.push({ value: this.#errors[i]!, labels: { code: CODES[i]! } });
    return out;
  }
}

/** What a router worker counts of its requests to one shard (kept across reconnects). */
export class ForwardStats {
  /** Latency from the frame's write to the answer, in ms. */
  readonly latency = new BucketCounts(LATENCY_BOUNDS_MS);
  /** Requests that did not succeed, by code: the shard's error answers and local failures (timeout, lost connection, refused). */
  readonly errors = new Map<string, number>();

  error(code: string): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }
}

/** The forward metrics of every shard a worker has talked to. */
export function forwardSamples(name: string, byShard: ReadonlyMap<string, ForwardStats>): SampleValue[] {
  const out: SampleValue[] = [];
  for (const [shard, s] of byShard) histogramSamples(name, LATENCY_BOUNDS_MS, s.latency.counts, 0, s.latency.sum, { shard }, 0.001, out);
  return out;
}

export function forwardErrorSamples(byShard: ReadonlyMap<string, ForwardStats>): SampleValue[] {
  const out: SampleValue[] = [];
  for (const [shard, s] of byShard) for (const [code, n] of s.errors) out.push({ value: n, labels: { shard, code } });
  return out;
}
