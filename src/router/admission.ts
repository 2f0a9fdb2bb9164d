// Admission control in a router worker: how many shard operations its
// clients may have pending (sent to a shard or queued for one). When the
// worker is busy, the client that causes it is refused, not its neighbours:
//
//  - below maxPendingOps everything is admitted;
//  - above it, a client (an HTTP connection) over its fair share
//    (maxPendingOps / clients with something pending) gets 429 with
//    Retry-After, while a client under its share is still admitted, up to
//    twice maxPendingOps in all;
//  - past that, 503 KV_ERR_BUSY with Retry-After.
//
// A batch counts as many operations as it has. Nothing is sent for a refused
// request.
import { kvErrorRetry } from '../core/errors.js';

export class Admission {
  readonly #max: number;
  readonly #retryAfterS: number;
  #total = 0;
  readonly #byClient = new Map<object, number>();

  constructor(maxPendingOps: number, retryAfterS: number) {
    this.#max = maxPendingOps;
    this.#retryAfterS = retryAfterS;
  }

  get pending(): number {
    return this.#total;
  }

  /** Take `n` operations for `client`, or throw the refusal. Pair with release(). */
  acquire(client: object, n: number): void {
    const mine = this.#byClient.get(client) ?? 0;
    if (this.#total + n > this.#max) {
      const clients = this.#byClient.size + (mine === 0 ? 1 : 0);
      const fair = Math.max(1, Math.floor(this.#max / clients));
      if (mine + n > fair) throw kvErrorRetry('KV_ERR_TOO_MANY_REQUESTS', this.#retryAfterS, mine, fair, this.#retryAfterS);
      if (this.#total + n > 2 * this.#max) throw kvErrorRetry('KV_ERR_BUSY', this.#retryAfterS, this.#total, this.#retryAfterS);
    }
    this.#total += n;
    this.#byClient.set(client, mine + n);
  }

  release(client: object, n: number): void {
    this.#total -= n;
    const left = (this.#byClient.get(client) ?? n) - n;
    if (left > 0) this.#byClient.set(client, left);
    else this.#byClient.delete(client);
  }

  /** Run `fn` with `n` operations admitted for `client`. */
  async run<T>(client: object, n: number, fn: () => Promise<T>): Promise<T> {
    this.acquire(client, n);
    try {
      return await fn();
    } finally {
      this.release(client, n);
    }
  }
}
