// Load many keys through the router's batch API (POST /v1/kv/_batch): the
// tests' and the benchmarks' one way to fill a cluster.
import { forEachLimit, keepAliveAgent, request } from './http.js';

export interface BulkLoadOptions {
  /** Keys to write, and the value of each (a string: it travels as a JSON string). */
  readonly keys: readonly string[];
  readonly value: (key: string) => string;
  /** TTL in seconds for every key. */
  readonly ttl?: number;
  /** Puts per batch (at most the router's maxBatchOps). */
  readonly batch?: number;
  /** Batches in flight. */
  readonly concurrency?: number;
  /** Sent with every batch, e.g. a tenant's `authorization` (none: anonymous). */
  readonly headers?: Record<string, string>;
  /** Called after each batch with the number of keys loaded so far. */
  readonly onProgress?: (loaded: number) => void;
}

const json = { 'content-type': 'application/json' };

/** Write every key; throws on the first batch or put that fails. */
export async function bulkLoad(routerUrl: string, o: BulkLoadOptions): Promise<void> {
  const size = o.batch ?? 1000;
  const batches: Array<readonly string[]> = [];
  for (let i = 0; i < o.keys.length; i += size) batches.push(o.keys.slice(i, i + size));
  const concurrency = o.concurrency ?? 4;
  const agent = keepAliveAgent(concurrency);
  let loaded = 0;
  try {
    await forEachLimit(batches, concurrency, async (keys) => {
      const ops = keys.map((key) => ({ op: 'put', key, value: o.value(key), ...(o.ttl ? { ttl: o.ttl } : {}) }));
      const res = await request('POST', `${routerUrl}/v1/kv/_batch`, {
        body: JSON.stringify({ ops }),
        headers: { ...json, ...o.headers },
        agent,
        timeoutMs: 60_000,
      });
      if (res.status !== 200) throw new Error(`bulk load: batch answered ${res.status}: ${res.text.slice(0, 300)}`);
      const bad = res.json<{ results: Array<{ status: number; code?: string }> }>().results.filter((r) => r.status !== 204);
      if (bad.length > 0) throw new Error(`bulk load: ${bad.length} puts failed, e.g. ${JSON.stringify(bad[0])}`);
      loaded += keys.length;
      o.onProgress?.(loaded);
    });
  } finally {
    await agent.close();
  }
}
