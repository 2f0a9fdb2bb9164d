// What `kv top` shows, computed from what it read: the admin API's shard list
// and job status, and two successive /metrics scrapes of each router host.
// Pure: no I/O, so the arithmetic is tested on its own. Every number is null
// when its source is absent (a router without a metric, a shard that did not
// answer), and null is shown as "-".
import { FINAL_STATES } from '../rebalance/job.js';
import type { AdminShard, AdminShards, JobPacing, StatusView } from './router-client.js';
import { addBuckets, bucketTotal, counterIncrease, gaugeSum, histogramIncrease, histogramQuantile, perSecond, type Buckets, type Scrape } from './prom-text.js';

/** Two scrapes of one router host's /metrics, `seconds` apart (prev null: only one so far). */
export interface RouterScrapes {
  url: string;
  prev: Scrape | null;
  cur: Scrape | null;
  seconds: number;
  error: string | null;
}

export type Health = 'ok' | 'late' | 'down';

export interface ShardRow {
  id: string;
  state: string;
  weight: number | null;
  /** Share of the ring, 0..1, as the admin API gives it. */
  share: number;
  records: number | null;
  bytes: number | null;
  /** Requests forwarded to the shard and answered, per second, over all router hosts. */
  opsPerSec: number | null;
  /** p99 of the router -> shard forward latency in the window, ms. */
  p99Ms: number | null;
  heartbeatAgeMs: number | null;
  health: Health;
  /** Why it is late or down, in a few words. */
  healthNote: string | null;
}

export interface RouterRow {
  url: string;
  reqPerSec: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  err4xxPerSec: number | null;
  err5xxPerSec: number | null;
  inFlight: number | null;
  workers: number | null;
  error: string | null;
}

export interface MoveView {
  jobId: string;
  kind: string;
  shardId: string;
  state: string;
  keysDone: number;
  keysTotal: number;
  /** 0..100 */
  percent: number;
  keysPerSec: number;
  etaSeconds: number | null;
  pacing: JobPacing | null;
}

export interface TopSnapshot {
  at: string;
  /** The router whose admin API gave the shards and the job. */
  router: string;
  epoch: number | null;
  shardCount: number | null;
  shards: ShardRow[];
  routers: RouterRow[];
  move: MoveView | null;
  /** One line per problem (router unreachable, token refused, ...). */
  errors: string[];
}

export interface TopOptions {
  /** A shard whose heartbeat is older than this is late. */
  lateMs: number;
}

/** The routes `kv top` leaves out of request rates and latencies: its own scrapes. */
const SELF_ROUTES = new Set(['/metrics']);
const notSelf = (l: Readonly<Record<string, string>>) => !SELF_ROUTES.has(l['route'] ?? '');

const ms = (s: number | null) => (s === null ? null : s * 1000);

export function routerRow(r: RouterScrapes): RouterRow {
  const row: RouterRow = {
    url: r.url,
    reqPerSec: null,
    p50Ms: null,
    p99Ms: null,
    err4xxPerSec: null,
    err5xxPerSec: null,
    inFlight: null,
    workers: null,
    error: r.error,
  };
  const { prev, cur } = r;
  if (!cur) return row;
  row.inFlight = gaugeSum(cur, 'kv_router_in_flight');
  row.workers = gaugeSum(cur, 'kv_router_workers');
  if (!prev) return row;
  const rate = (filter: (l: Readonly<Record<string, string>>) => boolean) =>
    perSecond(counterIncrease(prev, cur, 'kv_router_requests_total', filter), r.seconds);
  row.reqPerSec = rate(notSelf);
  row.err4xxPerSec = rate((l) => notSelf(l) && (l['status'] ?? '').startsWith('4'));
  row.err5xxPerSec = rate((l) => notSelf(l) && (l['status'] ?? '').startsWith('5'));
  const h = histogramIncrease(prev, cur, 'kv_router_request_duration_seconds', notSelf);
  row.p50Ms = ms(histogramQuantile(0.5, h));
  row.p99Ms = ms(histogramQuantile(0.99, h));
  return row;
}

/** Forward latency buckets and answered requests of one shard, over every router host with two scrapes. */
function shardTraffic(id: string, routers: readonly RouterScrapes[]): { opsPerSec: number | null; p99Ms: number | null } {
  const ofShard = (l: Readonly<Record<string, string>>) => l['shard'] === id;
  const per: Array<{ b: Buckets | null; seconds: number }> = routers
    .filter((r) => r.prev && r.cur)
    .map((r) => ({ b: histogramIncrease(r.prev!, r.cur!, 'kv_router_forward_duration_seconds', ofShard), seconds: r.seconds }));
  const present = per.filter((p) => p.b !== null);
  if (present.length === 0) return { opsPerSec: null, p99Ms: null };
  // Each host's rate over its own window, then summed.
  const opsPerSec = present.reduce((sum, p) => sum + (perSecond(bucketTotal(p.b), p.seconds) ?? 0), 0);
  return { opsPerSec, p99Ms: ms(histogramQuantile(0.99, addBuckets(present.map((p) => p.b)))) };
}

function health(s: AdminShard, o: TopOptions): { health: Health; note: string | null } {
  if (!s.registered) return { health: 'down', note: 'no heartbeat: its registration expired' };
  if (s.heartbeatAgeMs != null && s.heartbeatAgeMs > o.lateMs) return { health: 'late', note: `heartbeat ${(s.heartbeatAgeMs / 1000).toFixed(1)} s ago` };
  if (s.keys === null) return { health: 'late', note: 'registered, but did not answer the stats request' };
  return { health: 'ok', note: null };
}

export function moveView(status: StatusView | null): MoveView | null {
  const job = status?.job;
  if (!job || FINAL_STATES.has(job.state as never)) return null;
  const p = status.progress;
  const keysDone = p?.keysDone ?? job.streams.reduce((a, s) => a + s.keysDone, 0);
  const keysTotal = p?.keysTotal ?? job.streams.reduce((a, s) => a + s.keysTotal, 0);
  return {
    jobId: job.id,
    kind: job.kind,
    shardId: job.shardId,
    state: job.state,
    keysDone,
    keysTotal,
    percent: keysTotal > 0 ? Math.min(100, (keysDone / keysTotal) * 100) : 0,
    keysPerSec: p?.keysPerSec ?? 0,
    etaSeconds: p?.etaSeconds ?? null,
    pacing: job.pacing ?? null,
  };
}

export function buildSnapshot(
  input: { router: string; shards: AdminShards | null; status: StatusView | null; routers: readonly RouterScrapes[]; errors: readonly string[]; at: Date },
  o: TopOptions,
): TopSnapshot {
  const shards: ShardRow[] = (input.shards?.shards ?? []).map((s) => {
    const h = health(s, o);
    return {
      id: s.id,
      state: s.state,
      weight: s.weight,
      share: s.share,
      records: s.keys,
      bytes: s.bytes,
      ...shardTraffic(s.id, input.routers),
      heartbeatAgeMs: s.heartbeatAgeMs ?? null,
      health: h.health,
      healthNote: h.note,
    };
  });
  const routers = input.routers.map(routerRow);
  return {
    at: input.at.toISOString(),
    router: input.router,
    epoch: input.shards?.epoch ?? null,
    shardCount: input.shards ? input.shards.shards.length : null,
    shards,
    routers,
    move: moveView(input.status),
    errors: [...input.errors, ...routers.filter((r) => r.error).map((r) => r.error!)].filter((e, i, a) => a.indexOf(e) === i),
  };
}
