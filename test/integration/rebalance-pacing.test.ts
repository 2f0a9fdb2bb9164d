// Adaptive pacing live: real Redis, shards and a router with two workers
// whose data requests feed the foreground-latency signal; a shard is added
// under a checked workload and the job reports how it was paced.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster } from '../helpers/procs.js';
import { startCheckedWorkload } from '../helpers/history.js';
import { loadedValue, bulkLoad, addShard, waitForJob, checkPlacement } from '../helpers/rebalance.js';
import { openEventStream, request } from '../helpers/http.js';
import { waitUntil } from '../../src/local/wait.js';
import { FgSignal } from '../../src/rebalance/fg-signal.js';
import { ADMIN_AUTH } from '../helpers/secrets.js';

interface SseEvent {
  job?: { id: string; state: string; pacing?: { mode: string; keysPerSec: number | null; phase: string | null; fgP99Ms: number | null } } | null;
}

const N = 30_000;
let c: TestCluster;
let keys: string[];

beforeAll(async () => {
  // Adaptive pacing is the default.
  c = await TestCluster.start({ shards: 3, workers: 2 });
  keys = await bulkLoad(c.url, 'p', N);
}, 180_000);
afterAll(async () => {
  await c?.stop();
});

describe('adaptive pacing', () => {
  it('adds a shard under load: the routers publish their latency, the job paces against its baseline and completes', async () => {
    await c.startShard('s4');
    const w = startCheckedWorkload(c.url, keys.slice(0, 2000), loadedValue);
    // Both workers publish windows with traffic in them.
    const signal = new FgSignal(c.admin, c.prefix);
    const busy = await waitUntil(
      async () => {
        const s = await signal.read();
        return s && s.workers === 2 && s.count >= 40 ? s : undefined;
      },
      { timeoutMs: 20_000, what: 'a foreground window from both workers' },
    );
    expect(busy.p99Ms).toBeGreaterThan(0);
    const sse = await openEventStream<SseEvent>(`${c.url}/v1/admin/rebalance/events`, 10_000, ADMIN_AUTH);
    const res = await addShard(c.url, 's4');
    expect(res.status, res.text).toBe(202);
    const job = await waitForJob(c.url, ['done'], 180_000);
    await sse.waitFor((e) => e.job?.id === job.id && e.job.state === 'done', 10_000, 'the done event');
    await sse.close();
    const h = await w.finish();
    expect(h.serverErrors()).toEqual([]);
    expect(h.check()).toEqual([]);
    expect(await checkPlacement(c, keys, new Set(h.absentAtEnd()))).toEqual([]);
    // The job names its pacing: adaptive, a baseline of the foreground p99, the latest p99 against it.
    expect(job.pacing?.mode).toBe('adaptive');
    expect(job.pacing?.baselineP99Ms).toBeGreaterThan(0);
    expect(job.pacing?.fgP99Ms).toBeGreaterThan(0);
    expect(job.pacing?.ratio).toBeGreaterThan(0);
    expect(['slow-start', 'increase', 'hold', 'cut', 'probe']).toContain(job.pacing?.phase);
    // The events carried the pacing while the job streamed.
    const streaming = sse.events.filter((e) => e.job?.id === job.id && e.job.state === 'streaming' && e.job.pacing?.phase);
    expect(streaming.length).toBeGreaterThan(0);
    expect(streaming.every((e) => e.job!.pacing!.mode === 'adaptive')).toBe(true);
    // Metrics name the pacing of a running job only.
    const metrics = (await request('GET', `${c.url}/metrics`)).text;
    expect(metrics).toMatch(/^kv_rebalance_rate_limit_keys_per_second 0$/m);
    expect(metrics).toMatch(/^kv_rebalance_fg_p99_ratio 0$/m);
  }, 300_000);
});
