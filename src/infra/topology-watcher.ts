// Keeps the newest topology in memory. Watchers apply a published record at
// once (no read back); pub/sub is only a hint, so they also re-read whenever
// the subscriber reconnects, and poll.
import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import type { Topology, TopologySource } from '../core/topology.js';
import type { TopologyStore } from './topology-store.js';

/**
 * Keeps the newest topology in memory: a pub/sub hint, a re-read whenever the
 * subscriber reconnects, and a poll. Emits 'change' (topology) on every new
 * epoch and never moves backwards.
 */
export class TopologyWatcher extends EventEmitter implements TopologySource {
  readonly #store: TopologyStore;
  readonly #sub: Redis;
  readonly #pollMs: number;
  #current: Topology | undefined;
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<Topology> | undefined;
  #closed = false;

  constructor(store: TopologyStore, subscriber: Redis, pollMs: number) {
    super();
    this.#store = store;
    this.#sub = subscriber;
    this.#pollMs = pollMs;
  }

  get current(): Topology | undefined {
    return this.#current;
  }

  async start(): Promise<Topology> {
    this.#sub.on('message', (channel: string, message: string) => {
      if (channel !== this.#store.channel) return;
      let t: Topology | undefined;
      try {
        t = this.#store.fromMessage(message);
      } catch {
        t = undefined; // not a valid record: read what Redis holds
      }
      if (t) this.#apply(t);
      else this.refresh().catch(() => {});
    });
    this.#sub.on('ready', () => {
      this.refresh().catch(() => {});
    });
    await this.#sub.subscribe(this.#store.channel);
    const t = await this.refresh();
    const poll = () => {
      if (this.#closed) return;
      this.refresh()
        .catch(() => {})
        .finally(() => {
          if (!this.#closed) this.#timer = setTimeout(poll, this.#pollMs).unref();
        });
    };
    this.#timer = setTimeout(poll, this.#pollMs).unref();
    return t;
  }

  /** Re-read from Redis; concurrent callers share one read. */
  refresh(): Promise<Topology> {
    if (this.#refreshing) return this.#refreshing;
    this.#refreshing = this.#store
      .get()
      .then((t) => {
        this.#apply(t);
        return this.#current!;
      })
      .finally(() => {
        this.#refreshing = undefined;
      });
    return this.#refreshing;
  }

  #apply(t: Topology): void {
    if (this.#current && t.epoch <= this.#current.epoch) return;
    this.#current = t;
    this.emit('change', t);
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#sub.disconnect();
  }
}
