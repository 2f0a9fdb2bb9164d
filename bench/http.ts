// HTTP throughput benchmark: the router tier against the shards' own HTTP
// port and (when installed) nginx, with the CPU each tier spends per request.
//
//   npm run bench                      # or: npx tsx bench/http.ts (after npm run build)
//   BENCH_DURATION_S=30 ROUTER_WORKERS=4 npm run bench
//
// Method: start a private topology (redis-server, 3 shards, router cluster,
// each its own process on 127.0.0.1), preload keys, then for each target run
// autocannon (keep-alive connections, no pipelining) for a warm-up and then a
// measured run. Around each measured run, utime+stime of every process is
// read from /proc, so "CPU µs/req" is what a tier spent per completed request.
// The load generator runs on the same machine and is reported as its own tier.
//
// Settings (env): BENCH_DURATION_S (10), BENCH_WARMUP_S (2), BENCH_CONNECTIONS
// (64), BENCH_KEYS (10000), BENCH_VALUE_BYTES (100), ROUTER_WORKERS (2),
// BENCH_NOSYNC (0: shards fsync every commit, as in production),
// BENCH_TARGETS (all; comma list of router-get, router-put, shard-get,
// shard-put, nginx-get), BENCH_VERBOSE (0), BENCH_NODE_ARGS (extra node
// flags for shards and router, e.g. "--cpu-prof --cpu-prof-dir=prof").
import autocannon from 'autocannon';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ringOf, type Topology } from '../src/core/topology.js';
import { startTopology, Cleanup, runBench, type BenchTopology, ADMIN_HEADER } from './topology.js';
import { findNginx, startNginx, type NginxProcess } from './nginx.js';
import { request, get, getJson, forEachLimit } from '../dev/http.js';
import { bulkLoad } from '../dev/bulk-load.js';
import { US_PER_TICK, childrenOf, machineTicks, sampleTier, tierUsage, type Tier, type TierSample } from './proc.js';
import { envInt, envBool, machineInfo, RESULTS_DIR } from './settings.js';
import { routerCounters, redisCommandCalls, commandDelta, type RouterCounters } from './diagnostics.js';

const TARGET_NAMES = ['router-get', 'router-put', 'shard-get', 'shard-put', 'nginx-get'] as const;
type TargetName = (typeof TARGET_NAMES)[number];

const settings = {
  durationS: envInt('BENCH_DURATION_S', 10, 1),
  warmupS: envInt('BENCH_WARMUP_S', 2, 0),
  connections: envInt('BENCH_CONNECTIONS', 64, 1),
  keys: envInt('BENCH_KEYS', 10_000, 1),
  valueBytes: envInt('BENCH_VALUE_BYTES', 100, 1),
  routerWorkers: envInt('ROUTER_WORKERS', 2, 1),
  shards: 3,
  noSync: envBool('BENCH_NOSYNC'),
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

// Printable ASCII, so the same bytes work as a JSON string in a batch.
const VALUE = Buffer.from(Array.from({ length: settings.valueBytes }, (_, i) => 0x21 + ((i * 7) % 94)).map((c) => (c === 0x22 || c === 0x5c ? 0x2e : c)));
const keyName = (prefix: string, i: number) => `${prefix}${String(i).padStart(6, '0')}`;

interface Target {
  readonly name: TargetName;
  readonly description: string;
  readonly baseUrl: string;
  readonly method: 'GET' | 'PUT';
  /** Request paths; each request picks one at random. */
  readonly paths: readonly string[];
}

interface RunResult {
  readonly target: TargetName;
  readonly description: string;
  readonly method: string;
  readonly url: string;
  readonly keys: number;
  readonly durationS: number;
  readonly requests: number;
  readonly reqPerSec: number;
  readonly latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly statusCodes: Record<string, number>;
  readonly cpuUsPerReq: Record<string, number>;
  /** The kernel-mode part of cpuUsPerReq. */
  readonly sysUsPerReq: Record<string, number>;
  readonly cpuUsTotal: Record<string, number>;
  /** Whole machine busy, and the part of it no process of ours accounts for (other load). */
  readonly machineBusyPct: number;
  readonly otherBusyPct: number;
  /** Router to shard: requests per frame (the batching lever) and retries, over the run. */
  readonly router: { requestsPerFrame: number | null; frames: number; shardRequests: number; retries: number } | null;
  /** Redis commands during the run, per command, and per completed request. */
  readonly redisCommands: Record<string, number>;
  readonly redisCommandsPerReq: number;
  readonly lostPids: number[];
}

function tiersFor(topo: BenchTopology, nginx: NginxProcess | undefined): Tier[] {
  const tiers: Tier[] = [
    // Read the primary's children at each sample: a respawned worker counts too.
    { name: 'router-workers', pids: () => childrenOf(topo.router.pid) },
    { name: 'router-primary', pids: () => [topo.router.pid] },
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
        // The token is needed by the shards' HTTP ports (directly or behind nginx); the router ignores it on /v1/kv.
        headers: { ...ADMIN_HEADER, ...(t.method === 'PUT' ? { 'content-type': 'application/octet-stream' } : {}) },
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

async function runTarget(t: Target, tiers: Tier[], topo: BenchTopology): Promise<RunResult> {
  if (settings.warmupS > 0) await fire(t, settings.warmupS);
  if (aborted) throw new Error('aborted');
  const rc0 = await routerCounters(topo.router.url, settings.routerWorkers);
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
  const perReq = (us: number) => (n > 0 ? Math.round((us / n) * 10) / 10 : 0);
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
  const machineUs = (m1.total - m0.total) * US_PER_TICK;
  const statusCodes: Record<string, number> = {};
  for (const [code, s] of Object.entries(r.statusCodeStats ?? {})) statusCodes[code] = s.count;
  return {
    target: t.name,
    description: t.description,
    method: t.method,
    url: t.baseUrl,
    keys: t.paths.length,
    durationS: r.duration,
    requests: n,
    reqPerSec: Math.round(n / r.duration),
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
    redisCommandsPerReq: n > 0 ? Math.round((Object.values(redisCommands).reduce((a, b) => a + b, 0) / n) * 1000) / 1000 : 0,
    lostPids,
  };
}

async function preloadRouter(routerUrl: string, keys: readonly string[]): Promise<void> {
  // Through the router's batch API: 1000 ops per call, a few calls in flight.
  const value = VALUE.toString('latin1');
  await bulkLoad(routerUrl, { keys, value: () => value, batch: 1000, concurrency: 4 });
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

async function expectValue(url: string): Promise<void> {
  const res = await get(url, { headers: ADMIN_HEADER });
  if (res.status !== 200 || !res.body.equals(VALUE)) throw new Error(`check GET ${url}: ${res.status}, ${res.body.length} bytes, not the preloaded value`);
}

function table(results: readonly RunResult[], tierNames: readonly string[]): string {
  const short: Record<string, string> = { 'router-workers': 'rt-wrk', 'router-primary': 'rt-pri', loadgen: 'loadgen' };
  const head = ['target', 'req/s', 'p50 ms', 'p99 ms', 'err/non2xx', ...tierNames.map((t) => short[t] ?? t), 'req/frame', 'busy%', 'other%'];
  const rows = results.map((r) => [
    r.target,
    String(r.reqPerSec),
    String(r.latencyMs.p50),
    String(r.latencyMs.p99),
    `${r.errors}/${r.non2xx}`,
    ...tierNames.map((t) => (r.cpuUsPerReq[t] === undefined ? '-' : r.cpuUsPerReq[t]!.toFixed(1))),
    r.router?.requestsPerFrame != null ? r.router.requestsPerFrame.toFixed(1) : '-',
    r.machineBusyPct.toFixed(0),
    r.otherBusyPct.toFixed(0),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const fmt = (row: string[]) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [fmt(head), fmt(widths.map((w) => '-'.repeat(w))), ...rows.map(fmt)].join('\n');
}

async function main(cleanup: Cleanup): Promise<void> {
  const startedAt = new Date();
  const machine = machineInfo();
  log(
    `${String(machine['cpuCount'])} x ${String(machine['cpuModel'])}, node ${process.version}; ${settings.connections} connections, ${settings.durationS} s per target (+${settings.warmupS} s warm-up), ${settings.routerWorkers} router workers`,
  );
  const topo = await startTopology(
    {
      shards: settings.shards,
      routerWorkers: settings.routerWorkers,
      noSync: settings.noSync,
      standaloneHttp: settings.targets.some((t) => t === 'nginx-get' || t === 'shard-put'),
      verbose,
      nodeArgs,
    },
    cleanup,
  );
  log(
    `up: redis ${topo.redis.url}, shards ${topo.shards.map((s) => `${s.id} pid ${s.pid}`).join(', ')}, router ${topo.router.url} (primary ${topo.router.pid}, workers ${topo.router.workers.join(' ')})`,
  );

  log(`preloading ${settings.keys} keys of ${settings.valueBytes} bytes through the router`);
  const routerKeys = Array.from({ length: settings.keys }, (_, i) => keyName('key-', i));
  await preloadRouter(topo.router.url, routerKeys);

  // Which keys the first shard owns, from the router's own view of the ring.
  const t = await getJson<Topology>(`${topo.router.url}/v1/topology`);
  const ring = ringOf(t);
  const shard = topo.shards[0]!;
  const shardKeys = routerKeys.filter((k) => ring.ownerOf(k) === shard.id);
  if (shardKeys.length === 0) throw new Error(`shard ${shard.id} owns none of the ${settings.keys} keys`);
  await expectValue(`${topo.router.url}/v1/kv/${encodeURIComponent(routerKeys[0]!)}`);
  await expectValue(`http://${shard.adminAddr}/kv/${encodeURIComponent(shardKeys[0]!)}`);
  log(
    `${shard.id} owns ${shardKeys.length} of ${settings.keys} keys (${Object.entries(ring.shares())
      .map(([id, s]) => `${id} ${(s * 100).toFixed(1)}%`)
      .join(', ')})`,
  );

  const keyPath = (prefix: string) => (k: string) => `${prefix}${encodeURIComponent(k)}`;
  const targets: Target[] = [
    {
      name: 'router-get',
      description: `GET /v1/kv/<key> through the router (${settings.routerWorkers} workers), random key of ${settings.keys}`,
      baseUrl: topo.router.url,
      method: 'GET',
      paths: routerKeys.map(keyPath('/v1/kv/')),
    },
    {
      name: 'router-put',
      description: `PUT /v1/kv/<key> (${settings.valueBytes} B) through the router, random key of ${settings.keys}`,
      baseUrl: topo.router.url,
      method: 'PUT',
      paths: routerKeys.map(keyPath('/v1/kv/')),
    },
    {
      name: 'shard-get',
      description: `GET /kv/<key> on ${shard.id}'s admin port (no router), random key of the ${shardKeys.length} it owns`,
      baseUrl: `http://${shard.adminAddr}`,
      method: 'GET',
      paths: shardKeys.map(keyPath('/kv/')),
    },
    {
      name: 'shard-put',
      description: `PUT /kv/<key> (${settings.valueBytes} B) on ${shard.id}'s admin port (no router), random key of the ${shardKeys.length} it owns`,
      baseUrl: `http://${shard.adminAddr}`,
      method: 'PUT',
      paths: shardKeys.map(keyPath('/kv/')),
    },
  ];

  let nginx: NginxProcess | undefined;
  const notes: string[] = [];
  if (settings.targets.includes('nginx-get')) {
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
      await expectValue(`${nginx.url}/kv/${encodeURIComponent(nginxKeys[0]!)}`);
      targets.push({
        name: 'nginx-get',
        description: `GET /kv/<key> through nginx (${settings.routerWorkers} workers, consistent hash) to the shards' admin ports, random key of ${settings.keys}`,
        baseUrl: nginx.url,
        method: 'GET',
        paths: nginxKeys.map(keyPath('/kv/')),
      });
    }
  }

  const tiers = tiersFor(topo, nginx);
  const results: RunResult[] = [];
  for (const target of targets.filter((x) => settings.targets.includes(x.name))) {
    if (aborted) break;
    log(`${target.name}: ${target.description}`);
    const r = await runTarget(target, tiers, topo);
    results.push(r);
    log(
      `${target.name}: ${r.reqPerSec} req/s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, errors ${r.errors}, non-2xx ${r.non2xx}${r.lostPids.length ? `, processes gone during the run: ${r.lostPids.join(' ')}` : ''}`,
    );
  }

  const tierNames = tiers.map((x) => x.name);
  console.log(`\nCPU columns: µs of CPU (user+system) per completed request, per tier. req/frame: router-to-shard requests per frame.`);
  console.log(`busy%: whole machine (${String(machine['cpuCount'])} CPUs) during the run; other%: busy time not spent by any process of this benchmark.\n`);
  console.log(table(results, tierNames));

  const outDir = RESULTS_DIR;
  mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `http-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      {
        benchmark: 'http',
        startedAt: startedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        machine,
        settings: { ...settings, nodeArgs, autocannon: { pipelining: 1, keepAlive: true, timeoutS: 10 } },
        topology: { shards: topo.shards.map((s) => s.id), routerWorkers: settings.routerWorkers, epoch: t.epoch, shares: ring.shares(), nginx: nginx?.version },
        method:
          'Every tier is a separate process on 127.0.0.1 of one machine, the load generator included. CPU per request is the change in utime+stime from /proc/<pid>/stat over the measured run, divided by completed requests.',
        notes,
        results,
      },
      null,
      2,
    ) + '\n',
  );
  console.log(`\nresults: ${path.relative(process.cwd(), file) || file}`);
}

runBench(
  main,
  () => {
    aborted = true;
    current?.stop();
  },
  log,
);
