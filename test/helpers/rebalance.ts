// Helpers for rebalancing tests: bulk loading, driving the admin API and
// checking where keys live afterwards.
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from './http.js';
import { ADMIN_AUTH } from './secrets.js';
import { bulkLoad as loadKeys } from '../../dev/bulk-load.js';
import type { TestCluster } from './procs.js';
import { ringOf } from '../../src/core/topology.js';

const json = { 'content-type': 'application/json' };

export const loadedValue = (key: string) => `${key}:${'x'.repeat(90)}`;

/** Load `n` keys `${prefix}${i}` with ~100-byte values (loadedValue) through the batch API; returns the keys. */
export async function bulkLoad(url: string, prefix: string, n: number, opts: { ttl?: number; batch?: number; concurrency?: number } = {}): Promise<string[]> {
  const keys = Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  await loadKeys(url, { keys, value: loadedValue, ...opts });
  return keys;
}

export interface JobView {
  id: string;
  shardId: string;
  state: string;
  direction: string;
  error?: string;
  pacing?: { mode: string; keysPerSec: number | null; phase: string | null; fgP99Ms: number | null; baselineP99Ms: number | null; ratio: number | null };
  streams: Array<{ source: string; target: string; keysDone: number; keysTotal: number; done: boolean; lastError?: string }>;
}

export async function rebalanceState(
  url: string,
): Promise<{ job: JobView | null; progress?: { keysDone: number; keysTotal: number }; foregroundErrors?: number }> {
  const res = await request('GET', `${url}/v1/admin/rebalance`, { headers: ADMIN_AUTH });
  if (res.status !== 200) throw new Error(`rebalance state: ${res.status} ${res.text}`);
  return res.json();
}

export async function addShard(url: string, id: string, weight?: number) {
  return request('POST', `${url}/v1/admin/shards`, { body: JSON.stringify({ id, ...(weight ? { weight } : {}) }), headers: { ...json, ...ADMIN_AUTH } });
}

export async function removeShard(url: string, id: string) {
  return request('DELETE', `${url}/v1/admin/shards/${id}`, { headers: ADMIN_AUTH });
}

/** How often waitForJob reads the job state. */
const JOB_POLL_MS = 50;

/** Wait for the job to reach one of `states` (default: done), or to match `pred`; a failed job throws at once. */
export async function waitForJob(url: string, states: string[] = ['done'], timeoutMs = 120_000, pred?: (j: JobView) => boolean): Promise<JobView> {
  const deadline = Date.now() + timeoutMs;
  let last: JobView | null = null;
  while (Date.now() < deadline) {
    const s = await rebalanceState(url).catch(() => null);
    last = s?.job ?? last;
    if (last && (states.includes(last.state) || (pred && pred(last)))) return last;
    if (last && last.state === 'failed' && !states.includes('failed')) throw new Error(`job failed: ${last.error}`);
    await sleep(JOB_POLL_MS);
  }
  throw new Error(`job did not reach ${states.join('/')} in ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
}

/** Count records on each shard through its admin /stats. */
export async function recordsPerShard(c: TestCluster): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const s of c.shards) {
    if (!s.alive) continue;
    out[s.id] = (await request('GET', `${s.adminUrl}/stats`, { headers: ADMIN_AUTH })).json()['records'] as number;
  }
  return out;
}

/** Every sampled key lives on exactly its ring owner (read through each shard's admin port). */
export async function checkPlacement(c: TestCluster, keys: string[], deleted: ReadonlySet<string> = new Set(), sample = 300): Promise<string[]> {
  const t = await c.store.get();
  const ring = ringOf(t);
  const problems: string[] = [];
  const step = Math.max(1, Math.floor(keys.length / sample));
  for (let i = 0; i < keys.length; i += step) {
    const key = keys[i]!;
    const owner = ring.ownerOf(key);
    for (const s of c.shards) {
      if (!s.alive) continue;
      const has = (await request('GET', `${s.adminUrl}/kv/${encodeURIComponent(key)}`, { headers: ADMIN_AUTH })).status === 200;
      if (s.id === owner && !has && !deleted.has(key)) problems.push(`${key} missing on its owner ${s.id}`);
      if (s.id !== owner && has) problems.push(`${key} left behind on ${s.id} (owner ${owner})`);
    }
  }
  return problems;
}
