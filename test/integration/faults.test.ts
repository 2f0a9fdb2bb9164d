// Process faults with real parts: kill -9 a router worker under writes,
// rolling restart under load, kill -9 a shard and restart it on its data,
// a Redis outage. Every client operation goes into a history, and the
// history checker then asks whether each read could have happened: every
// acknowledged write must be readable afterwards.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster } from '../helpers/procs.js';
import { get, put } from '../helpers/http.js';
import { History, runWorkload, finalReads, type HistOp, type WorkloadOptions } from '../helpers/history.js';
import { waitUntil } from '../../src/local/wait.js';
import { ringOf } from '../../src/core/topology.js';

let c: TestCluster;

beforeAll(async () => {
  c = await TestCluster.start({ shards: 3, workers: 2 });
});
afterAll(async () => {
  await c?.stop();
});

/** A recorded workload over `keys` (absent at the start) that runs until stop(). */
function workload(keys: string[], o: Partial<Pick<WorkloadOptions, 'putRatio' | 'delRatio' | 'pauseMs'>> = {}) {
  const h = new History();
  let stopped = false;
  const done = runWorkload(h, { url: c.url, keys, concurrency: 8, putRatio: 0.6, delRatio: 0.1, ...o, stop: () => stopped });
  return {
    h,
    /** Wait until `n` more operations than now were recorded (the load really ran through what happened meanwhile). */
    async more(n: number, what: string): Promise<void> {
      const target = h.ops.length + n;
      await waitUntil(() => h.ops.length >= target, { timeoutMs: 20_000, what: `${n} more operations ${what}` });
    },
    /** Stop the clients, read every key once more and return the history. */
    async finish(): Promise<History> {
      stopped = true;
      await done;
      await finalReads(h, c.url, keys);
      return h;
    },
  };
}

const keysOf = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`);
const isStatus = (o: HistOp, ...allowed: Array<number | string>) => allowed.includes(o.status);

async function workerPids(): Promise<Set<number>> {
  const pids = new Set<number>();
  for (let i = 0; i < 20 && pids.size < 2; i++) pids.add((await get(`${c.url}/healthz`, { fresh: true })).json()['pid'] as number);
  return pids;
}

describe('router faults', () => {
  it('kill -9 of a worker under writes: respawned, every acknowledged write readable', async () => {
    const w = workload(keysOf('crash-', 300));
    await w.more(200, 'before the kill');
    const victim = c.router.workerPids[0]!;
    process.kill(victim, 'SIGKILL');
    const respawn = await c.router.waitFor((m) => m['type'] === 'respawned' && m['replaced'] === victim, 15_000);
    await w.more(300, 'after the respawn');
    const h = await w.finish();
    expect(h.ops.filter((o) => o.kind === 'put' && o.outcome === 'ok').length).toBeGreaterThan(100);
    // Requests on the killed worker's connections may get no answer (outcome
    // unknown); nothing else fails. No shard went away: no 502, 503 or 504.
    expect(h.ops.filter((o) => !isStatus(o, 200, 204, 404, 'error'))).toEqual([]);
    expect(h.check()).toEqual([]);
    // The replacement serves too: two workers answer on fresh connections.
    const pids = await workerPids();
    expect(pids.size).toBe(2);
    expect(pids.has(respawn['pid'] as number)).toBe(true);
    expect(pids.has(victim)).toBe(false);
  });

  it('SIGUSR2 rolls every worker with zero failed requests under load', async () => {
    const before = await workerPids();
    const w = workload(keysOf('roll-', 200), { putRatio: 0.4, delRatio: 0.1 });
    await w.more(200, 'before the roll');
    const rolledCount = c.router.messages.filter((m) => m['type'] === 'rolled').length;
    process.kill(c.router.pid, 'SIGUSR2');
    const rolled = await c.router.waitFor(
      (m) => m['type'] === 'rolled' && c.router.messages.filter((x) => x['type'] === 'rolled').length > rolledCount,
      60_000,
    );
    await w.more(200, 'after the roll');
    const h = await w.finish();
    expect(h.ops.length).toBeGreaterThan(400);
    expect(h.ops.filter((o) => !isStatus(o, 200, 204, 404))).toEqual([]);
    const after = rolled['workers'] as number[];
    expect(after).toHaveLength(2);
    for (const pid of after) expect(before.has(pid)).toBe(false);
    expect(h.check()).toEqual([]);
  });
});

describe('shard faults', () => {
  it('kill -9 of a shard, restart on the same data dir: every acknowledged write is still there', async () => {
    const ring = ringOf(await c.store.get());
    const victim = c.shards[1]!;
    const keys = keysOf('shardkill-', 600);
    const onVictim = new Set(keys.filter((k) => ring.ownerOf(k) === victim.id));
    const ackedOnVictim = (h: History) => h.ops.filter((o) => o.kind === 'put' && o.outcome === 'ok' && onVictim.has(o.key)).length;
    const w = workload(keys, { putRatio: 0.8, delRatio: 0.1 });
    await waitUntil(() => ackedOnVictim(w.h) >= 60, { timeoutMs: 20_000, what: 'acknowledged writes on the victim' });
    victim.kill('SIGKILL');
    await victim.exited();
    // While it is down, its keys fail fast with a clear code; others still
    // work. A request the router wrote to the dying socket before it saw the
    // connection drop is rightly "outcome unknown" (502) first.
    const probes = keysOf('probe-', 100);
    const ownKey = probes.find((k) => ring.ownerOf(k) === victim.id)!;
    const otherKey = probes.find((k) => ring.ownerOf(k) !== victim.id)!;
    const answers: Array<{ status: number; code: unknown }> = [];
    await waitUntil(
      async () => {
        const res = await put(`${c.url}/v1/kv/${ownKey}`, 'x');
        answers.push({ status: res.status, code: res.json()['code'] });
        return res.status !== 502;
      },
      { timeoutMs: 10_000, what: 'an answer other than 502 for a key of the dead shard' },
    );
    expect(answers.slice(0, -1).every((a) => a.status === 502 && a.code === 'KV_ERR_OUTCOME_UNKNOWN')).toBe(true);
    expect(answers[answers.length - 1]).toEqual({ status: 503, code: 'KV_ERR_SHARD_UNAVAILABLE' });
    expect((await put(`${c.url}/v1/kv/${otherKey}`, 'x')).status).toBe(204);
    await w.more(200, 'while the shard is down');
    const downSince = w.h.ops.length;
    const fresh = await c.restartShard(victim);
    expect(fresh.dataAddr).toBe(victim.dataAddr);
    // The routers reconnect by themselves (after their connect backoff).
    await waitUntil(async () => (await get(`${c.url}/v1/kv/${ownKey}`)).status === 404, { timeoutMs: 10_000, what: 'the restarted shard serving again' });
    await w.more(200, 'after the restart');
    const h = await w.finish();
    expect(ackedOnVictim(h)).toBeGreaterThan(50);
    // Only "nothing written" (503) or "outcome unknown" (502, no answer) failures.
    expect(h.ops.filter((o) => !isStatus(o, 200, 204, 404, 502, 503, 'error'))).toEqual([]);
    // The outage was seen by the workload, on the victim's keys only.
    const refused = h.ops.slice(0, downSince).filter((o) => o.status === 503);
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((o) => onVictim.has(o.key))).toBe(true);
    expect(h.check()).toEqual([]);
    // The probe answered 503 wrote nothing (the 502s reached no live process).
    expect((await get(`${c.url}/v1/kv/${ownKey}`)).status).toBe(404);
  });
});

describe('Redis outage', () => {
  it('readiness fails with a code while the data path keeps serving from the known topology', async () => {
    expect((await put(`${c.url}/v1/kv/before-outage`, 'x')).status).toBe(204);
    await c.redis.stop();
    const ready = await get(`${c.url}/readyz`, { fresh: true });
    expect(ready.status).toBe(503);
    expect(ready.json()['code']).toBe('KV_ERR_REDIS_UNAVAILABLE');
    expect((await get(`${c.url}/healthz`)).status).toBe(200);
    expect((await put(`${c.url}/v1/kv/during-outage`, 'y')).status).toBe(204);
    expect((await get(`${c.url}/v1/kv/during-outage`)).text).toBe('y');
    expect((await get(`${c.url}/v1/kv/before-outage`)).text).toBe('x');
  });
});
