// Helpers for rebalancing tests: bulk loading, driving the admin API and
// checking where keys live afterwards.
import http from 'node:http';
import { request } from './http.js';
import type { TestCluster } from './procs.js';
import { ringOf } from '../../src/core/topology.js';

const json = { 'content-type': 'application/json' };

export const loadedValue = (key: string) => `${key}:${'x'.repeat(90)}`;

/** Load `n` keys `${prefix}${i}` with ~100-byte values through the batch API. */
export async function bulkLoad(url: string, prefix: string, n: number, opts: { ttl?: number; batch?: number; concurrency?: number } = {}): Promise<string[]> {
  const batch = opts.batch ?? 1000;
  const keys = Array.from({ length: n }, (_, i) => `${prefix}${i}`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  let next = 0;
  await Promise.all(Array.from({ length: opts.concurrency ?? 4 }, async () => {
    while (next < n) {
      const from = next;
      next += batch;
      const ops = keys.slice(from, from + batch).map((key) => ({ op: 'put', key, value: loadedValue(key), ...(opts.ttl ? { ttl: opts.ttl } : {}) }));
      const res = await request('POST', `${url}/v1/kv/_batch`, { body: JSON.stringify({ ops }), headers: json, agent, timeoutMs: 60_000 });
      if (res.status !== 200) throw new Error(`bulk load: ${res.status} ${res.text}`);
      const bad = (res.json() as { results: Array<{ status: number; code?: string }> }).results.filter((r) => r.status !== 204);
      if (bad.length) throw new Error(`bulk load: ${bad.length} failed, e.g. ${JSON.stringify(bad[0])}`);
    }
  }));
  agent.destroy();
  return keys;
}

export interface JobView {
  id: string;
  shardId: string;
  state: string;
  direction: string;
  error?: string;
  streams: Array<{ source: string; target: string; keysDone: number; keysTotal: number; done: boolean; lastError?: string }>;
}

export async function rebalanceState(url: string): Promise<{ job: JobView | null; progress?: { keysDone: number; keysTotal: number }; foregroundErrors?: number }> {
  const res = await request('GET', `${url}/v1/admin/rebalance`);
  if (res.status !== 200) throw new Error(`rebalance state: ${res.status} ${res.text}`);
  return res.json();
}

export async function addShard(url: string, id: string, weight?: number) {
  return request('POST', `${url}/v1/admin/shards`, { body: JSON.stringify({ id, ...(weight ? { weight } : {}) }), headers: json });
}

export async function removeShard(url: string, id: string) {
  return request('DELETE', `${url}/v1/admin/shards/${id}`);
}

/** Wait for the job to reach one of `states` (default: done). */
export async function waitForJob(url: string, states: string[] = ['done'], timeoutMs = 120_000, pred?: (j: JobView) => boolean): Promise<JobView> {
  const deadline = Date.now() + timeoutMs;
  let last: JobView | null = null;
  while (Date.now() < deadline) {
    const s = await rebalanceState(url).catch(() => null);
    last = s?.job ?? last;
    if (last && (states.includes(last.state) || (pred && pred(last)))) return last;
    if (last && last.state === 'failed' && !states.includes('failed')) throw new Error(`job failed: ${last.error}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`job did not reach ${states.join('/')} in ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
}

/** Count records on each shard through its admin /stats. */
export async function recordsPerShard(c: TestCluster): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const s of c.shards) {
    if (s.child.exitCode !== null || s.child.signalCode !== null) continue;
    out[s.id] = (await request('GET', `${s.adminUrl}/stats`)).json()['records'] as number;
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
      if (s.child.exitCode !== null || s.child.signalCode !== null) continue;
      const has = (await request('GET', `${s.adminUrl}/kv/${encodeURIComponent(key)}`)).status === 200;
      if (s.id === owner && !has && !deleted.has(key)) problems.push(`${key} missing on its owner ${s.id}`);
      if (s.id !== owner && has) problems.push(`${key} left behind on ${s.id} (owner ${owner})`);
    }
  }
  return problems;
}
