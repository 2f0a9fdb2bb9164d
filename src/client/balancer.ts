// Peer-to-peer load balancing: the client itself spreads requests over the
// routers it knows, round robin, with no proxy in between. A router that
// fails at the connection level, or answers that it cannot serve, is taken
// out of the rotation and asked `GET /readyz` in the background until it
// answers 200; then it is used again. When every router is out, requests
// still go to them (round robin): a router that is only marked down may have
// recovered before its next probe.
import { EventEmitter } from 'node:events';
import { Pool } from 'undici';

export interface RouterStats {
  readonly url: string;
  /** In the rotation (not marked down). */
  readonly healthy: boolean;
  /** Requests this router answered (any status). */
  readonly answered: number;
  /** Attempts that failed at the connection level, or got a 502/503 that took the router out. */
  readonly failures: number;
  /** Why it was last taken out, when it is out. */
  readonly lastError: string | undefined;
}

export interface BalancerOptions {
  readonly connections: number;
  readonly connectTimeoutMs: number;
  readonly readyProbeMs: number;
  readonly ca: string | Uint8Array | undefined;
}

export class Endpoint {
  readonly url: string;
  readonly pool: Pool;
  healthy = true;
  answered = 0;
  failures = 0;
  lastError: string | undefined;
  probe: NodeJS.Timeout | undefined;

  constructor(url: string, o: BalancerOptions) {
    this.url = url;
    this.pool = new Pool(url, {
      connections: o.connections,
      pipelining: 1,
      connect: { timeout: o.connectTimeoutMs, ...(o.ca !== undefined ? { ca: typeof o.ca === 'string' ? o.ca : Buffer.from(o.ca) } : {}) },
    });
  }

  stats(): RouterStats {
    return { url: this.url, healthy: this.healthy, answered: this.answered, failures: this.failures, lastError: this.healthy ? undefined : this.lastError };
  }
}

export interface BalancerEvents {
  /** A router was taken out of the rotation. */
  'router-down': [url: string, reason: string];
  /** A router answered its readiness probe and is back in the rotation. */
  'router-up': [url: string];
}

export class Balancer extends EventEmitter<BalancerEvents> {
  readonly endpoints: readonly Endpoint[];
  readonly #probeMs: number;
  readonly #probeTimeoutMs: number;
  #next = 0;
  #closed = false;

  constructor(urls: readonly string[], o: BalancerOptions) {
    super();
    this.endpoints = urls.map((u) => new Endpoint(u, o));
    this.#probeMs = o.readyProbeMs;
    this.#probeTimeoutMs = Math.max(o.readyProbeMs, o.connectTimeoutMs);
  }

  /**
   * The next router for an attempt: round robin over the healthy ones not in
   * `tried`; else over the unhealthy ones not in `tried`; else over all
   * (every router was tried: start again).
   */
  pick(tried: ReadonlySet<Endpoint>): Endpoint {
    const eps = this.endpoints;
    const n = eps.length;
    const start = this.#next;
    this.#next = (this.#next + 1) % n;
    const scan = (ok: (e: Endpoint) => boolean): Endpoint | undefined => {
      for (let i = 0; i < n; i++) {
        const e = eps[(start + i) % n]!;
        if (ok(e)) return e;
      }
      return undefined;
    };
    return scan((e) => e.healthy && !tried.has(e)) ?? scan((e) => !tried.has(e)) ?? scan((e) => e.healthy) ?? eps[start]!;
  }

  /** Take a router out of the rotation and probe it until it is ready again. */
  markDown(e: Endpoint, reason: string): void {
    e.failures++;
    e.lastError = reason;
    if (!e.healthy || this.#closed) return;
    e.healthy = false;
    this.emit('router-down', e.url, reason);
    this.#scheduleProbe(e);
  }

  #scheduleProbe(e: Endpoint): void {
    if (this.#closed) return;
    e.probe = setTimeout(() => void this.#probe(e), this.#probeMs);
    e.probe.unref();
  }

  async #probe(e: Endpoint): Promise<void> {
    e.probe = undefined;
    let ready = false;
    try {
      const res = await e.pool.request({
        method: 'GET',
        path: '/readyz',
        headersTimeout: this.#probeTimeoutMs,
        bodyTimeout: this.#probeTimeoutMs,
      });
      await res.body.dump();
      ready = res.statusCode === 200;
      if (!ready) e.lastError = `GET /readyz answered ${res.statusCode}`;
    } catch (err) {
      e.lastError = (err as Error).message;
    }
    if (this.#closed) return;
    if (ready) {
      e.healthy = true;
      this.emit('router-up', e.url);
    } else {
      this.#scheduleProbe(e);
    }
  }

  stats(): RouterStats[] {
    return this.endpoints.map((e) => e.stats());
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const e of this.endpoints) clearTimeout(e.probe);
    await Promise.all(this.endpoints.map((e) => e.pool.close().catch(() => undefined)));
  }
}
