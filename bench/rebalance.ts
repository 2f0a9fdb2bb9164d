// Rebalance benchmark: add a fourth shard to a loaded cluster while a
// fixed-rate foreground load runs, and measure how fast keys move and what
// the move does to the foreground's latency.
//
//   npm run bench:rebalance            # or: npx tsx bench/rebalance.ts (after npm run build)
//   BENCH_KEYS=200000 BENCH_BATCH_KEYS=5000 BENCH_STREAMS=3 npm run bench:rebalance
//
// Method:
//   1. Start redis-server, shards s1..s3 and the router cluster (each its own
//      process on 127.0.0.1), load BENCH_KEYS keys through POST /v1/kv/_batch
//      (1000 puts per batch, BENCH_LOAD_CONCURRENCY batches in flight), then
//      start shard s4, which registers but holds no data.
//   2. Max: a closed-loop autocannon run (BENCH_CONNECTIONS connections, 50%
//      GET / 50% PUT of random loaded keys) gives the router's peak req/s.
//   3. Foreground: autocannon at a fixed overall rate of BENCH_FG_PCT % of
//      that peak, same mix. After a warm-up, BENCH_BASELINE_S seconds are the
//      "before" window; then POST /v1/admin/shards {"id":"s4"} and poll
//      GET /v1/admin/rebalance until the job is done ("during"), then
//      BENCH_AFTER_S seconds "after". Latency is taken per response, so one
//      autocannon instance (same connections) spans all three windows.
//      autocannon's rate limit is per second: each connection sends its share
//      back to back at the start of every second and then waits, so the load
//      comes in bursts of BENCH_FG_CONNECTIONS concurrent requests.
//   4. CPU per moved key: utime+stime from /proc per tier over the job
//      (POST to done), divided by keys moved. "net" subtracts what the tier
//      spent per second on the foreground alone in the "before" window.
//   5. Idle move: with the foreground stopped (and the routers' published
//      latency windows no longer showing it or the read-back check), DELETE s4
//      again, so the same keys move back with no load to protect
//      (BENCH_IDLE_MOVE=0 skips it).
//   6. Ceiling: an LMDB-to-LMDB copy of as many records as the move carried,
//      each of the size a shard stores it (header, content type, value), in
//      this process (bench/copy-ceiling.ts: no network, no checks, lmdb-js's
//      range reads and batched puts), BENCH_CEILING_RUNS times; the median is
//      the ceiling. Both moves' streaming keys/s are reported as a fraction
//      of it.
//
// Settings (env): BENCH_KEYS (1000000), BENCH_VALUE_BYTES (100),
// BENCH_LOAD_CONCURRENCY (4), ROUTER_WORKERS (2), BENCH_NOSYNC (0),
// BENCH_PACING (router rebalancePacing, adaptive or fixed; unset = router
// default), BENCH_MOVE_RATE (router rebalanceMaxKeysPerSec, the fixed pacing's
// rate, 0 = no limit; unset = router default),
// BENCH_BATCH_KEYS / BENCH_IDLE_BATCH_KEYS / BENCH_BATCH_BYTES / BENCH_STREAMS /
// BENCH_IMPORTS_IN_FLIGHT (router rebalanceBatchKeys / rebalanceIdleBatchKeys /
// rebalanceBatchBytes / rebalanceStreamConcurrency / rebalanceImportsInFlight;
// unset = router default), BENCH_CONNECTIONS (64) and BENCH_MAX_S (5) for the
// peak run, BENCH_WARMUP_S (2), BENCH_FG_PCT (10), BENCH_FG_CONNECTIONS (10),
// BENCH_BASELINE_S (10), BENCH_AFTER_S (3), BENCH_MOVE_TIMEOUT_S (600),
// BENCH_POLL_MS (200), BENCH_TIMEOUT_S (1800, the whole run), BENCH_IDLE_MOVE
// (1), BENCH_CEILING_BATCH (10000, records awaited at a time in the ceiling
// copy), BENCH_CEILING_RUNS (3, copies; the median is the ceiling),
// BENCH_VERBOSE (0), BENCH_NODE_ARGS (extra node flags for shards and router).
import autocannon from 'autocannon';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRedis } from '../src/infra/redis.js';
import type { Job } from '../src/rebalance/job.js';
import { startTopology, startShard, Cleanup, runBench, type BenchTopology, type ShardProcess, ADMIN_HEADER } from './topology.js';
import { request, get, getJson, forEachLimit } from '../dev/http.js';
import { bulkLoad } from '../dev/bulk-load.js';
import { US_PER_TICK, childrenOf, machineTicks, sampleTier, usageBetween, type Tier, type TierSample } from './proc.js';
import { envInt, envIntOptional, envBool, machineInfo, RESULTS_DIR } from './settings.js';
import { measureCopyCeiling, type CeilingResult } from './copy-ceiling.js';
import { FgSignal } from '../src/rebalance/fg-signal.js';
import { MIN_FG_SAMPLES } from '../src/rebalance/pacer.js';
import { waitUntil } from '../src/local/wait.js';
import { HEADER_BYTES } from '../src/shard/record.js';

const settings = {
  keys: envInt('BENCH_KEYS', 1_000_000, 1000),
  valueBytes: envInt('BENCH_VALUE_BYTES', 100, 1),
  loadConcurrency: envInt('BENCH_LOAD_CONCURRENCY', 4, 1),
  routerWorkers: envInt('ROUTER_WORKERS', 2, 1),
  shards: 3,
  newShard: 's4',
  noSync: envBool('BENCH_NOSYNC'),
  pacing: process.env['BENCH_PACING'] || undefined,
  moveRate: envIntOptional('BENCH_MOVE_RATE', 0),
  batchKeys: envIntOptional('BENCH_BATCH_KEYS', 1),
  idleBatchKeys: envIntOptional('BENCH_IDLE_BATCH_KEYS', 1),
  batchBytes: envIntOptional('BENCH_BATCH_BYTES', 1),
  streams: envIntOptional('BENCH_STREAMS', 0),
  importsInFlight: envIntOptional('BENCH_IMPORTS_IN_FLIGHT', 1),
  maxConnections: envInt('BENCH_CONNECTIONS', 64, 1),
  maxS: envInt('BENCH_MAX_S', 5, 1),
  warmupS: envInt('BENCH_WARMUP_S', 2, 0),
  fgPct: envInt('BENCH_FG_PCT', 10, 1),
  fgConnections: envInt('BENCH_FG_CONNECTIONS', 10, 1),
  baselineS: envInt('BENCH_BASELINE_S', 10, 1),
  afterS: envInt('BENCH_AFTER_S', 3, 0),
  moveTimeoutS: envInt('BENCH_MOVE_TIMEOUT_S', 600, 10),
  pollMs: envInt('BENCH_POLL_MS', 200, 20),
  timeoutS: envInt('BENCH_TIMEOUT_S', 1800, 60),
  idleMove: envInt('BENCH_IDLE_MOVE', 1, 0) === 1,
  ceilingBatch: envInt('BENCH_CEILING_BATCH', 10_000, 1),
  ceilingRuns: envInt('BENCH_CEILING_RUNS', 3, 1),
};
if (settings.pacing !== undefined && settings.pacing !== 'adaptive' && settings.pacing !== 'fixed') throw new Error('BENCH_PACING must be adaptive or fixed');
const routerSets = [
  ...(settings.pacing !== undefined ? [`rebalancePacing=${settings.pacing}`] : []),
  ...(settings.moveRate !== undefined ? [`rebalanceMaxKeysPerSec=${settings.moveRate}`] : []),
  ...(settings.batchKeys !== undefined ? [`rebalanceBatchKeys=${settings.batchKeys}`] : []),
  ...(settings.idleBatchKeys !== undefined ? [`rebalanceIdleBatchKeys=${settings.idleBatchKeys}`] : []),
  ...(settings.batchBytes !== undefined ? [`rebalanceBatchBytes=${settings.batchBytes}`] : []),
  ...(settings.streams !== undefined ? [`rebalanceStreamConcurrency=${settings.streams}`] : []),
  ...(settings.importsInFlight !== undefined ? [`rebalanceImportsInFlight=${settings.importsInFlight}`] : []),
];
/** Under the foreground: p99 at most twice its baseline; with no foreground: at least half the in-process copy's rate. */
const TARGETS = { p99Ratio: 2, idleFractionOfCeiling: 0.5 };
const verbose = envBool('BENCH_VERBOSE');
const nodeArgs = (process.env['BENCH_NODE_ARGS'] ?? '').split(/\s+/).filter(Boolean);
const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
const json = { 'content-type': 'application/json' };
const round = (x: number, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

// Printable ASCII without quote or backslash: the same bytes are a JSON string in a batch.
const VALUE = Buffer.from(Array.from({ length: settings.valueBytes }, (_, i) => 0x21 + ((i * 7) % 94)).map((c) => (c === 0x22 || c === 0x5c ? 0x2e : c)));
const keyName = (i: number) => `key-${String(i).padStart(7, '0')}`;

// ---------------------------------------------------------------- load

async function loadKeys(routerUrl: string): Promise<{ seconds: number; keysPerSec: number }> {
  const t0 = Date.now();
  const value = VALUE.toString('latin1');
  let nextReport = 0.1;
  await bulkLoad(routerUrl, {
    keys: Array.from({ length: settings.keys }, (_, i) => keyName(i)),
    value: () => value,
    batch: 1000,
    concurrency: settings.loadConcurrency,
    onProgress: (done) => {
      if (done / settings.keys >= nextReport) {
        log(`  loaded ${done} keys (${Math.round(done / ((Date.now() - t0) / 1000))} keys/s)`);
        nextReport += 0.1;
      }
    },
  });
  const seconds = (Date.now() - t0) / 1000;
  return { seconds: round(seconds, 2), keysPerSec: Math.round(settings.keys / seconds) };
}

// ---------------------------------------------------------------- foreground

/** 50% GET, 50% PUT of a random loaded key (every PUT writes the loaded value again). */
function mixedRequest(): autocannon.RequestSpec {
  return {
    setupRequest: (req) => {
      const path = `/v1/kv/${keyName(Math.floor(Math.random() * settings.keys))}`;
      if (Math.random() < 0.5) return { ...req, method: 'GET', path };
      return { ...req, method: 'PUT', path, body: VALUE, headers: { ...req.headers, 'content-type': 'application/octet-stream' } };
    },
  };
}

interface LatencyStats {
  readonly seconds: number;
  readonly responses: number;
  readonly reqPerSec: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly statusCodes: Record<string, number>;
}

class Bucket {
  readonly lat: number[] = [];
  non2xx = 0;
  errors = 0;
  readonly statuses: Record<string, number> = {};
  startMs = Date.now();
  endMs: number | undefined;

  stats(): LatencyStats {
    const sorted = Float64Array.from(this.lat).sort();
    const pct = (p: number) => (sorted.length === 0 ? 0 : round(sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!, 2));
    const seconds = Math.max(0.001, ((this.endMs ?? Date.now()) - this.startMs) / 1000);
    return {
      seconds: round(seconds, 2),
      responses: this.lat.length + this.non2xx,
      reqPerSec: Math.round((this.lat.length + this.non2xx) / seconds),
      p50: pct(0.5),
      p90: pct(0.9),
      p99: pct(0.99),
      max: sorted.length ? round(sorted[sorted.length - 1]!, 2) : 0,
      non2xx: this.non2xx,
      errors: this.errors,
      statusCodes: { ...this.statuses },
    };
  }
}

/** Foreground latencies, per phase ("before", "during", ...), per job state and per second. */
class Recorder {
  readonly #buckets = new Map<string, Bucket>();
  readonly #seconds = new Map<number, Bucket>();
  readonly #t0 = Date.now();
  #phase = 'warmup';
  #sub: string | undefined;

  /** Phases run in order and never come back, so a bucket ends when its phase does. */
  phase(name: string, sub?: string): void {
    const now = Date.now();
    const end = (key: string | undefined) => {
      const b = key === undefined ? undefined : this.#buckets.get(key);
      if (b && b.endMs === undefined) b.endMs = now;
    };
    if (name !== this.#phase) end(this.#phase);
    const oldSub = this.#sub === undefined ? undefined : `${this.#phase}:${this.#sub}`;
    const newSub = sub === undefined ? undefined : `${name}:${sub}`;
    if (oldSub !== newSub) end(oldSub);
    this.#phase = name;
    this.#sub = sub;
    this.#bucket(name);
    if (newSub) this.#bucket(newSub);
  }

  get(key: string): LatencyStats | undefined {
    return this.#buckets.get(key)?.stats();
  }

  keys(): string[] {
    return [...this.#buckets.keys()];
  }

  #bucket(key: string): Bucket {
    let b = this.#buckets.get(key);
    if (!b) this.#buckets.set(key, (b = new Bucket()));
    return b;
  }

  #targets(): Bucket[] {
    const sec = Math.floor((Date.now() - this.#t0) / 1000);
    let s = this.#seconds.get(sec);
    if (!s) {
      this.#seconds.set(sec, (s = new Bucket()));
      s.startMs = this.#t0 + sec * 1000;
      s.endMs = s.startMs + 1000;
    }
    const out = [this.#bucket(this.#phase), s];
    if (this.#sub) out.push(this.#bucket(`${this.#phase}:${this.#sub}`));
    return out;
  }

  /** Every response of the job window: [ms since the window opened, latency ms, job state]. */
  readonly during: Array<[number, number, string]> = [];
  #duringT0 = 0;

  response(status: number, ms: number): void {
    if (this.#phase === 'during') {
      if (this.#duringT0 === 0) this.#duringT0 = Date.now();
      this.during.push([Date.now() - this.#duringT0, Math.round(ms * 10) / 10, this.#sub ?? '']);
    }
    for (const b of this.#targets()) {
      b.statuses[status] = (b.statuses[status] ?? 0) + 1;
      if (status >= 200 && status < 300) b.lat.push(ms);
      else b.non2xx++;
    }
  }

  error(): void {
    for (const b of this.#targets()) b.errors++;
  }

  /** One row per second since the start: [second, responses, p99 ms, non-2xx + errors], plus the phase tags. */
  perSecond(phaseOf: (startMs: number) => string): Array<[number, number, number, number, string]> {
    return [...this.#seconds.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([sec, b]) => {
        const s = b.stats();
        return [sec, s.responses, s.p99, s.non2xx + s.errors, phaseOf(b.startMs)];
      });
  }
}

let current: autocannon.Instance | undefined;
let aborted = false;

async function measureMax(url: string): Promise<{ reqPerSec: number; p50: number; p99: number; errors: number; non2xx: number }> {
  const run = async (durationS: number) => {
    const inst = autocannon({ url, connections: settings.maxConnections, duration: durationS, timeout: 10, requests: [mixedRequest()] });
    current = inst;
    try {
      return await inst;
    } finally {
      current = undefined;
    }
  };
  if (settings.warmupS > 0) await run(settings.warmupS);
  const r = await run(settings.maxS);
  return { reqPerSec: Math.round(r.requests.total / r.duration), p50: r.latency.p50, p99: r.latency.p99, errors: r.errors, non2xx: r.non2xx };
}

// ---------------------------------------------------------------- CPU

interface Snapshot {
  readonly atMs: number;
  readonly tiers: Map<string, TierSample>;
  readonly machine: { busy: number; total: number };
}

function tiersFor(topo: BenchTopology, s4: ShardProcess): Tier[] {
  return [
    { name: 'router-primary', pids: () => [topo.router.pid] },
    { name: 'router-workers', pids: () => childrenOf(topo.router.pid) },
    ...[...topo.shards, s4].map((s): Tier => ({ name: s.id, pids: () => [s.pid] })),
    { name: 'redis', pids: () => [topo.redis.process.pid!] },
    { name: 'loadgen', pids: () => [process.pid] },
  ];
}

const snapshot = (tiers: readonly Tier[]): Snapshot => ({
  atMs: Date.now(),
  tiers: new Map(tiers.map((t) => [t.name, sampleTier(t)])),
  machine: machineTicks(),
});

/** CPU µs per tier between two snapshots, plus the whole machine's busy share. */
function cpuBetween(a: Snapshot, b: Snapshot): { seconds: number; us: Record<string, number>; machineBusyPct: number; otherBusyPct: number } {
  const us: Record<string, number> = {};
  let ours = 0;
  for (const [name, before] of a.tiers) {
    const u = usageBetween(before, b.tiers.get(name)!);
    us[name] = u.cpuUs;
    ours += u.cpuUs;
  }
  const total = Math.max(1, b.machine.total - a.machine.total);
  const busy = b.machine.busy - a.machine.busy;
  return {
    seconds: (b.atMs - a.atMs) / 1000,
    us,
    machineBusyPct: round((busy / total) * 100),
    otherBusyPct: Math.max(0, round(((busy * US_PER_TICK - ours) / (total * US_PER_TICK)) * 100)),
  };
}

/** µs per moved key per tier over a window; "net" takes off the tier's foreground-only rate from the baseline window (none: net = raw). */
function cpuPerKey(
  win: ReturnType<typeof cpuBetween>,
  base: ReturnType<typeof cpuBetween> | undefined,
  keys: number,
): Record<string, { raw: number; net: number; busyPctOfOneCpu: number }> {
  const out: Record<string, { raw: number; net: number; busyPctOfOneCpu: number }> = {};
  for (const [name, us] of Object.entries(win.us)) {
    const baseline = base ? ((base.us[name] ?? 0) / base.seconds) * win.seconds : 0;
    out[name] = {
      raw: keys > 0 ? round(us / keys, 2) : 0,
      net: keys > 0 ? round(Math.max(0, us - baseline) / keys, 2) : 0,
      busyPctOfOneCpu: round((us / (win.seconds * 1e6)) * 100),
    };
  }
  return out;
}

// ---------------------------------------------------------------- the move

interface RebalanceView {
  job: { id: string; state: string; startedAt?: number; finishedAt?: number; error?: string } | null;
  progress?: { keysDone: number; keysTotal: number; bytesDone: number; bytesTotal: number; keysPerSec: number; etaSeconds: number | null };
  foregroundErrors?: number;
}

async function readJob(redisUrl: string): Promise<Job> {
  // The full record (the API's summary leaves out streamingStartedAt).
  const redis = createRedis({ redisUrl, redisCommandTimeoutMs: 2000 });
  try {
    const raw = await redis.get('kv:rebalance:job');
    if (!raw) throw new Error('no rebalance job in Redis');
    return JSON.parse(raw) as Job;
  } finally {
    redis.disconnect();
  }
}

async function recordsPerShard(shards: readonly ShardProcess[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const s of shards) out[s.id] = (await getJson<{ records: number }>(`http://${s.adminAddr}/stats`, { headers: ADMIN_HEADER })).records;
  return out;
}

// ---------------------------------------------------------------- the steps

/** What setUp() leaves running: s1..s3 loaded and in the ring, s4 registered but empty. */
interface Cluster {
  readonly topo: BenchTopology;
  readonly url: string;
  readonly s4: ShardProcess;
  readonly load: { seconds: number; keysPerSec: number };
  readonly recordsBefore: Record<string, number>;
}

interface Peak {
  readonly max: Awaited<ReturnType<typeof measureMax>>;
  /** The foreground's fixed overall rate (BENCH_FG_PCT % of the peak) and its connections. */
  readonly fgRate: number;
  readonly fgConnections: number;
}

/** The fixed-rate foreground, running; its "before" window is behind it. */
interface Foreground {
  readonly rec: Recorder;
  readonly inst: autocannon.Instance;
  readonly done: Promise<autocannon.Result>;
  readonly tiers: readonly Tier[];
  /** CPU at the start and end of the "before" window (the end is also the move's start). */
  readonly snapBefore: Snapshot;
  readonly snapMoveStart: Snapshot;
}

/** What the move step saw: the POST's answer, the polled timeline and CPU snapshots. */
interface MoveRun {
  readonly jobId: string;
  readonly plan: Record<string, unknown>;
  readonly planMs: number;
  readonly timeline: Array<{ tMs: number; state: string; keysDone: number; bytesDone: number }>;
  /** Taken when the job entered and left the streaming state. */
  readonly streamStart: Snapshot | undefined;
  readonly streamEnd: Snapshot | undefined;
  readonly snapMoveEnd: Snapshot;
  /** The last GET /v1/admin/rebalance answer. */
  readonly lastView: RebalanceView | undefined;
  /** The job's full record once done. */
  finalJob?: Job;
}

interface Check {
  readonly sampled: number;
  readonly bad: string[];
  readonly recordsAfter: Record<string, number>;
}

/** Setup: the topology, BENCH_KEYS keys through the batch API, then s4 (registered, not in the ring). */
async function setUp(cleanup: Cleanup): Promise<Cluster> {
  const topoOpts = { shards: settings.shards, routerWorkers: settings.routerWorkers, noSync: settings.noSync, verbose, nodeArgs, routerSets };
  const topo = await startTopology(topoOpts, cleanup);
  const url = topo.router.url;
  log(
    `up: redis ${topo.redis.url}, shards ${topo.shards.map((s) => `${s.id} pid ${s.pid}`).join(', ')}, router ${url} (primary ${topo.router.pid}, workers ${topo.router.workers.join(' ')})`,
  );

  log(`loading ${settings.keys} keys through POST /v1/kv/_batch (1000 per batch, ${settings.loadConcurrency} in flight)`);
  const load = await loadKeys(url);
  const recordsBefore = await recordsPerShard(topo.shards);
  log(`loaded in ${load.seconds} s (${load.keysPerSec} keys/s); records ${JSON.stringify(recordsBefore)}`);

  const s4 = await startShard(settings.newShard, topo.dir, topo.redis.url, topoOpts, cleanup);
  const listed = await getJson<{ shards: Array<{ id: string; state: string }> }>(`${url}/v1/admin/shards`, { headers: ADMIN_HEADER });
  if (!listed.shards.some((s) => s.id === s4.id && s.state === 'available')) throw new Error(`${s4.id} is not listed as available: ${JSON.stringify(listed)}`);
  log(`${s4.id} registered (pid ${s4.pid}), not in the ring yet`);
  return { topo, url, s4, load, recordsBefore };
}

/** Peak: the closed-loop maximum, and the foreground rate that follows from it. */
async function measurePeak(url: string): Promise<Peak> {
  log(`peak: ${settings.maxConnections} connections, 50% GET / 50% PUT, ${settings.warmupS} s warm-up + ${settings.maxS} s`);
  const max = await measureMax(url);
  if (aborted) throw new Error('aborted');
  const fgRate = Math.max(1, Math.round((max.reqPerSec * settings.fgPct) / 100));
  const fgConnections = Math.min(settings.fgConnections, fgRate);
  log(
    `peak ${max.reqPerSec} req/s (p50 ${max.p50} ms, p99 ${max.p99} ms, errors ${max.errors}, non-2xx ${max.non2xx}); foreground at ${settings.fgPct}%: ${fgRate} req/s over ${fgConnections} connections`,
  );
  return { max, fgRate, fgConnections };
}

/** Foreground: start the fixed-rate load, warm up, then the "before" window. */
async function startForeground(c: Cluster, peak: Peak): Promise<Foreground> {
  const tiers = tiersFor(c.topo, c.s4);
  const rec = new Recorder();
  const inst = autocannon({
    url: c.url,
    connections: settings.fgConnections,
    overallRate: peak.fgRate,
    timeout: 10,
    duration: settings.warmupS + settings.baselineS + settings.moveTimeoutS + settings.afterS + 30,
    requests: [mixedRequest()],
  });
  current = inst;
  inst.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => rec.response(status, ms));
  inst.on('reqError', () => rec.error());
  const done = Promise.resolve(inst);

  await sleep(settings.warmupS * 1000);
  rec.phase('before');
  const snapBefore = snapshot(tiers);
  log(`foreground: ${settings.baselineS} s before the move`);
  await sleep(settings.baselineS * 1000);
  if (aborted) throw new Error('aborted');
  const snapMoveStart = snapshot(tiers);
  return { rec, inst, done, tiers, snapBefore, snapMoveStart };
}

/** Move: POST the new shard, poll the job until it is done; CPU snapshots when streaming starts and ends. */
async function moveShard(c: Cluster, fg: Foreground): Promise<MoveRun> {
  const { rec, tiers, snapMoveStart } = fg;
  rec.phase('during', 'planned');

  // The POST plans the job: it counts the moving keys on every source before it answers.
  const postT0 = process.hrtime.bigint();
  const post = await request('POST', `${c.url}/v1/admin/shards`, {
    body: JSON.stringify({ id: c.s4.id }),
    headers: { ...json, ...ADMIN_HEADER },
    timeoutMs: 60_000,
  });
  const planMs = round(Number(process.hrtime.bigint() - postT0) / 1e6);
  if (post.status !== 202) throw new Error(`POST /v1/admin/shards: ${post.status} ${post.text}`);
  const { job: created, plan } = post.json<{ job: { id: string }; plan: Record<string, unknown> }>();
  log(`job ${created.id} planned in ${planMs} ms: ${JSON.stringify(plan['streams'])}`);

  const timeline: MoveRun['timeline'] = [];
  let streamStart: Snapshot | undefined;
  let streamEnd: Snapshot | undefined;
  let view: RebalanceView | undefined;
  let state = 'planned';
  let lastLog = 0;
  const deadline = Date.now() + settings.moveTimeoutS * 1000;
  for (;;) {
    if (aborted) throw new Error('aborted');
    if (Date.now() > deadline) throw new Error(`the move did not finish within ${settings.moveTimeoutS} s; last: ${JSON.stringify(view)}`);
    view = await getJson<RebalanceView>(`${c.url}/v1/admin/rebalance`, { headers: ADMIN_HEADER }).catch(() => view);
    const job = view?.job;
    if (job && job.id === created.id) {
      const p = view!.progress!;
      timeline.push({ tMs: Date.now() - snapMoveStart.atMs, state: job.state, keysDone: p.keysDone, bytesDone: p.bytesDone });
      if (job.state !== state) {
        if (job.state === 'streaming') streamStart = snapshot(tiers);
        if (state === 'streaming') streamEnd = snapshot(tiers);
        log(`  ${job.state} at +${((Date.now() - snapMoveStart.atMs) / 1000).toFixed(1)} s, ${p.keysDone}/${p.keysTotal} keys`);
        state = job.state;
        rec.phase('during', state);
      } else if (Date.now() - lastLog > 2000 && state === 'streaming') {
        log(`  streaming: ${p.keysDone}/${p.keysTotal} keys, ${Math.round(p.keysPerSec)} keys/s`);
        lastLog = Date.now();
      }
      if (job.state === 'failed' || job.state === 'cancelled') throw new Error(`job ${job.id} ended ${job.state}: ${job.error ?? ''}`);
      if (job.state === 'done') break;
    }
    await sleep(settings.pollMs);
  }
  const snapMoveEnd = snapshot(tiers);
  return { jobId: created.id, plan, planMs, timeline, streamStart, streamEnd, snapMoveEnd, lastView: view };
}

/** The "after" window, then the foreground stops; resolves with autocannon's own totals. */
async function finishForeground(fg: Foreground): Promise<autocannon.Result> {
  fg.rec.phase('after');
  await sleep(settings.afterS * 1000);
  fg.rec.phase('end');
  fg.inst.stop();
  const total = await fg.done;
  current = undefined;
  return total;
}

/** What moved, and how long each part took, from the job record itself. */
function moveFigures(job: Job, run: MoveRun, moveStartMs: number) {
  const keysMoved = job.streams.reduce((n, s) => n + s.keysDone, 0);
  const bytesMoved = job.streams.reduce((n, s) => n + s.bytesDone, 0);
  const streamsEnd = Math.max(...job.streams.map((s) => s.finishedAt ?? 0));
  const jobS = ((job.finishedAt ?? 0) - (job.startedAt ?? 0)) / 1000;
  const streamingS = (streamsEnd - (job.streamingStartedAt ?? 0)) / 1000;
  return {
    jobId: job.id,
    keysMoved,
    bytesMoved,
    mbMoved: round(bytesMoved / 1e6, 2),
    keysPlanned: (run.plan['keysToMove'] as number | undefined) ?? null,
    /** How long POST /v1/admin/shards took to answer (planning, with a count of the moving keys on each source). */
    planMs: run.planMs,
    /** POST to the coordinator picking the job up (lease tick). */
    queuedS: round(((job.startedAt ?? 0) - job.createdAt) / 1000, 2),
    /** startedAt..finishedAt: migrate barrier, streaming, commit, purge. */
    jobS: round(jobS, 2),
    migrateBarrierS: round(((job.streamingStartedAt ?? 0) - (job.startedAt ?? 0)) / 1000, 2),
    streamingS: round(streamingS, 2),
    commitAndPurgeS: round(((job.finishedAt ?? 0) - streamsEnd) / 1000, 2),
    keysPerSecStreaming: Math.round(keysMoved / Math.max(0.001, streamingS)),
    keysPerSecJob: Math.round(keysMoved / Math.max(0.001, jobS)),
    mbPerSecStreaming: round(bytesMoved / 1e6 / Math.max(0.001, streamingS), 2),
    mbPerSecJob: round(bytesMoved / 1e6 / Math.max(0.001, jobS), 2),
    wallS: round((run.snapMoveEnd.atMs - moveStartMs) / 1000, 2),
    foregroundErrorsCountedByRouter: run.lastView?.foregroundErrors ?? null,
    streams: job.streams.map((s) => ({
      source: s.source,
      target: s.target,
      arcs: s.ranges.length,
      keys: s.keysDone,
      bytes: s.bytesDone,
      seconds: round(((s.finishedAt ?? 0) - (s.startedAt ?? 0)) / 1000, 2),
      keysPerSec: Math.round(s.keysDone / Math.max(0.001, ((s.finishedAt ?? 0) - (s.startedAt ?? 0)) / 1000)),
    })),
  };
}
type MoveFigures = ReturnType<typeof moveFigures>;

/** CPU of the baseline window, the whole job and the streaming phase; per moved key for the latter two. */
function cpuFigures(fg: Foreground, run: MoveRun, keysMoved: number) {
  const base = cpuBetween(fg.snapBefore, fg.snapMoveStart);
  const moveCpu = cpuBetween(fg.snapMoveStart, run.snapMoveEnd);
  const streamCpu = run.streamStart && run.streamEnd ? cpuBetween(run.streamStart, run.streamEnd) : undefined;
  return {
    baselineBusyPctOfOneCpu: Object.fromEntries(Object.entries(base.us).map(([k, us]) => [k, round((us / (base.seconds * 1e6)) * 100)])),
    job: {
      seconds: round(moveCpu.seconds, 2),
      machineBusyPct: moveCpu.machineBusyPct,
      otherBusyPct: moveCpu.otherBusyPct,
      usPerKey: cpuPerKey(moveCpu, base, keysMoved),
    },
    streaming: streamCpu && {
      seconds: round(streamCpu.seconds, 2),
      machineBusyPct: streamCpu.machineBusyPct,
      otherBusyPct: streamCpu.otherBusyPct,
      usPerKey: cpuPerKey(streamCpu, base, keysMoved),
    },
    baseline: { seconds: round(base.seconds, 2), machineBusyPct: base.machineBusyPct, otherBusyPct: base.otherBusyPct },
  };
}
type CpuFigures = ReturnType<typeof cpuFigures>;

/** Verify: sampled keys still read back their value; records per shard under the new ring. */
async function verify(c: Cluster): Promise<Check> {
  const sample = Array.from({ length: 2000 }, () => keyName(Math.floor(Math.random() * settings.keys)));
  const bad: string[] = [];
  await forEachLimit(sample, 16, async (key) => {
    const res = await get(`${c.url}/v1/kv/${key}`);
    if (res.status !== 200 || !res.body.equals(VALUE)) bad.push(`${key}: ${res.status}`);
  });
  const recordsAfter = await recordsPerShard([...c.topo.shards, c.s4]);
  return { sampled: sample.length, bad, recordsAfter };
}

/**
 * Idle move: with the foreground stopped, remove s4 again, so the same keys
 * move back with nothing to protect; keys/s over its streaming phase.
 */
async function idleMove(c: Cluster) {
  // The read-back check was foreground traffic too: wait until the routers' latency windows no longer show it,
  // so the pacer sees an idle foreground from the move's start.
  const redis = createRedis({ redisUrl: c.topo.redis.url, redisCommandTimeoutMs: 2000 });
  try {
    const signal = new FgSignal(redis, 'kv:');
    await waitUntil(async () => ((await signal.read())?.count ?? 0) < MIN_FG_SAMPLES, { timeoutMs: 10_000, what: 'an idle foreground signal' });
  } finally {
    redis.disconnect();
  }
  log(`idle move: ${c.s4.id} leaves again with no foreground load`);
  const del = await request('DELETE', `${c.url}/v1/admin/shards/${c.s4.id}`, { headers: ADMIN_HEADER, timeoutMs: 60_000 });
  if (del.status !== 202) throw new Error(`DELETE /v1/admin/shards/${c.s4.id}: ${del.status} ${del.text}`);
  const { job: created } = del.json<{ job: { id: string } }>();
  const deadline = Date.now() + settings.moveTimeoutS * 1000;
  // CPU per tier over the streaming phase, as seen by polling (the phase
  // edges are known to within BENCH_POLL_MS).
  const tiers = tiersFor(c.topo, c.s4);
  let streamStart: Snapshot | undefined;
  let streamEnd: Snapshot | undefined;
  let state = 'planned';
  for (;;) {
    if (aborted) throw new Error('aborted');
    if (Date.now() > deadline) throw new Error(`the idle move did not finish within ${settings.moveTimeoutS} s`);
    const view = await getJson<RebalanceView>(`${c.url}/v1/admin/rebalance`, { headers: ADMIN_HEADER }).catch(() => undefined);
    const st = view?.job?.id === created.id ? view.job.state : undefined;
    if (st === 'failed' || st === 'cancelled') throw new Error(`idle move ${created.id} ended ${st}: ${view?.job?.error ?? ''}`);
    if (st !== undefined && st !== state) {
      if (st === 'streaming') streamStart = snapshot(tiers);
      if (state === 'streaming') streamEnd = snapshot(tiers);
      state = st;
    }
    if (st === 'done') break;
    await sleep(settings.pollMs);
  }
  const job = await readJob(c.topo.redis.url);
  const keysMoved = job.streams.reduce((n, s) => n + s.keysDone, 0);
  const streamsEnd = Math.max(...job.streams.map((s) => s.finishedAt ?? 0));
  const streamingS = (streamsEnd - (job.streamingStartedAt ?? 0)) / 1000;
  const out = {
    jobId: job.id,
    keysMoved,
    streamingS: round(streamingS, 2),
    keysPerSecStreaming: Math.round(keysMoved / Math.max(0.001, streamingS)),
    pacing: job.pacing ?? null,
    cpu: streamStart && streamEnd ? idleCpu(cpuBetween(streamStart, streamEnd), keysMoved) : null,
  };
  log(`idle move: ${keysMoved} keys in ${out.streamingS} s streaming (${out.keysPerSecStreaming} keys/s)`);
  if (out.cpu) {
    const tiersLine = Object.entries(out.cpu.usPerKey)
      .map(([t, v]) => `${t} ${v.raw} µs/key (${v.busyPctOfOneCpu}%)`)
      .join(', ');
    log(`idle move CPU while streaming (machine ${out.cpu.machineBusyPct}% busy): ${tiersLine}`);
  }
  return out;
}
type IdleMove = Awaited<ReturnType<typeof idleMove>>;

/** CPU µs per moved key per tier over the idle move's streaming phase (nothing else runs: no baseline to take off). */
function idleCpu(win: ReturnType<typeof cpuBetween>, keys: number) {
  const usPerKey = cpuPerKey(win, undefined, keys);
  return { seconds: round(win.seconds, 2), machineBusyPct: win.machineBusyPct, otherBusyPct: win.otherBusyPct, usPerKey };
}

/**
 * What a shard stores per loaded key: the record header, the content type the
 * batch API gives a UTF-8 value, then the value. The ceiling copies records
 * of this size (the same records the move carries), not of the value's.
 */
const STORED_RECORD_BYTES = HEADER_BYTES + Buffer.byteLength('text/plain; charset=utf-8') + settings.valueBytes;

/** The median of BENCH_CEILING_RUNS copies (a single half-second copy swings by a quarter on this kind of machine), with every run's rate. */
async function ceiling(records: number): Promise<CeilingResult & { runsKeysPerSec: number[] }> {
  log(
    `ceiling: LMDB-to-LMDB copy of ${records} records of ${STORED_RECORD_BYTES} B (as stored: header, content type, ${settings.valueBytes} B value) in one process (batches of ${settings.ceilingBatch}), ${settings.ceilingRuns} runs`,
  );
  const runs: CeilingResult[] = [];
  for (let i = 0; i < settings.ceilingRuns; i++) {
    runs.push(
      await measureCopyCeiling({ records: Math.max(1, records), valueBytes: STORED_RECORD_BYTES, batch: settings.ceilingBatch, noSync: settings.noSync }),
    );
  }
  const sorted = [...runs].sort((a, b) => a.keysPerSec - b.keysPerSec);
  const r = sorted[(sorted.length - 1) >> 1]!;
  log(`ceiling: ${r.keysPerSec} keys/s, the median of ${runs.map((x) => x.keysPerSec).join(', ')}`);
  return { ...r, runsKeysPerSec: runs.map((x) => x.keysPerSec) };
}

// ---------------------------------------------------------------- output

function fmtTable(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (row: string[]) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [fmt(head), fmt(widths.map((w) => '-'.repeat(w))), ...rows.map(fmt)].join('\n');
}

/** The foreground's windows, its per-second rows, and the p99 ratio the target is about. */
function foregroundFigures(fg: Foreground, run: MoveRun) {
  const { rec } = fg;
  const before = rec.get('before')!;
  const during = rec.get('during')!;
  const moveStartMs = fg.snapMoveStart.atMs;
  const moveEndMs = run.snapMoveEnd.atMs;
  const perSecond = rec.perSecond((t) => (t + 1000 <= fg.snapBefore.atMs ? 'warmup' : t < moveStartMs ? 'before' : t < moveEndMs ? 'during' : 'after'));
  const duringSeconds = perSecond.filter((r) => r[4] === 'during' && r[1] > 0);
  return {
    before,
    during,
    streaming: rec.get('during:streaming'),
    after: rec.get('after'),
    perSecond,
    worstSecondP99: duringSeconds.length ? Math.max(...duringSeconds.map((r) => r[2])) : null,
    p99Ratio: before.p99 > 0 ? round(during.p99 / before.p99, 2) : null,
  };
}
type ForegroundFigures = ReturnType<typeof foregroundFigures>;

interface Report {
  readonly startedAt: Date;
  readonly machine: Record<string, unknown>;
  readonly cluster: Cluster;
  readonly peak: Peak;
  readonly fg: Foreground;
  readonly fgTotal: autocannon.Result;
  readonly run: MoveRun;
  readonly move: MoveFigures;
  readonly cpu: CpuFigures;
  readonly check: Check;
  readonly idle: IdleMove | undefined;
  readonly ceiling: CeilingResult;
}

/** A move's streaming rate as a fraction of the ceiling. */
const ofCeiling = (keysPerSec: number, c: CeilingResult) => round(keysPerSec / Math.max(1, c.keysPerSec), 2);

function targetsMet(move: MoveFigures, p99Ratio: number | null, idle: IdleMove | undefined, c: CeilingResult) {
  const idleFraction = idle ? ofCeiling(idle.keysPerSecStreaming, c) : null;
  return {
    ceilingKeysPerSec: c.keysPerSec,
    underLoad: { keysPerSecStreaming: move.keysPerSecStreaming, fractionOfCeiling: ofCeiling(move.keysPerSecStreaming, c) },
    idleFractionOfCeiling: {
      target: TARGETS.idleFractionOfCeiling,
      keysPerSecStreaming: idle?.keysPerSecStreaming ?? null,
      measured: idleFraction,
      met: idleFraction !== null && idleFraction >= TARGETS.idleFractionOfCeiling,
    },
    p99Ratio: { target: TARGETS.p99Ratio, measured: p99Ratio, met: p99Ratio !== null && p99Ratio <= TARGETS.p99Ratio },
  };
}
type Targets = ReturnType<typeof targetsMet>;

/** Report: the tables on stdout and the JSON results file. */
function report(r: Report): void {
  const f = foregroundFigures(r.fg, r.run);
  const targets = targetsMet(r.move, f.p99Ratio, r.idle, r.ceiling);
  printTables(r, f, targets);
  writeResults(r, f, targets);
}

function printTables(r: Report, f: ForegroundFigures, targets: Targets): void {
  const { move, cpu, check, peak } = r;
  const { rec } = r.fg;
  const lat = (name: string, s: LatencyStats | undefined) =>
    s
      ? [name, s.seconds.toFixed(1), String(s.reqPerSec), s.p50.toFixed(1), s.p99.toFixed(1), s.max.toFixed(1), String(s.non2xx), String(s.errors)]
      : [name, '-', '-', '-', '-', '-', '-', '-'];
  console.log(
    `\nForeground: ${peak.fgRate} req/s fixed (${settings.fgPct}% of the ${peak.max.reqPerSec} req/s peak), ${peak.fgConnections} connections, 50% GET / 50% PUT, ${settings.keys} keys.\n`,
  );
  console.log(
    fmtTable(
      ['window', 's', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'non2xx', 'errors'],
      [
        lat('before', f.before),
        lat('during (job)', f.during),
        ...['planned', 'migrating', 'streaming', 'committing', 'purging'].map((st) => lat(`  ${st}`, rec.get(`during:${st}`))),
        lat('after', f.after),
      ],
    ),
  );
  console.log(`\np99 during / before: ${f.p99Ratio ?? '-'} (target <= ${TARGETS.p99Ratio}); worst 1-s p99 during the job: ${f.worstSecondP99 ?? '-'} ms\n`);
  console.log(
    fmtTable(
      ['move', 'keys', 'MB', 'job s', 'streaming s', 'keys/s (stream)', 'keys/s (job)', 'MB/s (stream)', 'fg errors'],
      [
        [
          `${r.cluster.s4.id} joins`,
          String(move.keysMoved),
          move.mbMoved.toFixed(1),
          move.jobS.toFixed(2),
          move.streamingS.toFixed(2),
          String(move.keysPerSecStreaming),
          String(move.keysPerSecJob),
          move.mbPerSecStreaming.toFixed(1),
          String(f.during.non2xx + f.during.errors) +
            (move.foregroundErrorsCountedByRouter !== null ? ` (router ${move.foregroundErrorsCountedByRouter})` : ''),
        ],
      ],
    ),
  );
  console.log(`\nstreams: ${move.streams.map((s) => `${s.source}->${s.target} ${s.keys} keys over ${s.arcs} arcs in ${s.seconds} s`).join('; ')}`);
  console.log(
    `phases: POST answered in ${move.planMs} ms, queued ${move.queuedS} s, migrate barrier ${move.migrateBarrierS} s, streaming ${move.streamingS} s, commit+purge ${move.commitAndPurgeS} s\n`,
  );
  const cpuRows = Object.entries(cpu.job.usPerKey).map(([tier, c]) => [
    tier,
    c.raw.toFixed(2),
    c.net.toFixed(2),
    c.busyPctOfOneCpu.toFixed(0),
    cpu.streaming ? cpu.streaming.usPerKey[tier]!.net.toFixed(2) : '-',
    cpu.streaming ? cpu.streaming.usPerKey[tier]!.busyPctOfOneCpu.toFixed(0) : '-',
  ]);
  console.log(fmtTable(['tier', 'µs/key (job)', 'net of fg', 'busy % (job)', 'net µs/key (streaming)', 'busy % (streaming)'], cpuRows));
  console.log(
    `\nmachine busy during the job: ${cpu.job.machineBusyPct}% (other processes: ${cpu.job.otherBusyPct}%); baseline ${cpu.baseline.machineBusyPct}% (other ${cpu.baseline.otherBusyPct}%)`,
  );
  const { bad } = check;
  console.log(
    `records before ${JSON.stringify(r.cluster.recordsBefore)}, after ${JSON.stringify(check.recordsAfter)}; read-back check: ${check.sampled - bad.length}/${check.sampled} ok${bad.length ? `, e.g. ${bad.slice(0, 3).join(', ')}` : ''}`,
  );
  const pace = (p: Job['pacing'] | null | undefined) =>
    p ? `${p.mode}${p.mode === 'adaptive' ? `, last limit ${p.keysPerSec ?? 'none'} (${p.phase ?? '-'})` : `, ${p.keysPerSec ?? 'no limit'} keys/s`}` : '-';
  const t = targets;
  console.log(
    `\n${fmtTable(
      ['move rate', 'keys/s (stream)', 'x ceiling', 'pacing'],
      [
        ['ceiling: LMDB-to-LMDB copy in one process', String(r.ceiling.keysPerSec), '1.00', '-'],
        [
          'move, no foreground',
          t.idleFractionOfCeiling.keysPerSecStreaming === null ? '-' : String(t.idleFractionOfCeiling.keysPerSecStreaming),
          t.idleFractionOfCeiling.measured === null ? '-' : t.idleFractionOfCeiling.measured.toFixed(2),
          pace(r.idle?.pacing),
        ],
        ['move, under the foreground', String(t.underLoad.keysPerSecStreaming), t.underLoad.fractionOfCeiling.toFixed(2), pace(r.run.finalJob?.pacing)],
      ],
    )}\n`,
  );
  console.log(
    `targets: idle move ${t.idleFractionOfCeiling.met ? 'met' : 'NOT met'} (${t.idleFractionOfCeiling.measured ?? '-'} x ceiling vs >= ${TARGETS.idleFractionOfCeiling}), p99 ratio ${t.p99Ratio.met ? 'met' : 'NOT met'} (${f.p99Ratio} vs <= ${TARGETS.p99Ratio})`,
  );
}

function writeResults(r: Report, f: ForegroundFigures, targets: Targets): void {
  const { rec } = r.fg;
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `rebalance-${r.startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      {
        benchmark: 'rebalance',
        startedAt: r.startedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        machine: r.machine,
        settings: { ...settings, routerSets, nodeArgs },
        method:
          "Every tier is a separate process on 127.0.0.1 of one machine, the load generator included. The foreground is one autocannon instance at a fixed overall rate spanning the before, during and after windows; latencies are per 2xx response. CPU per moved key is the change in utime+stime from /proc/<pid>/stat over the job (POST to done) divided by keys moved; net subtracts the tier's CPU rate in the before window.",
        load: r.cluster.load,
        peak: { connections: settings.maxConnections, durationS: settings.maxS, ...r.peak.max },
        foreground: {
          rate: r.peak.fgRate,
          connections: r.peak.fgConnections,
          before: f.before,
          during: f.during,
          duringByState: Object.fromEntries(
            rec
              .keys()
              .filter((k) => k.startsWith('during:'))
              .map((k) => [k.slice(7), rec.get(k)]),
          ),
          after: f.after,
          p99Ratio: f.p99Ratio,
          worstSecondP99During: f.worstSecondP99,
          streaming: f.streaming,
          autocannonTotals: { requests: r.fgTotal.requests.total, errors: r.fgTotal.errors, timeouts: r.fgTotal.timeouts, non2xx: r.fgTotal.non2xx },
          perSecond: { columns: ['second', 'responses', 'p99Ms', 'non2xxAndErrors', 'window'], rows: f.perSecond },
          slowestDuring: { columns: ['msSinceJobStart', 'latencyMs', 'state'], rows: [...rec.during].sort((a, b) => b[1] - a[1]).slice(0, 30) },
        },
        move: { ...r.move, pacing: r.run.finalJob?.pacing ?? null },
        idleMove: r.idle ?? null,
        ceiling: r.ceiling,
        cpu: r.cpu,
        targets,
        check: {
          sampled: r.check.sampled,
          bad: r.check.bad.length,
          examples: r.check.bad.slice(0, 10),
          recordsBefore: r.cluster.recordsBefore,
          recordsAfter: r.check.recordsAfter,
        },
        timeline: r.run.timeline,
      },
      null,
      2,
    ) + '\n',
  );
  console.log(`\nresults: ${path.relative(process.cwd(), file) || file}`);
}

async function main(cleanup: Cleanup): Promise<void> {
  const startedAt = new Date();
  const machine = machineInfo();
  log(
    `${String(machine['cpuCount'])} x ${String(machine['cpuModel'])}, node ${process.version}; ${settings.keys} keys of ${settings.valueBytes} B, router ${routerSets.join(' ')}`,
  );
  const cluster = await setUp(cleanup);
  const peak = await measurePeak(cluster.url);
  const fg = await startForeground(cluster, peak);
  const run = await moveShard(cluster, fg);
  const fgTotal = await finishForeground(fg);
  const finalJob = await readJob(cluster.topo.redis.url);
  run.finalJob = finalJob;
  const move = moveFigures(finalJob, run, fg.snapMoveStart.atMs);
  const cpu = cpuFigures(fg, run, move.keysMoved);
  const check = await verify(cluster);
  const idle = settings.idleMove ? await idleMove(cluster) : undefined;
  const ceil = await ceiling(move.keysMoved);
  report({ startedAt, machine, cluster, peak, fg, fgTotal, run, move, cpu, check, idle, ceiling: ceil });
}

runBench(
  main,
  () => {
    aborted = true;
    current?.stop();
  },
  log,
);
