// HTTP throughput benchmark: the router tier (without credentials, with an
// API key, with a session) against the shards' own HTTP port and (when
// installed) nginx, with the CPU each tier spends per request.
//
//   npm run bench:http                 # or: npx tsx bench/http.ts (after npm run build)
//   BENCH_DURATION_S=30 ROUTER_WORKERS=4 npm run bench:http
//
// Method: start a private topology (redis-server, 3 shards, router cluster,
// each its own process on 127.0.0.1), preload keys, then run every target
// once per round, BENCH_ROUNDS rounds, the order reversed every other round
// (so drift of a shared machine hits every target alike). Each run of a
// target is autocannon (keep-alive connections, no pipelining) for a warm-up
// and then a measured run. Around each measured run, utime+stime of every
// process is read from /proc, so "CPU µs/req" is what a tier spent per
// completed request. The load generator runs on the same machine and is
// reported as its own tier. The tables give the median over the rounds; the
// results file has every run as well.
//
// Credentials: the routers run with dataAuth=false, so a request without
// credentials is anonymous (the router-get/router-put rows), while one with
// an API key or a session is checked and scoped to its tenant exactly as with
// dataAuth=true (the -apikey, -session and -cookie rows). The tenant's keys
// are namespaced on the shards, so the same key names are preloaded twice:
// anonymously and through the tenant's API key.
//
// Rate limit: the main router counts every tenant request against
// tenantRateLimitPerSec = BENCH_TENANT_RATE_LIMIT (10^9: the limiter takes
// its budget from Redis as usual but never refuses). Two more routers on the
// same shards start when their rows are asked for: one with the limiter off
// (0) for router-get-apikey-nolimit, and one with BENCH_LIMITED_RATE (the
// router's default, 20000/s) for router-get-apikey-limited, where a faster
// load is answered 429.
//
// Settings (env): BENCH_DURATION_S (10), BENCH_WARMUP_S (2), BENCH_ROUNDS (3),
// BENCH_CONNECTIONS (64), BENCH_KEYS (10000), BENCH_VALUE_BYTES (100),
// ROUTER_WORKERS (2), BENCH_NOSYNC (0: shards fsync every commit, as in
// production), BENCH_TARGETS (all; comma list of TARGET_NAMES below),
// BENCH_TENANT_RATE_LIMIT (1000000000), BENCH_LIMITED_RATE (the router's
// default), BENCH_VERBOSE (0), BENCH_NODE_ARGS (extra node flags for shards
// and router, e.g. "--cpu-prof --cpu-prof-dir=prof").
import autocannon from 'autocannon';
import path from 'node:path';
import { ringOf, type Topology } from '../src/core/topology.js';
import { ROUTER_DEFAULTS } from '../src/core/config.js';
import { startTopology, startRouter, Cleanup, runBench, type BenchTopology, type RouterProcess, type TopologyOptions, ADMIN_HEADER } from './topology.js';
import { findNginx, startNginx, type NginxProcess } from './nginx.js';
import { request, get, getJson, forEachLimit } from '../dev/http.js';
import { bulkLoad } from '../dev/bulk-load.js';
import { US_PER_TICK, childrenOf, machineTicks, sampleTier, tierUsage, type Tier, type TierSample } from './proc.js';
import { envInt, envBool, machineInfo } from './settings.js';
import { routerCounters, redisCommandCalls, commandDelta, type RouterCounters } from './diagnostics.js';
import { createSession, createTenant } from './credentials.js';
import { markdownTable, median, round1, round3, summarizeRuns, writeResults } from './report.js';

const TARGET_NAMES = [
  'router-get',
  'router-put',
  'router-get-apikey',
  'router-put-apikey',
  'router-get-session',
  'router-put-session',
  'router-get-cookie',
  'router-get-apikey-nolimit',
  'router-get-apikey-limited',
  'shard-get',
  'shard-put',
  'nginx-get',
] as const;
type TargetName = (typeof TARGET_NAMES)[number];

/** Which credentials a target sends. */
type Credential = 'none' | 'apikey' | 'session' | 'cookie' | 'admin-token';

const TENANT = 'bench';

const settings = {
  durationS: envInt('BENCH_DURATION_S', 10, 1),
  warmupS: envInt('BENCH_WARMUP_S', 2, 0),
  rounds: envInt('BENCH_ROUNDS', 3, 1),
  connections: envInt('BENCH_CONNECTIONS', 64, 1),
  keys: envInt('BENCH_KEYS', 10_000, 1),
  valueBytes: envInt('BENCH_VALUE_BYTES', 100, 1),
  routerWorkers: envInt('ROUTER_WORKERS', 2, 1),
  shards: 3,
  noSync: envBool('BENCH_NOSYNC'),
  /** Every router of this benchmark: requests without credentials are anonymous. */
  dataAuth: false,
  /** The main router's tenantRateLimitPerSec: counting, never refusing. */
  tenantRateLimitPerSec: envInt('BENCH_TENANT_RATE_LIMIT', 1_000_000_000, 0),
  /** The tenantRateLimitPerSec of the router behind router-get-apikey-limited. */
  limitedRatePerSec: envInt('BENCH_LIMITED_RATE', ROUTER_DEFAULTS.tenantRateLimitPerSec, 1),
  /** Not set by the benchmark: the router's own default applies (this checkout's default shown). */
  authCacheMs: ROUTER_DEFAULTS.authCacheMs,
  targets: (process.env['BENCH_TARGETS'] ?? TARGET_NAMES.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
};
for (const t of settings.targets) {
  if (!(TARGET_NAMES as readonly string[]).includes(t))
    throw new Error(`BENCH_TARGETS: unknown target ${JSON.stringify(t)} (known: ${TARGET_NAMES.join(', ')})`);
}
const verbose = envBool('BENCH_VERBOSE');
const nodeArgs = (process.env['BENCH_NODE_ARGS'] ?? '').split(/\s+/).filter(Boolean);
const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
const wanted = (t: TargetName) => settings.targets.includes(t);

// Printable ASCII, so the same bytes work as a JSON string in a batch.
const VALUE = Buffer.from(Array.from({ length: settings.valueBytes }, (_, i) => 0x21 + ((i * 7) % 94)).map((c) => (c === 0x22 || c === 0x5c ? 0x2e : c)));
const keyName = (prefix: string, i: number) => `${prefix}${String(i).padStart(6, '0')}`;

interface Target {
  readonly name: TargetName;
  readonly description: string;
  readonly baseUrl: string;
  readonly method: 'GET' | 'PUT';
  readonly credential: Credential;
  readonly headers: Record<string, string>;
  /** The router that serves it (its workers are the router tiers); undefined: not a router row. */
  readonly router: RouterProcess | undefined;
  /** Request paths; each request picks one at random. */
  readonly paths: readonly string[];
}

interface RunResult {
  readonly round: number;
  readonly target: TargetName;
  readonly description: string;
  readonly method: string;
  readonly credential: Credential;
  readonly url: string;
  readonly keys: number;
  readonly durationS: number;
  readonly requests: number;
  readonly reqPerSec: number;
  /** 2xx answers per second (below reqPerSec when some were refused, e.g. 429). */
  readonly okPerSec: number;
  readonly latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly statusCodes: Record<string, number>;
  readonly cpuUsPerReq: Record<string, number>;
  /** The kernel-mode part of cpuUsPerReq. */
  readonly sysUsPerReq: Record<string, number>;
  readonly cpuUsTotal: Record<string, number>;
  /** Whole machine busy, and the part of it no process of ours accounts for (other load, idle routers of other rows). */
  readonly machineBusyPct: number;
  readonly otherBusyPct: number;
  /** Router to shard: requests per frame (the batching lever) and retries, over the run. */
  readonly router: { requestsPerFrame: number | null; frames: number; shardRequests: number; retries: number } | null;
  /** Redis commands during the run, per command, and per completed request. */
  readonly redisCommands: Record<string, number>;
  readonly redisCommandsPerReq: number;
  readonly lostPids: number[];
}

/** One target over all rounds: medians, and totals of what failed. */
interface TargetSummary {
  readonly target: TargetName;
  readonly description: string;
  readonly method: string;
  readonly credential: Credential;
  readonly url: string;
  readonly keys: number;
  readonly rounds: number;
  readonly reqPerSec: number;
  readonly okPerSec: number;
  readonly latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** Summed over the rounds. */
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly statusCodes: Record<string, number>;
  readonly cpuUsPerReq: Record<string, number>;
  readonly sysUsPerReq: Record<string, number>;
  readonly machineBusyPct: number;
  readonly otherBusyPct: number;
  readonly requestsPerFrame: number | null;
  readonly redisCommandsPerReq: number;
  /** Every round's req/s, in round order. */
  readonly reqPerSecByRound: number[];
}

/** A row against another of the same round: the median over the rounds of the ratio and the differences. */
interface Comparison {
  readonly target: TargetName;
  readonly versus: TargetName;
  readonly what: string;
  readonly reqPerSecRatio: number;
  readonly p99Ratio: number;
  /** Router workers' CPU µs per request, this row minus the other. */
  readonly routerWorkersUsDelta: number;
  readonly routerWorkersUsRatio: number;
  readonly redisCommandsPerReqDelta: number;
  readonly rounds: number;
}

function tiersFor(topo: BenchTopology, router: RouterProcess, nginx: NginxProcess | undefined): Tier[] {
  const tiers: Tier[] = [
    // Read the primary's children at each sample: a respawned worker counts too.
    { name: 'router-workers', pids: () => childrenOf(router.pid) },
    { name: 'router-primary', pids: () => [router.pid] },
    ...topo.shards.map((s): Tier => ({ name: s.id, pids: () => [s.pid] })),
    { name: 'redis', pids: () => [topo.redis.process.pid!] },
  ];
  if (nginx) tiers.push({ name: 'nginx', pids: () => [nginx.masterPid, ...childrenOf(nginx.masterPid)] });
  tiers.push({ name: 'loadgen', pids: () => [process.pid] });
  return tiers;
}

let current: autocannon.Instance | undefined;
let aborted = false;

async function fire(t: Target, durationS: number): Promise<autocannon.Result> {
  const { paths } = t;
  const inst = autocannon({
    url: t.baseUrl,
    connections: settings.connections,
    duration: durationS,
    timeout: 10,
    requests: [
      {
        method: t.method,
        headers: { ...t.headers, ...(t.method === 'PUT' ? { 'content-type': 'application/octet-stream' } : {}) },
        ...(t.method === 'PUT' ? { body: VALUE } : {}),
        setupRequest: (req) => {
          req.path = paths[Math.floor(Math.random() * paths.length)]!;
          return req;
        },
      },
    ],
  });
  current = inst;
  try {
    return await inst;
  } finally {
    current = undefined;
  }
}

function routerDelta(a: RouterCounters, b: RouterCounters): RunResult['router'] {
  // Only comparable when the same workers answered both times.
  if (a.pids.join() !== b.pids.join()) return null;
  const frames = b.frames - a.frames;
  const shardRequests = b.requests - a.requests;
  return { requestsPerFrame: frames > 0 ? Math.round((shardRequests / frames) * 100) / 100 : null, frames, shardRequests, retries: b.retries - a.retries };
}

async function runTarget(t: Target, round: number, tiers: Tier[], topo: BenchTopology): Promise<RunResult> {
  if (settings.warmupS > 0) await fire(t, settings.warmupS);
  if (aborted) throw new Error('aborted');
  const routerUrl = (t.router ?? topo.router).url;
  const rc0 = await routerCounters(routerUrl, settings.routerWorkers);
  const redis0 = await redisCommandCalls(topo.redis.url);
  const before = new Map<string, TierSample>(tiers.map((tier) => [tier.name, sampleTier(tier)]));
  const m0 = machineTicks();
  const r = await fire(t, settings.durationS);
  const m1 = machineTicks();
  const cpuUsTotal: Record<string, number> = {};
  const cpuUsPerReq: Record<string, number> = {};
  const sysUsPerReq: Record<string, number> = {};
  const lostPids: number[] = [];
  const n = r.requests.total;
  const perReq = (us: number) => (n > 0 ? round1(us / n) : 0);
  let oursUs = 0;
  for (const tier of tiers) {
    const u = tierUsage(tier, before.get(tier.name)!);
    cpuUsTotal[tier.name] = Math.round(u.cpuUs);
    cpuUsPerReq[tier.name] = perReq(u.cpuUs);
    sysUsPerReq[tier.name] = perReq(u.sysUs);
    oursUs += u.cpuUs;
    lostPids.push(...u.lost);
  }
  const redisCommands = commandDelta(redis0, await redisCommandCalls(topo.redis.url));
  const rc1 = await routerCounters(routerUrl, settings.routerWorkers);
  const machineUs = (m1.total - m0.total) * US_PER_TICK;
  const statusCodes: Record<string, number> = {};
  for (const [code, s] of Object.entries(r.statusCodeStats ?? {})) statusCodes[code] = s.count;
  const ok = Object.entries(statusCodes).reduce((a, [code, c]) => a + (code.startsWith('2') ? c : 0), 0);
  return {
    round,
    target: t.name,
    description: t.description,
    method: t.method,
    credential: t.credential,
    url: t.baseUrl,
    keys: t.paths.length,
    durationS: r.duration,
    requests: n,
    reqPerSec: Math.round(n / r.duration),
    okPerSec: Math.round(ok / r.duration),
    latencyMs: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max, mean: Math.round(r.latency.mean * 100) / 100 },
    errors: r.errors,
    timeouts: r.timeouts,
    non2xx: r.non2xx,
    statusCodes,
    cpuUsPerReq,
    sysUsPerReq,
    cpuUsTotal,
    machineBusyPct: Math.round(((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total)) * 1000) / 10,
    otherBusyPct: Math.max(0, Math.round((((m1.busy - m0.busy) * US_PER_TICK - oursUs) / Math.max(1, machineUs)) * 1000) / 10),
    router: routerDelta(rc0, rc1),
    redisCommands,
    redisCommandsPerReq: n > 0 ? round3(Object.values(redisCommands).reduce((a, b) => a + b, 0) / n) : 0,
    lostPids,
  };
}

async function preloadRouter(routerUrl: string, keys: readonly string[], headers?: Record<string, string>): Promise<void> {
  // Through the router's batch API: 1000 ops per call, a few calls in flight.
  const value = VALUE.toString('latin1');
  await bulkLoad(routerUrl, { keys, value: () => value, batch: 1000, concurrency: 4, ...(headers ? { headers } : {}) });
}

async function preloadNginx(nginxUrl: string, prefix: string): Promise<string[]> {
  const keys = Array.from({ length: settings.keys }, (_, i) => keyName(prefix, i));
  await forEachLimit(keys, settings.connections, async (key) => {
    const res = await request('PUT', `${nginxUrl}/kv/${encodeURIComponent(key)}`, {
      body: VALUE,
      headers: { ...ADMIN_HEADER, 'content-type': 'application/octet-stream' },
    });
    if (res.status !== 204) throw new Error(`nginx preload of ${key}: ${res.status} ${res.text.slice(0, 200)}`);
  });
  return keys;
}

async function expectValue(url: string, headers: Record<string, string>): Promise<void> {
  const res = await get(url, { headers });
  if (res.status !== 200 || !res.body.equals(VALUE)) throw new Error(`check GET ${url}: ${res.status}, ${res.body.length} bytes, not the preloaded value`);
}

/** The auth-off row of the same method, and for the limiter rows the API-key row they differ from. */
const COMPARISONS: ReadonlyArray<{ target: TargetName; versus: TargetName; what: string }> = [
  { target: 'router-get-apikey', versus: 'router-get', what: 'API key check + limiter counting' },
  { target: 'router-get-session', versus: 'router-get', what: 'session check (bearer) + limiter counting' },
  { target: 'router-get-cookie', versus: 'router-get', what: 'session check (cookie) + limiter counting' },
  { target: 'router-get-apikey-nolimit', versus: 'router-get', what: 'API key check, limiter off' },
  { target: 'router-get-apikey-limited', versus: 'router-get', what: `API key check, limit ${settings.limitedRatePerSec}/s` },
  { target: 'router-put-apikey', versus: 'router-put', what: 'API key check + limiter counting' },
  { target: 'router-put-session', versus: 'router-put', what: 'session check (bearer) + limiter counting' },
  { target: 'router-get-apikey', versus: 'router-get-apikey-nolimit', what: `limiter counting (limit ${settings.tenantRateLimitPerSec}/s) vs off` },
  { target: 'router-get-apikey-limited', versus: 'router-get-apikey', what: `limit ${settings.limitedRatePerSec}/s vs never refusing` },
];

function summarize(runs: readonly RunResult[], tierNames: readonly string[]): TargetSummary[] {
  const names = [...new Set(runs.map((r) => r.target))];
  return names.map((name) => {
    const rs = runs.filter((r) => r.target === name);
    const first = rs[0]!;
    const med = (f: (r: RunResult) => number) => median(rs.map(f));
    const frames = rs.map((r) => r.router?.requestsPerFrame).filter((x): x is number => typeof x === 'number');
    return {
      target: name,
      description: first.description,
      method: first.method,
      credential: first.credential,
      url: first.url,
      keys: first.keys,
      ...summarizeRuns(rs, tierNames),
      okPerSec: Math.round(med((r) => r.okPerSec)),
      requestsPerFrame: frames.length > 0 ? Math.round(median(frames) * 100) / 100 : null,
      redisCommandsPerReq: round3(med((r) => r.redisCommandsPerReq)),
      reqPerSecByRound: rs.map((r) => r.reqPerSec),
    };
  });
}

/** Paired by round: both rows ran in the same round, close in time. */
function compare(runs: readonly RunResult[]): Comparison[] {
  const out: Comparison[] = [];
  for (const c of COMPARISONS) {
    const pairs: Array<[RunResult, RunResult]> = [];
    for (const a of runs.filter((r) => r.target === c.target)) {
      const b = runs.find((r) => r.target === c.versus && r.round === a.round);
      if (b) pairs.push([a, b]);
    }
    if (pairs.length === 0) continue;
    const ratio = (x: number, y: number) => (y > 0 ? x / y : NaN);
    const wrk = (r: RunResult) => r.cpuUsPerReq['router-workers'] ?? 0;
    out.push({
      ...c,
      reqPerSecRatio: round3(median(pairs.map(([a, b]) => ratio(a.reqPerSec, b.reqPerSec)))),
      p99Ratio: round3(median(pairs.map(([a, b]) => ratio(a.latencyMs.p99, b.latencyMs.p99)))),
      routerWorkersUsDelta: round1(median(pairs.map(([a, b]) => wrk(a) - wrk(b)))),
      routerWorkersUsRatio: round3(median(pairs.map(([a, b]) => ratio(wrk(a), wrk(b))))),
      redisCommandsPerReqDelta: round3(median(pairs.map(([a, b]) => a.redisCommandsPerReq - b.redisCommandsPerReq))),
      rounds: pairs.length,
    });
  }
  return out;
}

const SHORT: Record<string, string> = { 'router-workers': 'rt-wrk', 'router-primary': 'rt-pri', loadgen: 'loadgen' };

function resultsTable(results: readonly TargetSummary[], comparisons: readonly Comparison[], tierNames: readonly string[]): string {
  const head = [
    'target',
    'req/s',
    'p50 ms',
    'p99 ms',
    'err/non2xx',
    ...tierNames.map((t) => SHORT[t] ?? t),
    'req/frame',
    'redis/req',
    '×auth-off',
    'busy%',
    'other%',
  ];
  const rows = results.map((r) => {
    // The first comparison of a row is with the auth-off row of its method.
    const off = comparisons.find((c) => c.target === r.target && (c.versus === 'router-get' || c.versus === 'router-put'));
    return [
      r.target,
      String(r.reqPerSec),
      String(r.latencyMs.p50),
      String(r.latencyMs.p99),
      `${r.errors + r.timeouts}/${r.non2xx}`,
      ...tierNames.map((t) => (r.cpuUsPerReq[t] === undefined ? '-' : r.cpuUsPerReq[t]!.toFixed(1))),
      r.requestsPerFrame != null ? r.requestsPerFrame.toFixed(1) : '-',
      r.redisCommandsPerReq.toFixed(3),
      off ? off.reqPerSecRatio.toFixed(3) : '-',
      r.machineBusyPct.toFixed(0),
      r.otherBusyPct.toFixed(0),
    ];
  });
  return markdownTable(head, rows);
}

function comparisonTable(comparisons: readonly Comparison[]): string {
  return markdownTable(
    ['row', 'versus', 'what differs', 'req/s ratio', 'p99 ratio', 'Δ rt-wrk µs/req', 'rt-wrk ratio', 'Δ redis/req'],
    comparisons.map((c) => [
      c.target,
      c.versus,
      c.what,
      c.reqPerSecRatio.toFixed(3),
      c.p99Ratio.toFixed(3),
      (c.routerWorkersUsDelta >= 0 ? '+' : '') + c.routerWorkersUsDelta.toFixed(1),
      c.routerWorkersUsRatio.toFixed(3),
      (c.redisCommandsPerReqDelta >= 0 ? '+' : '') + c.redisCommandsPerReqDelta.toFixed(3),
    ]),
    3,
  );
}

/** The settings that decide what the rows mean, as printed above the tables. */
function configLines(machine: Record<string, unknown>, extra: { nolimit: boolean; limited: boolean; nginx: string | undefined }): string[] {
  return [
    `- machine: ${String(machine['cpuCount'])} x ${String(machine['cpuModel'])}, node ${process.version}, commit ${String(machine['commit'])}, load average at start ${JSON.stringify(machine['loadAvgAtStart'])}`,
    `- topology: redis-server, ${settings.shards} shards (${settings.noSync ? 'noSync: no fsync' : 'fsync every commit'}), router with ${settings.routerWorkers} workers, load generator (autocannon) in this process; all on 127.0.0.1`,
    `- load: ${settings.connections} keep-alive connections, no pipelining, ${settings.valueBytes}-byte values, random key of ${settings.keys}; ${settings.warmupS} s warm-up + ${settings.durationS} s measured per target and round; ${settings.rounds} rounds, order reversed every other round; medians shown`,
    `- routers: dataAuth=false (requests without credentials are anonymous: router-get, router-put; requests with an API key or session are checked and scoped to tenant "${TENANT}" as with dataAuth=true); authCacheMs: router default (${settings.authCacheMs} ms in this checkout)`,
    `- rate limit: main router tenantRateLimitPerSec=${settings.tenantRateLimitPerSec}${settings.tenantRateLimitPerSec > 0 ? ' (the limiter counts every tenant request, taking its budget from Redis in chunks, but never refuses)' : ' (limiter off)'}; anonymous requests are never limited`,
    ...(extra.nolimit ? [`- router-get-apikey-nolimit: a second router on the same shards with tenantRateLimitPerSec=0 (limiter off)`] : []),
    ...(extra.limited
      ? [
          `- router-get-apikey-limited: a third router with tenantRateLimitPerSec=${settings.limitedRatePerSec} (the router default is ${ROUTER_DEFAULTS.tenantRateLimitPerSec}); a faster load is answered 429 (counted in non2xx; req/s counts them, 2xx/s is in the note below)`,
        ]
      : []),
    `- CPU columns: µs of CPU (user+system) per completed request, per tier; rt-wrk/rt-pri: the workers/primary of the router that served the row. req/frame: router-to-shard requests per frame. redis/req: Redis commands per request. ×auth-off: req/s over the auth-off row of the same method in the same round (median over rounds)`,
    `- busy%: whole machine (${String(machine['cpuCount'])} CPUs) during the run; other%: busy time not spent by any process of the row's tiers (other load, and the idle routers of other rows)`,
    ...(extra.nginx ? [`- nginx: ${extra.nginx}`] : []),
  ];
}

async function main(cleanup: Cleanup): Promise<void> {
  const startedAt = new Date();
  const machine = machineInfo();
  log(
    `${String(machine['cpuCount'])} x ${String(machine['cpuModel'])}, node ${process.version}; ${settings.connections} connections, ${settings.durationS} s per target (+${settings.warmupS} s warm-up), ${settings.rounds} rounds, ${settings.routerWorkers} router workers`,
  );
  const topoOpts: TopologyOptions = {
    shards: settings.shards,
    routerWorkers: settings.routerWorkers,
    noSync: settings.noSync,
    standaloneHttp: settings.targets.some((t) => t === 'nginx-get' || t === 'shard-put'),
    verbose,
    nodeArgs,
    dataAuth: settings.dataAuth,
    tenantRateLimitPerSec: settings.tenantRateLimitPerSec,
  };
  const topo = await startTopology(topoOpts, cleanup);
  log(
    `up: redis ${topo.redis.url}, shards ${topo.shards.map((s) => `${s.id} pid ${s.pid}`).join(', ')}, router ${topo.router.url} (primary ${topo.router.pid}, workers ${topo.router.workers.join(' ')}; dataAuth=false, tenantRateLimitPerSec=${settings.tenantRateLimitPerSec})`,
  );
  const nolimitRouter = wanted('router-get-apikey-nolimit')
    ? await startRouter(topo.redis.url, topoOpts, cleanup, { dataAuth: false, tenantRateLimitPerSec: 0, rebalanceCoordinator: false })
    : undefined;
  const limitedRouter = wanted('router-get-apikey-limited')
    ? await startRouter(topo.redis.url, topoOpts, cleanup, { dataAuth: false, tenantRateLimitPerSec: settings.limitedRatePerSec, rebalanceCoordinator: false })
    : undefined;
  if (nolimitRouter) log(`router ${nolimitRouter.url} (primary ${nolimitRouter.pid}): tenantRateLimitPerSec=0`);
  if (limitedRouter) log(`router ${limitedRouter.url} (primary ${limitedRouter.pid}): tenantRateLimitPerSec=${settings.limitedRatePerSec}`);

  log(`preloading ${settings.keys} keys of ${settings.valueBytes} bytes through the router, anonymously`);
  const routerKeys = Array.from({ length: settings.keys }, (_, i) => keyName('key-', i));
  await preloadRouter(topo.router.url, routerKeys);

  const authRows = settings.targets.some((t) => /-(apikey|session|cookie)/.test(t));
  const auth: Record<'apikey' | 'session' | 'cookie', Record<string, string>> = { apikey: {}, session: {}, cookie: {} };
  if (authRows) {
    const cred = await createTenant(topo.router.url, TENANT);
    const token = await createSession(topo.router.url, cred.apiKey);
    auth.apikey = { authorization: `Bearer ${cred.apiKey}` };
    auth.session = { authorization: `Bearer ${token}` };
    auth.cookie = { cookie: `kv_session=${token}` };
    log(`tenant ${TENANT}: an API key and a session; preloading the same ${settings.keys} keys through the API key (namespaced on the shards)`);
    await preloadRouter(topo.router.url, routerKeys, auth.apikey);
  }

  // Which keys the first shard owns, from the router's own view of the ring.
  const t = await getJson<Topology>(`${topo.router.url}/v1/topology`);
  const ring = ringOf(t);
  const shard = topo.shards[0]!;
  const shardKeys = routerKeys.filter((k) => ring.ownerOf(k) === shard.id);
  if (shardKeys.length === 0) throw new Error(`shard ${shard.id} owns none of the ${settings.keys} keys`);
  const firstKey = `/v1/kv/${encodeURIComponent(routerKeys[0]!)}`;
  await expectValue(`${topo.router.url}${firstKey}`, {});
  if (authRows) for (const h of Object.values(auth)) await expectValue(`${topo.router.url}${firstKey}`, h);
  await expectValue(`http://${shard.adminAddr}/kv/${encodeURIComponent(shardKeys[0]!)}`, ADMIN_HEADER);
  log(
    `${shard.id} owns ${shardKeys.length} of ${settings.keys} keys (${Object.entries(ring.shares())
      .map(([id, s]) => `${id} ${(s * 100).toFixed(1)}%`)
      .join(', ')})`,
  );

  const keyPath = (prefix: string) => (k: string) => `${prefix}${encodeURIComponent(k)}`;
  const routerPaths = routerKeys.map(keyPath('/v1/kv/'));
  const workers = `${settings.routerWorkers} workers`;
  const routerRow = (name: TargetName, method: 'GET' | 'PUT', credential: Credential, router: RouterProcess, what: string): Target => ({
    name,
    description: `${method} /v1/kv/<key>${method === 'PUT' ? ` (${settings.valueBytes} B)` : ''} through the router (${workers}), ${what}, random key of ${settings.keys}`,
    baseUrl: router.url,
    method,
    credential,
    headers: credential === 'none' || credential === 'admin-token' ? {} : auth[credential],
    router,
    paths: routerPaths,
  });
  const targets: Target[] = [
    routerRow('router-get', 'GET', 'none', topo.router, 'no credentials (anonymous)'),
    routerRow('router-put', 'PUT', 'none', topo.router, 'no credentials (anonymous)'),
    routerRow(
      'router-get-apikey',
      'GET',
      'apikey',
      topo.router,
      `API key (Authorization: Bearer kvk_…), limiter counting at ${settings.tenantRateLimitPerSec}/s`,
    ),
    routerRow('router-put-apikey', 'PUT', 'apikey', topo.router, `API key, limiter counting at ${settings.tenantRateLimitPerSec}/s`),
    routerRow('router-get-session', 'GET', 'session', topo.router, `session token (Authorization: Bearer kvs_…), limiter counting`),
    routerRow('router-put-session', 'PUT', 'session', topo.router, `session token (bearer), limiter counting`),
    routerRow('router-get-cookie', 'GET', 'cookie', topo.router, `session cookie (kv_session=kvs_…), limiter counting`),
  ];
  if (nolimitRouter)
    targets.push(routerRow('router-get-apikey-nolimit', 'GET', 'apikey', nolimitRouter, 'API key, limiter off (a second router, tenantRateLimitPerSec=0)'));
  if (limitedRouter)
    targets.push(
      routerRow(
        'router-get-apikey-limited',
        'GET',
        'apikey',
        limitedRouter,
        `API key, ${settings.limitedRatePerSec}/s per tenant (a third router): over it, 429`,
      ),
    );
  targets.push(
    {
      name: 'shard-get',
      description: `GET /kv/<key> on ${shard.id}'s admin port (no router), random key of the ${shardKeys.length} it owns`,
      baseUrl: `http://${shard.adminAddr}`,
      method: 'GET',
      credential: 'admin-token',
      // A shard's HTTP port takes the admin token.
      headers: ADMIN_HEADER,
      router: undefined,
      paths: shardKeys.map(keyPath('/kv/')),
    },
    {
      name: 'shard-put',
      description: `PUT /kv/<key> (${settings.valueBytes} B) on ${shard.id}'s admin port (no router), random key of the ${shardKeys.length} it owns`,
      baseUrl: `http://${shard.adminAddr}`,
      method: 'PUT',
      credential: 'admin-token',
      headers: ADMIN_HEADER,
      router: undefined,
      paths: shardKeys.map(keyPath('/kv/')),
    },
  );

  let nginx: NginxProcess | undefined;
  const notes: string[] = [];
  if (wanted('nginx-get')) {
    const bin = findNginx();
    if (!bin) {
      const msg = 'nginx-get skipped: no nginx on PATH (install nginx to compare against a consistent-hash reverse proxy)';
      log(msg);
      notes.push(msg);
    } else {
      nginx = await startNginx(
        bin,
        path.join(topo.dir, 'nginx'),
        settings.routerWorkers,
        topo.shards.map((s) => s.adminAddr),
        cleanup,
      );
      log(
        `${nginx.version} on ${nginx.url} (${settings.routerWorkers} workers, hash $request_uri consistent over the shards' admin ports); preloading ${settings.keys} keys through it`,
      );
      const nginxKeys = await preloadNginx(nginx.url, 'nx-');
      await expectValue(`${nginx.url}/kv/${encodeURIComponent(nginxKeys[0]!)}`, ADMIN_HEADER);
      targets.push({
        name: 'nginx-get',
        description: `GET /kv/<key> through nginx (${settings.routerWorkers} workers, consistent hash) to the shards' admin ports, random key of ${settings.keys}`,
        baseUrl: nginx.url,
        method: 'GET',
        credential: 'admin-token',
        headers: ADMIN_HEADER,
        router: undefined,
        paths: nginxKeys.map(keyPath('/kv/')),
      });
    }
  }

  const selected = targets.filter((x) => wanted(x.name));
  const runs: RunResult[] = [];
  let tierNames: string[] = [];
  for (let round = 1; round <= settings.rounds; round++) {
    const order = round % 2 === 1 ? selected : [...selected].reverse();
    for (const target of order) {
      if (aborted) throw new Error('aborted');
      const tiers = tiersFor(topo, target.router ?? topo.router, nginx);
      tierNames = tiers.map((x) => x.name);
      log(`round ${round}/${settings.rounds}, ${target.name}: ${target.description}`);
      const r = await runTarget(target, round, tiers, topo);
      runs.push(r);
      log(
        `  ${r.reqPerSec} req/s${r.okPerSec !== r.reqPerSec ? ` (${r.okPerSec} 2xx/s)` : ''}, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, errors ${r.errors}, non-2xx ${r.non2xx}${r.lostPids.length ? `, processes gone during the run: ${r.lostPids.join(' ')}` : ''}`,
      );
    }
  }

  const results = summarize(runs, tierNames);
  const comparisons = compare(runs);
  for (const r of results) {
    if (r.okPerSec !== r.reqPerSec) {
      const codes = Object.entries(r.statusCodes)
        .map(([c, n]) => `${c}: ${n}`)
        .join(', ');
      notes.push(`${r.target}: ${r.reqPerSec} req/s answered, of them ${r.okPerSec}/s 2xx (median over rounds); status codes over all rounds: ${codes}`);
    }
  }
  const markdown = [
    `# HTTP benchmark, ${startedAt.toISOString()}`,
    '',
    ...configLines(machine, { nolimit: !!nolimitRouter, limited: !!limitedRouter, nginx: nginx?.version }),
    '',
    `## Medians over ${settings.rounds} round${settings.rounds === 1 ? '' : 's'}`,
    '',
    resultsTable(results, comparisons, tierNames),
    '',
    ...(comparisons.length > 0
      ? ['## Rows against each other (each ratio and difference paired by round, median over the rounds)', '', comparisonTable(comparisons), '']
      : []),
    ...(notes.length > 0 ? ['## Notes', '', ...notes.map((n) => `- ${n}`), ''] : []),
  ].join('\n');
  console.log(`\n${markdown}`);

  const file = writeResults(
    'http',
    startedAt,
    {
      benchmark: 'http',
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      machine,
      settings: { ...settings, nodeArgs, autocannon: { pipelining: 1, keepAlive: true, timeoutS: 10 } },
      topology: {
        shards: topo.shards.map((s) => s.id),
        routerWorkers: settings.routerWorkers,
        epoch: t.epoch,
        shares: ring.shares(),
        nginx: nginx?.version,
        routers: {
          main: { url: topo.router.url, dataAuth: false, tenantRateLimitPerSec: settings.tenantRateLimitPerSec },
          ...(nolimitRouter ? { nolimit: { url: nolimitRouter.url, dataAuth: false, tenantRateLimitPerSec: 0 } } : {}),
          ...(limitedRouter ? { limited: { url: limitedRouter.url, dataAuth: false, tenantRateLimitPerSec: settings.limitedRatePerSec } } : {}),
        },
      },
      method:
        'Every tier is a separate process on 127.0.0.1 of one machine, the load generator included. Each round runs every target once (order reversed every other round). CPU per request is the change in utime+stime from /proc/<pid>/stat over the measured run, divided by completed requests. results[] holds the median of each figure over the rounds (errors, timeouts, non2xx and statusCodes summed); comparisons[] pairs two rows of the same round; runs[] holds every run.',
      notes,
      results,
      comparisons,
      runs,
    },
    markdown,
  );
  console.log(`\nresults: ${path.relative(process.cwd(), file) || file} (and .md)`);
}

runBench(
  main,
  () => {
    aborted = true;
    current?.stop();
  },
  log,
);
