// Session-store benchmark: web sessions of an Express app with express-session
// kept in shardkv through KvSessionStore, against the same app with
// express-session's MemoryStore (sessions in the app's own memory) as the
// reference, with the CPU each tier spends per request.
//
//   npm run bench:session              # or: npx tsx bench/session-store.ts (after npm run build)
//   BENCH_SESSIONS=10000 BENCH_DURATION_S=30 npm run bench:session
//
// Method: start a private topology (redis-server, 3 shards, router with
// ROUTER_WORKERS workers and dataAuth=true), create a tenant and an API key,
// and start the app (bench/session-app.ts) twice as its own process: once
// with KvSessionStore over a KvClient holding that API key, once with
// MemoryStore. Each app gets BENCH_SESSIONS sessions (POST /login, one cookie
// each). Then autocannon (keep-alive connections, no pipelining) sends each
// request with the cookie of a random session: GET /page, and every
// BENCH_WRITE_EVERY-th request POST /page. express-session turns a GET into
// store.get plus store.touch (the session is unchanged, so its TTL is
// extended), and a POST into store.get plus store.set (the session changed).
// KvSessionStore's touch reads the stored bytes and writes them back with
// If-Match and the new TTL, so a GET costs three router requests, a POST two.
// Each round runs both stores (order reversed every other round); the tables
// give the median over the rounds. Around each measured run, utime+stime of
// every process is read from /proc ("CPU µs/req": per completed request).
//
// Through a real Express app rather than calling the store's methods
// directly: what a user sees includes express-session's own work (cookie
// signature, session hashing, JSON) and the HTTP hop, and the MemoryStore
// reference makes that part visible on its own.
//
// Settings (env): BENCH_DURATION_S (10), BENCH_WARMUP_S (2), BENCH_ROUNDS (3),
// BENCH_CONNECTIONS (64), BENCH_SESSIONS (1000), BENCH_WRITE_EVERY (10),
// BENCH_SESSION_BYTES (200: a string field of that length in every session),
// BENCH_CLIENT_CONNECTIONS (64: the KvClient's connections to the router),
// BENCH_TENANT_RATE_LIMIT (1000000000: the router's tenantRateLimitPerSec;
// counting, never refusing), ROUTER_WORKERS (2), BENCH_NOSYNC (0),
// BENCH_STORES (kv,memory), BENCH_VERBOSE (0), BENCH_NODE_ARGS.
import autocannon from 'autocannon';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Child } from '../src/local/child.js';
import { ROUTER_DEFAULTS } from '../src/core/config.js';
import { startTopology, Cleanup, runBench, type BenchTopology } from './topology.js';
import { request, forEachLimit, keepAliveAgent, getJson } from '../dev/http.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { US_PER_TICK, childrenOf, machineTicks, sampleTier, tierUsage, type Tier, type TierSample } from './proc.js';
import { envInt, envBool, machineInfo } from './settings.js';
import { routerCounters, redisCommandCalls, commandDelta } from './diagnostics.js';
import { createTenant } from './credentials.js';
import { markdownTable, median, round1, round3, summarizeRuns, writeResults } from './report.js';

const STORE_NAMES = ['kv', 'memory'] as const;
type StoreName = (typeof STORE_NAMES)[number];
const STORE_LABEL: Record<StoreName, string> = {
  kv: 'KvSessionStore (shardkv, through the router)',
  memory: "express-session's MemoryStore (in the app process)",
};

const TENANT = 'sessions';
const APP = fileURLToPath(new URL('./session-app.ts', import.meta.url));

const settings = {
  durationS: envInt('BENCH_DURATION_S', 10, 1),
  warmupS: envInt('BENCH_WARMUP_S', 2, 0),
  rounds: envInt('BENCH_ROUNDS', 3, 1),
  connections: envInt('BENCH_CONNECTIONS', 64, 1),
  sessions: envInt('BENCH_SESSIONS', 1000, 1),
  writeEvery: envInt('BENCH_WRITE_EVERY', 10, 1),
  sessionBytes: envInt('BENCH_SESSION_BYTES', 200, 0),
  clientConnections: envInt('BENCH_CLIENT_CONNECTIONS', 64, 1),
  routerWorkers: envInt('ROUTER_WORKERS', 2, 1),
  shards: 3,
  noSync: envBool('BENCH_NOSYNC'),
  dataAuth: true,
  tenantRateLimitPerSec: envInt('BENCH_TENANT_RATE_LIMIT', 1_000_000_000, 0),
  authCacheMs: ROUTER_DEFAULTS.authCacheMs,
  stores: (process.env['BENCH_STORES'] ?? STORE_NAMES.join(','))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean) as StoreName[],
};
for (const s of settings.stores) {
  if (!(STORE_NAMES as readonly string[]).includes(s)) throw new Error(`BENCH_STORES: unknown store ${JSON.stringify(s)} (known: ${STORE_NAMES.join(', ')})`);
}
const verbose = envBool('BENCH_VERBOSE');
const nodeArgs = (process.env['BENCH_NODE_ARGS'] ?? '').split(/\s+/).filter(Boolean);
const log = (msg: string) => process.stderr.write(`[bench:session] ${msg}\n`);

interface App {
  readonly store: StoreName;
  readonly url: string;
  readonly pid: number;
  /** One `connect.sid=…` cookie per session. */
  readonly cookies: readonly string[];
}

interface RunResult {
  readonly round: number;
  readonly store: StoreName;
  readonly durationS: number;
  readonly requests: number;
  /** POST /page among them (a changed session: store.set). */
  readonly writes: number;
  readonly reqPerSec: number;
  readonly latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  /** Store errors the app saw (a failed touch can hide behind a 200). */
  readonly storeErrors: number;
  readonly lastStoreError: string | undefined;
  readonly statusCodes: Record<string, number>;
  readonly cpuUsPerReq: Record<string, number>;
  readonly sysUsPerReq: Record<string, number>;
  readonly cpuUsTotal: Record<string, number>;
  readonly machineBusyPct: number;
  readonly otherBusyPct: number;
  /** Router-to-shard requests per app request (the store's round trips that reached a shard). */
  readonly shardRequestsPerReq: number | null;
  readonly redisCommands: Record<string, number>;
  readonly redisCommandsPerReq: number;
  readonly lostPids: number[];
}

interface StoreSummary {
  readonly store: StoreName;
  readonly description: string;
  readonly rounds: number;
  readonly reqPerSec: number;
  readonly latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly storeErrors: number;
  readonly statusCodes: Record<string, number>;
  readonly cpuUsPerReq: Record<string, number>;
  readonly sysUsPerReq: Record<string, number>;
  readonly machineBusyPct: number;
  readonly otherBusyPct: number;
  readonly writeShare: number;
  readonly shardRequestsPerReq: number | null;
  readonly redisCommandsPerReq: number;
  readonly reqPerSecByRound: number[];
}

function tiersFor(topo: BenchTopology, app: App): Tier[] {
  return [
    { name: 'app', pids: () => [app.pid] },
    { name: 'router-workers', pids: () => childrenOf(topo.router.pid) },
    { name: 'router-primary', pids: () => [topo.router.pid] },
    ...topo.shards.map((s): Tier => ({ name: s.id, pids: () => [s.pid] })),
    { name: 'redis', pids: () => [topo.redis.process.pid!] },
    { name: 'loadgen', pids: () => [process.pid] },
  ];
}

async function startApp(store: StoreName, topo: BenchTopology, apiKey: string, cleanup: Cleanup): Promise<App> {
  const child = new Child(APP, [], {
    nodeArgs: ['--import', import.meta.resolve('tsx'), ...nodeArgs],
    detached: true,
    env: {
      ...process.env,
      NODE_ENV: 'production',
      SESSION_STORE: store,
      KV_URLS: topo.router.url,
      KV_API_KEY: apiKey,
      KV_CONNECTIONS: String(settings.clientConnections),
      SESSION_BYTES: String(settings.sessionBytes),
    },
    onLine: (line) => {
      if (verbose || /error|warn|fail/i.test(line)) process.stderr.write(`[app ${store}] ${line}\n`);
    },
  });
  cleanup.track(child);
  cleanup.add(`app ${store}`, () => child.stop(10_000));
  const m = await child.ready(30_000);
  const url = `http://127.0.0.1:${String(m['port'])}`;

  // Log in every session: one POST /login each, a few in flight.
  const agent = keepAliveAgent(32);
  const cookies: string[] = [];
  try {
    await forEachLimit(
      Array.from({ length: settings.sessions }, (_, i) => i),
      32,
      async () => {
        const res = await request('POST', `${url}/login`, { agent });
        const set = res.headers['set-cookie'];
        const first = (Array.isArray(set) ? set[0] : set)?.split(';', 1)[0];
        if (res.status !== 200 || !first?.startsWith('connect.sid='))
          throw new Error(`POST /login on the ${store} app: ${res.status} ${res.text.slice(0, 200)}`);
        cookies.push(first);
      },
    );
    const check = await request('GET', `${url}/page`, { agent, headers: { cookie: cookies[0]! } });
    if (check.status !== 200) throw new Error(`GET /page with a fresh session on the ${store} app: ${check.status} ${check.text.slice(0, 200)}`);
  } finally {
    await agent.close();
  }
  return { store, url, pid: child.pid, cookies };
}

let current: autocannon.Instance | undefined;
let aborted = false;

async function fire(app: App, durationS: number): Promise<{ result: autocannon.Result; writes: number }> {
  const { cookies } = app;
  let sent = 0;
  let writes = 0;
  const inst = autocannon({
    url: app.url,
    connections: settings.connections,
    duration: durationS,
    timeout: 10,
    requests: [
      {
        method: 'GET',
        path: '/page',
        setupRequest: (req) => {
          const cookie = cookies[Math.floor(Math.random() * cookies.length)]!;
          const write = ++sent % settings.writeEvery === 0;
          if (write) writes++;
          return { ...req, method: write ? 'POST' : 'GET', path: '/page', headers: { ...req.headers, cookie } };
        },
      },
    ],
  });
  current = inst;
  try {
    return { result: await inst, writes };
  } finally {
    current = undefined;
  }
}

interface AppStats {
  readonly inFlight: number;
  readonly storeErrors: number;
  readonly lastError: string;
}

const appStats = async (app: App) => await getJson<AppStats>(`${app.url}/_stats`, { fresh: true });

/** Wait until the app has finished every request it received (autocannon stops without waiting for them). */
async function idle(app: App): Promise<AppStats> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const s = await appStats(app);
    if (s.inFlight === 0) return s;
    if (Date.now() > deadline) throw new Error(`the ${app.store} app still has ${s.inFlight} requests under way after 60 s`);
    await sleep(50);
  }
}

async function runStore(app: App, round: number, topo: BenchTopology): Promise<RunResult> {
  if (settings.warmupS > 0) await fire(app, settings.warmupS);
  if (aborted) throw new Error('aborted');
  // The warm-up's last requests must not run into the measured run.
  const s0 = await idle(app);
  const tiers = tiersFor(topo, app);
  const rc0 = await routerCounters(topo.router.url, settings.routerWorkers);
  const redis0 = await redisCommandCalls(topo.redis.url);
  const before = new Map<string, TierSample>(tiers.map((tier) => [tier.name, sampleTier(tier)]));
  const m0 = machineTicks();
  const { result: r, writes } = await fire(app, settings.durationS);
  const m1 = machineTicks();
  const n = r.requests.total;
  const perReq = (us: number) => (n > 0 ? round1(us / n) : 0);
  const cpuUsTotal: Record<string, number> = {};
  const cpuUsPerReq: Record<string, number> = {};
  const sysUsPerReq: Record<string, number> = {};
  const lostPids: number[] = [];
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
  const rc1 = await routerCounters(topo.router.url, settings.routerWorkers);
  // Only now: the requests still under way when the load stopped are not in the figures above (as in bench/http.ts).
  const s1 = await idle(app);
  const machineUs = (m1.total - m0.total) * US_PER_TICK;
  const statusCodes: Record<string, number> = {};
  for (const [code, s] of Object.entries(r.statusCodeStats ?? {})) statusCodes[code] = s.count;
  const sameWorkers = rc0.pids.join() === rc1.pids.join();
  return {
    round,
    store: app.store,
    durationS: r.duration,
    requests: n,
    writes,
    reqPerSec: Math.round(n / r.duration),
    latencyMs: { p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max, mean: Math.round(r.latency.mean * 100) / 100 },
    errors: r.errors,
    timeouts: r.timeouts,
    non2xx: r.non2xx,
    storeErrors: s1.storeErrors - s0.storeErrors,
    lastStoreError: s1.storeErrors > s0.storeErrors ? s1.lastError : undefined,
    statusCodes,
    cpuUsPerReq,
    sysUsPerReq,
    cpuUsTotal,
    machineBusyPct: round1(((m1.busy - m0.busy) / Math.max(1, m1.total - m0.total)) * 100),
    otherBusyPct: Math.max(0, round1((((m1.busy - m0.busy) * US_PER_TICK - oursUs) / Math.max(1, machineUs)) * 100)),
    shardRequestsPerReq: sameWorkers && n > 0 ? round3((rc1.requests - rc0.requests) / n) : null,
    redisCommands,
    redisCommandsPerReq: n > 0 ? round3(Object.values(redisCommands).reduce((a, b) => a + b, 0) / n) : 0,
    lostPids,
  };
}

function summarize(runs: readonly RunResult[], tierNames: readonly string[]): StoreSummary[] {
  return settings.stores.map((store) => {
    const rs = runs.filter((r) => r.store === store);
    const med = (f: (r: RunResult) => number) => median(rs.map(f));
    const shardReqs = rs.map((r) => r.shardRequestsPerReq).filter((x): x is number => x !== null);
    return {
      store,
      description: STORE_LABEL[store],
      ...summarizeRuns(rs, tierNames),
      storeErrors: rs.reduce((a, r) => a + r.storeErrors, 0),
      writeShare: round3(
        rs.reduce((a, r) => a + r.writes, 0) /
          Math.max(
            1,
            rs.reduce((a, r) => a + r.requests, 0),
          ),
      ),
      shardRequestsPerReq: shardReqs.length > 0 ? round3(median(shardReqs)) : null,
      redisCommandsPerReq: round3(med((r) => r.redisCommandsPerReq)),
      reqPerSecByRound: rs.map((r) => r.reqPerSec),
    };
  });
}

/** KvSessionStore against MemoryStore, paired by round. */
function versusMemory(runs: readonly RunResult[]): { reqPerSecRatio: number; p50Ratio: number; p99Ratio: number; rounds: number } | undefined {
  const pairs: Array<[RunResult, RunResult]> = [];
  for (const a of runs.filter((r) => r.store === 'kv')) {
    const b = runs.find((r) => r.store === 'memory' && r.round === a.round);
    if (b) pairs.push([a, b]);
  }
  if (pairs.length === 0) return undefined;
  const ratio = (f: (r: RunResult) => number) => round3(median(pairs.map(([a, b]) => (f(b) > 0 ? f(a) / f(b) : NaN))));
  return { reqPerSecRatio: ratio((r) => r.reqPerSec), p50Ratio: ratio((r) => r.latencyMs.p50), p99Ratio: ratio((r) => r.latencyMs.p99), rounds: pairs.length };
}

const SHORT: Record<string, string> = { 'router-workers': 'rt-wrk', 'router-primary': 'rt-pri' };

function table(results: readonly StoreSummary[], tierNames: readonly string[]): string {
  const head = [
    'store',
    'req/s',
    'p50 ms',
    'p99 ms',
    'err/non2xx/store',
    ...tierNames.map((t) => SHORT[t] ?? t),
    'shard req/req',
    'redis/req',
    'busy%',
    'other%',
  ];
  return markdownTable(
    head,
    results.map((r) => [
      r.store,
      String(r.reqPerSec),
      String(r.latencyMs.p50),
      String(r.latencyMs.p99),
      `${r.errors + r.timeouts}/${r.non2xx}/${r.storeErrors}`,
      ...tierNames.map((t) => (r.cpuUsPerReq[t] ?? 0).toFixed(1)),
      r.shardRequestsPerReq === null ? '-' : r.shardRequestsPerReq.toFixed(2),
      r.redisCommandsPerReq.toFixed(3),
      r.machineBusyPct.toFixed(0),
      r.otherBusyPct.toFixed(0),
    ]),
  );
}

async function main(cleanup: Cleanup): Promise<void> {
  const startedAt = new Date();
  const machine = machineInfo();
  log(
    `${String(machine['cpuCount'])} x ${String(machine['cpuModel'])}, node ${process.version}; ${settings.sessions} sessions, ${settings.connections} connections, ${settings.durationS} s per store (+${settings.warmupS} s warm-up), ${settings.rounds} rounds`,
  );
  const topo = await startTopology(
    {
      shards: settings.shards,
      routerWorkers: settings.routerWorkers,
      noSync: settings.noSync,
      verbose,
      nodeArgs,
      dataAuth: true,
      tenantRateLimitPerSec: settings.tenantRateLimitPerSec,
    },
    cleanup,
  );
  log(
    `up: redis ${topo.redis.url}, shards ${topo.shards.map((s) => s.id).join(', ')}, router ${topo.router.url} (${settings.routerWorkers} workers, dataAuth=true)`,
  );
  const cred = await createTenant(topo.router.url, TENANT);
  log(`tenant ${TENANT} with an API key; starting the apps and logging in ${settings.sessions} sessions on each`);

  const apps: App[] = [];
  for (const store of settings.stores) {
    const app = await startApp(store, topo, cred.apiKey, cleanup);
    log(`${store}: ${STORE_LABEL[store]}, app ${app.url} (pid ${app.pid}), ${app.cookies.length} sessions`);
    apps.push(app);
  }

  const runs: RunResult[] = [];
  let tierNames: string[] = [];
  for (let round = 1; round <= settings.rounds; round++) {
    const order = round % 2 === 1 ? apps : [...apps].reverse();
    for (const app of order) {
      if (aborted) throw new Error('aborted');
      log(`round ${round}/${settings.rounds}, ${app.store}`);
      tierNames = tiersFor(topo, app).map((t) => t.name);
      const r = await runStore(app, round, topo);
      runs.push(r);
      log(
        `  ${r.reqPerSec} req/s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, errors ${r.errors}, non-2xx ${r.non2xx}, store errors ${r.storeErrors}${r.lastStoreError ? ` (${r.lastStoreError})` : ''}, writes ${r.writes} of ${r.requests}`,
      );
    }
  }

  const results = summarize(runs, tierNames);
  const vs = versusMemory(runs);
  const markdown = [
    `# Session-store benchmark, ${startedAt.toISOString()}`,
    '',
    `- machine: ${String(machine['cpuCount'])} x ${String(machine['cpuModel'])}, node ${process.version}, commit ${String(machine['commit'])}, load average at start ${JSON.stringify(machine['loadAvgAtStart'])}`,
    `- topology: redis-server, ${settings.shards} shards (${settings.noSync ? 'noSync: no fsync' : 'fsync every commit'}), router with ${settings.routerWorkers} workers, dataAuth=true, tenantRateLimitPerSec=${settings.tenantRateLimitPerSec} (counting, never refusing), authCacheMs: router default (${settings.authCacheMs} ms in this checkout); all on 127.0.0.1`,
    `- app: Express + express-session (resave false, saveUninitialized false, cookie maxAge 30 min), one process per store; kv: KvSessionStore over a KvClient with tenant "${TENANT}"'s API key and ${settings.clientConnections} connections; memory: MemoryStore in the app process`,
    `- load: autocannon in this process, ${settings.connections} keep-alive connections, no pipelining; each request carries the cookie of a random one of ${settings.sessions} sessions (${settings.sessionBytes}-byte data field); GET /page (store.get + store.touch), every ${settings.writeEvery}th request POST /page (store.get + store.set); ${settings.warmupS} s warm-up + ${settings.durationS} s measured per store and round; ${settings.rounds} rounds, order reversed every other round; medians shown`,
    `- err/non2xx/store: connection errors and timeouts / non-2xx answers / store errors the app saw (a failed touch can hide behind a 200)
- CPU columns: µs of CPU (user+system) per completed request, per tier. shard req/req: router-to-shard requests per app request. redis/req: Redis commands per app request`,
    '',
    `## Medians over ${settings.rounds} round${settings.rounds === 1 ? '' : 's'}`,
    '',
    table(results, tierNames),
    '',
    ...(vs
      ? [
          `kv against memory, paired by round (median over ${vs.rounds}): req/s ×${vs.reqPerSecRatio.toFixed(3)}, p50 ×${vs.p50Ratio.toFixed(3)}, p99 ×${vs.p99Ratio.toFixed(3)}`,
          '',
        ]
      : []),
  ].join('\n');
  console.log(`\n${markdown}`);

  const file = writeResults(
    'session-store',
    startedAt,
    {
      benchmark: 'session-store',
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      machine,
      settings: { ...settings, nodeArgs, autocannon: { pipelining: 1, keepAlive: true, timeoutS: 10 } },
      topology: { shards: topo.shards.map((s) => s.id), routerWorkers: settings.routerWorkers, router: topo.router.url },
      method:
        'An Express app with express-session in its own process per store; autocannon sends GET /page with a random session cookie, every Nth request POST /page. Each round runs every store once (order reversed every other round). CPU per request is the change in utime+stime from /proc/<pid>/stat over the measured run, divided by completed requests. results[] holds medians over the rounds (errors, timeouts, non2xx and statusCodes summed); runs[] every run.',
      results,
      kvVersusMemory: vs,
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
