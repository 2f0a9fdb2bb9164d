// Counters read around each run to explain the numbers: how well the router
// batches (requests per frame on its shard connections, retries) and how many
// Redis commands the data path costs.
import { createRedis } from '../src/infra/redis.js';
import { get } from '../dev/http.js';

export interface RouterCounters {
  /** Worker pids that answered. */
  readonly pids: number[];
  readonly frames: number;
  readonly requests: number;
  readonly retries: number;
}

interface WorkerStats {
  pid: number;
  retries?: number;
  shards?: Record<string, { frames?: number; requests?: number }>;
}

/**
 * /v1/stats is per worker. A new connection goes to the next worker (cluster
 * round robin), so ask on fresh connections until every worker has answered.
 */
export async function routerCounters(url: string, workers: number): Promise<RouterCounters> {
  const seen = new Map<number, WorkerStats>();
  for (let i = 0; i < workers * 8 && seen.size < workers; i++) {
    const res = await get(`${url}/v1/stats`, { fresh: true });
    if (res.status !== 200) continue;
    const s = res.json<WorkerStats>();
    seen.set(s.pid, s);
  }
  let frames = 0;
  let requests = 0;
  let retries = 0;
  for (const s of seen.values()) {
    retries += s.retries ?? 0;
    for (const c of Object.values(s.shards ?? {})) {
      frames += c.frames ?? 0;
      requests += c.requests ?? 0;
    }
  }
  return { pids: [...seen.keys()].sort((a, b) => a - b), frames, requests, retries };
}

/** Total calls per Redis command since the server started (INFO commandstats). */
export async function redisCommandCalls(redisUrl: string): Promise<Record<string, number>> {
  const redis = createRedis({ redisUrl, redisCommandTimeoutMs: 2000 });
  try {
    const info = await redis.info('commandstats');
    const out: Record<string, number> = {};
    for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out[m[1]!] = Number(m[2]);
    return out;
  } finally {
    redis.disconnect();
  }
}

/** after - before, per command, leaving out INFO and HELLO (our own measuring connection: handshake and ready check). */
export function commandDelta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [cmd, n] of Object.entries(after)) {
    if (cmd === 'info' || cmd === 'hello') continue;
    const d = n - (before[cmd] ?? 0);
    if (d > 0) out[cmd] = d;
  }
  return out;
}
