// Direct mode's topology source: the routers' `GET /v1/topology`, read on
// demand (when a shard says the client is behind, or while a write waits out
// a freeze) and polled now and then. Each answer is checked like any stored
// record (core/topology.ts) and applied only when its epoch is newer, so the
// view never goes backwards. A router that does not answer is skipped with
// the balancer's rules (taken out of the rotation, probed until ready).
import { EventEmitter } from 'node:events';
import { kvError, KvError } from '../core/errors.js';
import { validateTopology, type Topology, type TopologySource } from '../core/topology.js';
import type { Balancer, Endpoint } from './balancer.js';

export interface RouterTopologyOptions {
  readonly pollMs: number;
  /** Each router's answer is in within this long. */
  readonly timeoutMs: number;
}

/** The largest topology document read (a few hundred shards fit easily). */
const MAX_TOPOLOGY_BYTES = 4 * 1024 * 1024;

export class RouterTopology extends EventEmitter<{ change: [Topology] }> implements TopologySource {
  readonly #balancer: Balancer;
  readonly #opts: RouterTopologyOptions;
  #current: Topology | undefined;
  #fetching: Promise<Topology> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(balancer: Balancer, opts: RouterTopologyOptions) {
    super();
    this.#balancer = balancer;
    this.#opts = opts;
  }

  get current(): Topology | undefined {
    return this.#current;
  }

  /** The first topology (fetched once, shared by concurrent callers), then the poll. */
  async ready(): Promise<Topology> {
    if (this.#current) return this.#current;
    const t = await this.#fetch();
    this.#schedulePoll();
    return t;
  }

  /**
   * Fetch now. Once a topology is known this never rejects: when no router
   * answers, the newest known one comes back, and the forwarder's bounded
   * retries end the request with a coded error (nothing was written).
   */
  refresh(): Promise<Topology> {
    return this.#fetch().catch((err: unknown) => {
      if (this.#current) return this.#current;
      throw err;
    });
  }

  #fetch(): Promise<Topology> {
    if (this.#closed) return Promise.reject(kvError('KV_ERR_ROUTER_UNAVAILABLE', 'the client is closed'));
    this.#fetching ??= this.#fromAnyRouter().finally(() => {
      this.#fetching = undefined;
    });
    return this.#fetching;
  }

  async #fromAnyRouter(): Promise<Topology> {
    const tried = new Set<Endpoint>();
    let last: KvError | undefined;
    while (tried.size < this.#balancer.endpoints.length) {
      const e = this.#balancer.pick(tried);
      if (tried.has(e)) break;
      tried.add(e);
      try {
        const t = await this.#fromRouter(e);
        this.#apply(t);
        return this.#current!;
      } catch (err) {
        last = err instanceof KvError ? err : kvError('KV_ERR_ROUTER_UNAVAILABLE', `${e.url}: ${(err as Error).message}`);
        this.#balancer.markDown(e, last.message);
      }
    }
    throw last ?? kvError('KV_ERR_ROUTER_UNAVAILABLE', 'no router to ask for the topology');
  }

  async #fromRouter(e: Endpoint): Promise<Topology> {
    const ms = this.#opts.timeoutMs;
    const res = await e.pool.request({ method: 'GET', path: '/v1/topology', headersTimeout: ms, bodyTimeout: ms });
    const length = Number(res.headers['content-length'] ?? 0);
    if (length > MAX_TOPOLOGY_BYTES) {
      res.body.destroy();
      throw kvError('KV_ERR_BAD_RESPONSE', e.url, res.statusCode, `a topology over ${MAX_TOPOLOGY_BYTES} bytes`);
    }
    const text = await res.body.text();
    e.answered++;
    if (res.statusCode !== 200) throw kvError('KV_ERR_ROUTER_UNAVAILABLE', `${e.url}: GET /v1/topology answered ${res.statusCode}`);
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw kvError('KV_ERR_BAD_RESPONSE', e.url, 200, 'GET /v1/topology is not JSON');
    }
    try {
      return validateTopology(doc);
    } catch (err) {
      throw kvError('KV_ERR_BAD_RESPONSE', e.url, 200, `GET /v1/topology: ${(err as Error).message}`);
    }
  }

  #apply(t: Topology): void {
    if (this.#current && t.epoch <= this.#current.epoch) return;
    this.#current = t;
    this.emit('change', t);
  }

  #schedulePoll(): void {
    if (this.#closed || this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#fetch()
        .catch(() => undefined)
        .finally(() => {
          this.#timer = undefined;
          this.#schedulePoll();
        });
    }, this.#opts.pollMs);
    this.#timer.unref();
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
  }
}
