// The benchmark suite (`npm run bench`): shardkv's router against the peers a
// user would pick instead, over the same shard processes and the same data,
// with the CPU every tier spends per request, and the issue's targets
// computed from the same run.
//
//   npm run bench                           # the default profile (about 12 min on 2 CPUs)
//   BENCH_QUICK=1 npm run bench             # a smoke run: 1 round, 2 s per row
//   BENCH_WORKLOADS=get-10k-uniform BENCH_SYSTEMS=router,nginx npm run bench
//
// Systems (rows), each a separate process on 127.0.0.1:
//   router       the router, one worker per CPU
//   router-1w    a second router on the same shards, 1 worker
//   router-auth  the first router with an API key on every request (tenant-scoped keys)
//   router-nometrics  a second router on the same shards, as many workers as the
//                first, with requestMetrics=false: what the request metrics cost.
//                Not in the default rows; ask for it: BENCH_SYSTEMS=router,router-nometrics
//   nginx        nginx, `hash $request_uri consistent`, onto the shards' HTTP ports
//   haproxy      haproxy, `balance uri` + `hash-type consistent` + `http-reuse always`
//   shard        one shard's own HTTP port, no hop in front
//   hello        a bare node:http server answering 100 bytes (bench/hello.ts), one process
//   direct       the smart client (KvClient direct mode) driven by bench/direct-load.ts
//   redis        redis-server driven by redis-benchmark (-c 64 -P 1), its own row
// A peer whose binary is missing is skipped with the reason printed and kept
// in the results; the suite installs nothing.
//
// Method: per workload, every system runs once per round, the order reversed
// every other round; each run is a warm-up and a measured run of autocannon in
// a process of its own (bench/loadgen.ts). Around the measured run utime+stime
// of every process is read from /proc/<pid>/stat. Tables give medians over the
// rounds; "×nginx" is the median over rounds of the ratio to the nginx row of
// the same round.
import os from 'node:os';
import path from 'node:path';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ringOf, type Topology } from '../src/core/topology.js';
import { Child } from '../src/local/child.js';
import {
  startTopology,
  startRouter,
  Cleanup,
  runBench,
  ADMIN_HEADER,
  BENCH_SECRETS,
  type BenchTopology,
  type RouterProcess,
  type TopologyOptions,
} from './topology.js';
import { findNginx, startNginx, type NginxProcess } from './nginx.js';
import { findHaproxy, startHaproxy, type HaproxyProcess } from './haproxy.js';
import { findRedisBenchmark, startRedisPeer, type RedisPeer } from './redis-bench.js';
import { request, getJson, forEachLimit, keepAliveAgent } from '../dev/http.js';
import { bulkLoad } from '../dev/bulk-load.js';
import { US_PER_TICK, childrenOf, machineTicks, sampleTier, tierUsage, type Tier, type TierSample } from './proc.js';
import { envInt, envBool, machineInfo } from './settings.js';
import { createTenant } from './credentials.js';
import { markdownTable, median, round1, round3, writeResults } from './report.js';
import { benchValue, keyName, type LoadSpec } from './loadgen.js';
import { barChart } from './svg.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

const quick = envBool('BENCH_QUICK');
const cpus = os.availableParallelism();
const settings = {
  quick,
  /** The main workloads (GET and PUT of 100 B over BENCH_KEYS keys): rounds and seconds. */
  durationS: envInt('BENCH_DURATION_S', quick ? 2 : 7, 1),
  warmupS: envInt('BENCH_WARMUP_S', quick ? 1 : 2, 0),
  rounds: envInt('BENCH_ROUNDS', quick ? 1 : 3, 1),
  /** Every other workload. */
  otherDurationS: envInt('BENCH_OTHER_DURATION_S', quick ? 2 : 4, 1),
  otherWarmupS: envInt('BENCH_OTHER_WARMUP_S', 1, 0),
  otherRounds: envInt('BENCH_OTHER_ROUNDS', 1, 1),
  connections: envInt('BENCH_CONNECTIONS', 64, 1),
  keys: envInt('BENCH_KEYS', quick ? 2000 : 10_000, 1),
  bigKeys: envInt('BENCH_BIG_KEYS', quick ? 20_000 : 1_000_000, 1),
  /** One router worker per CPU; ROUTER_WORKERS overrides. */
  routerWorkers: envInt('ROUTER_WORKERS', cpus, 1),
  /** nginx worker_processes and haproxy nbthread: the router's worker count, so each peer has the same CPUs to use. */
  peerWorkers: envInt('BENCH_PEER_WORKERS', envInt('ROUTER_WORKERS', cpus, 1), 1),
  shards: envInt('BENCH_SHARDS', 3, 1),
  noSync: envBool('BENCH_NOSYNC'),
  /** Run the proxies on the 1M-key workloads too (their keys are loaded one PUT at a time through each proxy). */
  proxyBig: envBool('BENCH_PROXY_BIG'),
  scaling: envBool('BENCH_SCALING'),
  sessionTtlS: 1800,
  mixWriteEvery: 10,
};
const verbose = envBool('BENCH_VERBOSE');

const WORKLOADS = {
  'get-10k-uniform': { op: 'get', dataset: 'small', dist: 'uniform', main: true, what: 'GET 100 B, uniform over BENCH_KEYS keys' },
  'put-100b': { op: 'put', dataset: 'small', dist: 'uniform', main: true, what: 'PUT 100 B, uniform over BENCH_KEYS keys' },
  'get-1m-uniform': { op: 'get', dataset: 'big', dist: 'uniform', main: false, what: 'GET 100 B, uniform over BENCH_BIG_KEYS keys' },
  'get-1m-zipf': { op: 'get', dataset: 'big', dist: 'zipf', main: false, what: 'GET 100 B, zipfian (s=0.99, scrambled) over BENCH_BIG_KEYS keys' },
  'mix-90-10': { op: 'mix', dataset: 'small', dist: 'uniform', main: false, what: '90% GET / 10% PUT, 100 B' },
  'get-1k': { op: 'get', dataset: 'v1k', dist: 'uniform', main: false, what: 'GET 1 KiB values' },
  'get-16k': { op: 'get', dataset: 'v16k', dist: 'uniform', main: false, what: 'GET 16 KiB values' },
  'batch-get-16': { op: 'batch', dataset: 'small', dist: 'uniform', main: false, what: 'POST /v1/kv/_batch of 16 GETs' },
  session: {
    op: 'mix',
    dataset: 'session',
    dist: 'uniform',
    main: false,
    what: 'session store: 200 B sessions with a 30 min TTL, 90% read, 10% write renewing the TTL',
  },
} as const;
type WorkloadName = keyof typeof WORKLOADS;
type Workload = (typeof WORKLOADS)[WorkloadName];

const DATASETS = {
  small: { prefix: 'k-', count: settings.keys, bytes: 100, ttlS: undefined },
  big: { prefix: 'm-', count: settings.bigKeys, bytes: 100, ttlS: undefined },
  v1k: { prefix: 'a-', count: settings.keys, bytes: 1024, ttlS: undefined },
  v16k: { prefix: 'b-', count: Math.min(settings.keys, 2000), bytes: 16 * 1024, ttlS: undefined },
  session: { prefix: 'sess-', count: settings.keys, bytes: 200, ttlS: settings.sessionTtlS },
} as const;
type DatasetName = keyof typeof DATASETS;

const SYSTEMS = ['router', 'router-1w', 'router-auth', 'router-nometrics', 'nginx', 'haproxy', 'shard', 'hello', 'direct', 'redis'] as const;
type SystemName = (typeof SYSTEMS)[number];
/** The rows of a run without BENCH_SYSTEMS: router-nometrics only when asked for (it is a cost measurement, not a comparison). */
const DEFAULT_SYSTEMS = SYSTEMS.filter((s) => s !== 'router-nometrics');

function listEnv<T extends string>(name: string, known: readonly T[], defaults: readonly T[] = known): T[] {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return [...defaults];
  const out = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const x of out) if (!(known as readonly string[]).includes(x)) throw new Error(`${name}: unknown ${JSON.stringify(x)} (known: ${known.join(', ')})`);
  return out as T[];
}
const workloads = listEnv('BENCH_WORKLOADS', Object.keys(WORKLOADS) as WorkloadName[]);
const systems = listEnv('BENCH_SYSTEMS', SYSTEMS, DEFAULT_SYSTEMS);

/** Why a system has no row for a workload (undefined: it has one). */
function notApplicable(s: SystemName, w: WorkloadName): string | undefined {
  const wl = WORKLOADS[w];
  if ((s === 'router-1w' || s === 'router-nometrics' || s === 'hello' || s === 'direct') && !wl.main) return 'main workloads only';
  if (s === 'router-auth' && !wl.main && w !== 'session') return 'main and session workloads only';
  if (s === 'redis' && !wl.main) return 'redis-benchmark GET/SET of 100 B only';
  if ((s === 'nginx' || s === 'haproxy' || s === 'shard') && wl.op === 'batch') return 'a shard has no HTTP batch request to proxy';
  if ((s === 'nginx' || s === 'haproxy') && wl.dataset === 'big' && !settings.proxyBig)
    return 'BENCH_PROXY_BIG=1 loads 1M keys one PUT at a time through each proxy';
  return undefined;
}

interface RowRun {
  readonly round: number;
  readonly workload: WorkloadName;
  readonly system: SystemName;
  readonly requests: number;
  readonly durationS: number;
  readonly reqPerSec: number;
  readonly latencyMs: { p50: number; p99: number; p999: number | null; max: number };
  readonly errors: number;
  readonly non2xx: number;
  readonly statusCodes: Record<string, number>;
  /** µs of CPU per completed request, per tier (router, rt-pri, peer, shards, redis, loadgen). */
  readonly cpuUsPerReq: Record<string, number>;
  /** Every tier but the load generator and the router's Redis: what serving the request cost. */
  readonly serverUsPerReq: number;
  readonly machineBusyPct: number;
  readonly otherBusyPct: number;
  /** The load generator's CPU as a share of one core: near 100 it, not the server, set the pace. */
  readonly loadgenCorePct: number;
}

interface RowSummary {
  readonly workload: WorkloadName;
  readonly system: SystemName;
  readonly rounds: number;
  readonly reqPerSec: number;
  readonly latencyMs: { p50: number; p99: number; p999: number | null };
  readonly errors: number;
  readonly non2xx: number;
  readonly cpuUsPerReq: Record<string, number>;
  readonly serverUsPerReq: number;
  readonly machineBusyPct: number;
  readonly otherBusyPct: number;
  readonly loadgenCorePct: number;
  /** Median over rounds of req/s over the nginx row of the same round; null without an nginx row. */
  readonly xNginx: number | null;
}

const TIER_ORDER = ['router', 'rt-pri', 'peer', 'shards', 'redis', 'loadgen'];

class Suite {
  readonly cleanup: Cleanup;
  topo!: BenchTopology;
  ring!: ReturnType<typeof ringOf>;
  router1w: RouterProcess | undefined;
  routerNoMetrics: RouterProcess | undefined;
  nginx: NginxProcess | undefined;
  haproxy: HaproxyProcess | undefined;
  hello: { pid: number; url: string } | undefined;
  redis: RedisPeer | undefined;
  directScript: string | undefined;
  apiKey = '';
  readonly skipped: Array<{ system: SystemName; reason: string }> = [];
  readonly preloadS: Record<string, number> = {};
  readonly live = new Set<Child>();
  aborted = false;

  constructor(cleanup: Cleanup) {
    this.cleanup = cleanup;
  }

  skip(system: SystemName, reason: string): void {
    log(`${system} skipped: ${reason}`);
    this.skipped.push({ system, reason });
  }

  available(s: SystemName): boolean {
    return systems.includes(s) && !this.skipped.some((x) => x.system === s);
  }

  shardsTier(): Tier {
    return { name: 'shards', pids: () => this.topo.shards.map((s) => s.pid) };
  }

  tiersOf(s: SystemName, router: RouterProcess = this.topo.router): Tier[] {
    const redisTier: Tier = { name: 'redis', pids: () => [this.topo.redis.process.pid!] };
    switch (s) {
      case 'router':
      case 'router-auth':
      case 'router-1w':
      case 'router-nometrics': {
        const r = s === 'router-1w' ? this.router1w! : s === 'router-nometrics' ? this.routerNoMetrics! : router;
        return [{ name: 'router', pids: () => childrenOf(r.pid) }, { name: 'rt-pri', pids: () => [r.pid] }, this.shardsTier(), redisTier];
      }
      case 'nginx':
        return [{ name: 'peer', pids: () => [this.nginx!.masterPid, ...childrenOf(this.nginx!.masterPid)] }, this.shardsTier()];
      case 'haproxy':
        return [{ name: 'peer', pids: () => [this.haproxy!.pid] }, this.shardsTier()];
      case 'shard':
        return [this.shardsTier()];
      case 'hello':
        return [{ name: 'peer', pids: () => [this.hello!.pid] }];
      case 'direct':
        return [this.shardsTier(), redisTier];
      case 'redis':
        return [{ name: 'peer', pids: () => [this.redis!.pid] }];
    }
  }

  // --- start-up -------------------------------------------------------------

  async start(): Promise<void> {
    const topoOpts: TopologyOptions = {
      shards: settings.shards,
      routerWorkers: settings.routerWorkers,
      noSync: settings.noSync,
      // The proxies write keys by their own hash, which is not our ring.
      standaloneHttp: true,
      verbose,
      nodeArgs: [],
      dataAuth: false,
      tenantRateLimitPerSec: 1_000_000_000,
    };
    this.topo = await startTopology(topoOpts, this.cleanup);
    log(
      `up: redis ${this.topo.redis.url}, shards ${this.topo.shards.map((s) => `${s.id} pid ${s.pid}`).join(', ')}, router ${this.topo.router.url} (${settings.routerWorkers} workers)`,
    );
    this.ring = ringOf(await getJson<Topology>(`${this.topo.router.url}/v1/topology`));
    const upstreams = this.topo.shards.map((s) => s.adminAddr);
    if (systems.includes('router-1w')) {
      this.router1w = await startRouter(this.topo.redis.url, { ...topoOpts, routerWorkers: 1 }, this.cleanup, {
        dataAuth: false,
        tenantRateLimitPerSec: 1_000_000_000,
        rebalanceCoordinator: false,
      });
      log(`router-1w: ${this.router1w.url} (1 worker)`);
    }
    if (systems.includes('router-nometrics')) {
      this.routerNoMetrics = await startRouter(this.topo.redis.url, topoOpts, this.cleanup, {
        dataAuth: false,
        tenantRateLimitPerSec: 1_000_000_000,
        // Like the router row in all but the metrics: its primary runs a
        // coordinator too (on standby, the lease is the other's).
        requestMetrics: false,
      });
      log(`router-nometrics: ${this.routerNoMetrics.url} (${settings.routerWorkers} workers, requestMetrics=false)`);
    }
    if (systems.includes('router-auth')) this.apiKey = (await createTenant(this.topo.router.url, 'bench')).apiKey;
    if (systems.includes('nginx')) {
      const bin = findNginx();
      if (!bin) this.skip('nginx', 'no nginx binary on PATH or in /usr/sbin (Debian: apt-get install nginx)');
      else {
        this.nginx = await startNginx(bin, path.join(this.topo.dir, 'nginx'), settings.peerWorkers, upstreams, this.cleanup);
        log(`${this.nginx.version} on ${this.nginx.url}, ${settings.peerWorkers} workers`);
      }
    }
    if (systems.includes('haproxy')) {
      const bin = findHaproxy();
      if (!bin) this.skip('haproxy', 'no haproxy binary on PATH or in /usr/sbin (Debian: apt-get install haproxy)');
      else {
        this.haproxy = await startHaproxy(bin, path.join(this.topo.dir, 'haproxy'), settings.peerWorkers, upstreams, this.cleanup);
        log(`${this.haproxy.version} on ${this.haproxy.url}, ${settings.peerWorkers} threads`);
      }
    }
    if (systems.includes('hello')) {
      const child = new Child(path.join(HERE, 'hello.ts'), [], { nodeArgs: ['--import', 'tsx'], detached: true });
      this.cleanup.track(child);
      this.cleanup.add('hello', () => child.stop(5000));
      const m = await child.ready(20_000);
      this.hello = { pid: child.pid, url: `http://127.0.0.1:${String(m['port'])}` };
    }
    if (systems.includes('redis')) {
      const bin = findRedisBenchmark();
      if (!bin) this.skip('redis', 'no redis-benchmark on PATH (Debian: apt-get install redis-tools)');
      else this.redis = await startRedisPeer(bin, { connections: settings.connections, valueBytes: 100, keys: settings.keys }, this.cleanup);
    }
    if (systems.includes('direct')) {
      const script = path.join(HERE, 'direct-load.ts');
      const options = readFileSync(path.join(HERE, '../src/client/options.ts'), 'utf8');
      if (!existsSync(script)) this.skip('direct', 'bench/direct-load.ts (the smart-client load driver) is not in this tree');
      else if (!/\bdirect\b/.test(options)) this.skip('direct', 'KvClient has no direct mode in this build (src/client/options.ts)');
      else this.directScript = script;
    }
  }

  // --- data -----------------------------------------------------------------

  /** Which systems load their own copy of a dataset: the router's copy also serves shard and direct rows. */
  async preload(): Promise<void> {
    const needed = new Map<DatasetName, Set<SystemName>>();
    for (const w of workloads)
      for (const s of systems)
        if (this.available(s) && !notApplicable(s, w))
          (needed.get(WORKLOADS[w].dataset) ?? needed.set(WORKLOADS[w].dataset, new Set()).get(WORKLOADS[w].dataset)!).add(s);
    for (const [d, who] of needed) {
      const ds = DATASETS[d];
      const keys = Array.from({ length: ds.count }, (_, i) => keyName(ds.prefix, i));
      const value = benchValue(ds.bytes);
      const timed = async (what: string, fn: () => Promise<void>) => {
        const t0 = Date.now();
        await fn();
        this.preloadS[`${d}/${what}`] = round1((Date.now() - t0) / 1000);
        log(`preloaded ${ds.count} keys of ${ds.bytes} B (${d}) ${what} in ${this.preloadS[`${d}/${what}`]} s`);
      };
      const batch = Math.max(10, Math.min(1000, Math.floor((4 * 2 ** 20) / ds.bytes)));
      const routerLoad = (headers?: Record<string, string>) =>
        bulkLoad(this.topo.router.url, {
          keys,
          value: () => value.toString('latin1'),
          batch,
          concurrency: 4,
          ...(ds.ttlS ? { ttl: ds.ttlS } : {}),
          ...(headers ? { headers } : {}),
        });
      if ([...who].some((s) => s === 'router' || s === 'router-1w' || s === 'router-nometrics' || s === 'shard' || s === 'direct'))
        await timed('through the router', () => routerLoad());
      if (who.has('router-auth')) await timed('through the router with an API key', () => routerLoad({ authorization: `Bearer ${this.apiKey}` }));
      if (who.has('nginx')) await timed('through nginx', () => this.loadThroughProxy(this.nginx!.url, `nx-${ds.prefix}`, ds.count, value, ds.ttlS));
      if (who.has('haproxy')) await timed('through haproxy', () => this.loadThroughProxy(this.haproxy!.url, `hx-${ds.prefix}`, ds.count, value, ds.ttlS));
    }
  }

  async loadThroughProxy(url: string, prefix: string, count: number, value: Buffer, ttlS: number | undefined): Promise<void> {
    const agent = keepAliveAgent(128);
    const headers = { ...ADMIN_HEADER, 'content-type': 'application/octet-stream', ...(ttlS ? { 'x-kv-ttl': String(ttlS) } : {}) };
    try {
      await forEachLimit(
        Array.from({ length: count }, (_, i) => i),
        128,
        async (i) => {
          const key = keyName(prefix, i);
          const res = await request('PUT', `${url}/kv/${encodeURIComponent(key)}`, { body: value, headers, agent });
          if (res.status !== 204) throw new Error(`preload of ${key} through ${url}: ${res.status} ${res.text.slice(0, 200)}`);
        },
      );
    } finally {
      await agent.close();
    }
  }

  // --- one row --------------------------------------------------------------

  specOf(s: SystemName, w: WorkloadName): LoadSpec {
    const wl: Workload = WORKLOADS[w];
    const ds = DATASETS[wl.dataset];
    const base = {
      connections: settings.connections,
      keys: ds.count,
      distribution: wl.dist,
      op: wl.op,
      valueBytes: ds.bytes,
      writeEvery: settings.mixWriteEvery,
      batchKeys: 16,
      batchPath: '/v1/kv/_batch',
      ...(ds.ttlS ? { ttlS: ds.ttlS } : {}),
    };
    switch (s) {
      case 'router':
        return { ...base, url: this.topo.router.url, headers: {}, pathPrefix: '/v1/kv/', keyPrefix: ds.prefix };
      case 'router-1w':
        return { ...base, url: this.router1w!.url, headers: {}, pathPrefix: '/v1/kv/', keyPrefix: ds.prefix };
      case 'router-nometrics':
        return { ...base, url: this.routerNoMetrics!.url, headers: {}, pathPrefix: '/v1/kv/', keyPrefix: ds.prefix };
      case 'router-auth':
        return { ...base, url: this.topo.router.url, headers: { authorization: `Bearer ${this.apiKey}` }, pathPrefix: '/v1/kv/', keyPrefix: ds.prefix };
      case 'nginx':
        return { ...base, url: this.nginx!.url, headers: ADMIN_HEADER, pathPrefix: '/kv/', keyPrefix: `nx-${ds.prefix}` };
      case 'haproxy':
        return { ...base, url: this.haproxy!.url, headers: ADMIN_HEADER, pathPrefix: '/kv/', keyPrefix: `hx-${ds.prefix}` };
      case 'shard': {
        const shard = this.topo.shards[0]!;
        const keyIndices: number[] = [];
        for (let i = 0; i < ds.count; i++) if (this.ring.ownerOf(keyName(ds.prefix, i)) === shard.id) keyIndices.push(i);
        return { ...base, url: `http://${shard.adminAddr}`, headers: ADMIN_HEADER, pathPrefix: '/kv/', keyPrefix: ds.prefix, keyIndices };
      }
      case 'hello':
        return { ...base, url: this.hello!.url, headers: {}, pathPrefix: '/kv/', keyPrefix: ds.prefix };
      default:
        throw new Error(`${s} is not driven by autocannon`);
    }
  }

  async runRow(s: SystemName, w: WorkloadName, round: number, durationS: number, router?: RouterProcess): Promise<RowRun> {
    const warmupS = WORKLOADS[w].main ? settings.warmupS : settings.otherWarmupS;
    if (s === 'redis') return this.runRedis(w, round, durationS);
    if (s === 'direct') return this.runDirect(w, round, durationS);
    const spec = router ? { ...this.specOf('router', w), url: router.url } : this.specOf(s, w);
    const gen = new Child(path.join(HERE, 'loadgen.ts'), [], { nodeArgs: ['--import', 'tsx'], detached: true });
    this.cleanup.track(gen);
    this.live.add(gen);
    try {
      gen.child.send({ type: 'spec', spec });
      await gen.ready(120_000);
      const fire = async (seconds: number) => {
        const before = gen.messages.length;
        gen.child.send({ type: 'run', durationS: seconds });
        const m = await gen.waitFor(
          (x) => (x['type'] === 'done' || x['type'] === 'failed') && gen.messages.indexOf(x) >= before,
          (seconds + 60) * 1000,
          'the run result',
        );
        if (m['type'] === 'failed') throw new Error(`load generator: ${String(m['message'])}`);
        return m['result'] as {
          requests: number;
          durationS: number;
          errors: number;
          timeouts: number;
          non2xx: number;
          statusCodes: Record<string, number>;
          latencyMs: { p50: number; p99: number; p999: number; max: number };
        };
      };
      if (warmupS > 0) await fire(warmupS);
      if (this.aborted) throw new Error('aborted');
      const tiers = [...this.tiersOf(s, router), { name: 'loadgen', pids: () => [gen.pid] }];
      const m = await this.measure(tiers, () => fire(durationS));
      const r = m.result;
      return this.row(round, w, s, r.requests, r.durationS, r.latencyMs, r.errors + r.timeouts, r.non2xx, r.statusCodes, m.cpuUs, m.busy);
    } finally {
      this.live.delete(gen);
      await gen.stop(5000);
    }
  }

  async measure<T>(tiers: Tier[], run: () => Promise<T>): Promise<{ result: T; cpuUs: Record<string, number>; busy: { machine: number; other: number } }> {
    const before = new Map<string, TierSample>(tiers.map((t) => [t.name, sampleTier(t)]));
    const m0 = machineTicks();
    const result = await run();
    const m1 = machineTicks();
    const cpuUs: Record<string, number> = {};
    for (const t of tiers) cpuUs[t.name] = tierUsage(t, before.get(t.name)!).cpuUs;
    const total = Math.max(1, m1.total - m0.total);
    const ours = Object.values(cpuUs).reduce((a, b) => a + b, 0);
    return {
      result,
      cpuUs,
      busy: {
        machine: round1(((m1.busy - m0.busy) / total) * 100),
        other: Math.max(0, round1((((m1.busy - m0.busy) * US_PER_TICK - ours) / (total * US_PER_TICK)) * 100)),
      },
    };
  }

  row(
    round: number,
    workload: WorkloadName,
    system: SystemName,
    requests: number,
    durationS: number,
    latencyMs: { p50: number; p99: number; p999: number | null; max: number },
    errors: number,
    non2xx: number,
    statusCodes: Record<string, number>,
    cpuUs: Record<string, number>,
    busy: { machine: number; other: number },
  ): RowRun {
    const perReq = (us: number) => (requests > 0 ? round1(us / requests) : 0);
    const cpuUsPerReq: Record<string, number> = {};
    for (const [k, v] of Object.entries(cpuUs)) cpuUsPerReq[k] = perReq(v);
    const server = Object.entries(cpuUs).reduce((a, [k, v]) => a + (k === 'loadgen' || k === 'redis' ? 0 : v), 0);
    return {
      round,
      workload,
      system,
      requests,
      durationS: round3(durationS),
      reqPerSec: Math.round(requests / Math.max(0.001, durationS)),
      latencyMs,
      errors,
      non2xx,
      statusCodes,
      cpuUsPerReq,
      serverUsPerReq: perReq(server),
      machineBusyPct: busy.machine,
      otherBusyPct: busy.other,
      loadgenCorePct: round1(((cpuUs['loadgen'] ?? 0) / 1e6 / Math.max(0.001, durationS)) * 100),
    };
  }

  async runRedis(w: WorkloadName, round: number, durationS: number): Promise<RowRun> {
    const test = WORKLOADS[w].op === 'put' ? 'set' : 'get';
    // Fill the key space first (a GET of a key never set answers nil, which is cheaper).
    await this.redis!.run('set', settings.keys * 3);
    const n = durationS * Number(process.env['BENCH_REDIS_RATE'] ?? 100_000);
    const m = await this.measure([{ name: 'peer', pids: () => [this.redis!.pid] }], () => this.redis!.run(test, n));
    const r = m.result;
    return this.row(round, w, 'redis', r.requests, r.durationS, r.latencyMs, 0, 0, {}, { peer: r.serverCpuUs, loadgen: r.loadgenCpuUs }, m.busy);
  }

  async runDirect(w: WorkloadName, round: number, durationS: number): Promise<RowRun> {
    const wl = WORKLOADS[w];
    const ds = DATASETS[wl.dataset];
    // The driver's contract: this spec in BENCH_DIRECT_SPEC, one JSON line {requests, errors, p50, p99, p999, cpuUs} on stdout.
    const spec = {
      redisUrl: this.topo.redis.url,
      routerUrl: this.topo.router.url,
      adminToken: BENCH_SECRETS.adminToken,
      clusterSecret: BENCH_SECRETS.clusterSecret,
      op: wl.op,
      keyPrefix: ds.prefix,
      keys: ds.count,
      valueBytes: ds.bytes,
      connections: settings.connections,
      durationS,
      warmupS: settings.warmupS,
    };
    const gen = new Child(this.directScript!, [], {
      nodeArgs: ['--import', 'tsx'],
      detached: true,
      env: { ...process.env, BENCH_DIRECT_SPEC: JSON.stringify(spec) },
    });
    this.cleanup.track(gen);
    let last = '';
    const m = await this.measure(this.tiersOf('direct'), async () => {
      const exit = await gen.exited();
      last = gen.tail.trim().split('\n').at(-1) ?? '';
      if (exit.code !== 0) throw new Error(`bench/direct-load.ts exited with ${String(exit.code)}: ${gen.tail.slice(-500)}`);
    });
    const r = JSON.parse(last) as { requests: number; errors: number; p50: number; p99: number; p999: number; cpuUs: number };
    return this.row(
      round,
      w,
      'direct',
      r.requests,
      durationS,
      { p50: r.p50, p99: r.p99, p999: r.p999, max: r.p999 },
      r.errors,
      0,
      {},
      { ...m.cpuUs, loadgen: r.cpuUs },
      m.busy,
    );
  }
}

// --- summaries and output --------------------------------------------------------

function summarize(runs: readonly RowRun[]): RowSummary[] {
  const out: RowSummary[] = [];
  const keys = [...new Set(runs.map((r) => `${r.workload}\u0000${r.system}`))];
  for (const k of keys) {
    const [workload, system] = k.split('\u0000') as [WorkloadName, SystemName];
    const rs = runs.filter((r) => r.workload === workload && r.system === system);
    const med = (f: (r: RowRun) => number) => median(rs.map(f));
    const tiers: Record<string, number> = {};
    for (const t of TIER_ORDER) if (rs.every((r) => r.cpuUsPerReq[t] !== undefined)) tiers[t] = round1(med((r) => r.cpuUsPerReq[t]!));
    const ratios = rs
      .map((r) => {
        const nx = runs.find((x) => x.workload === workload && x.system === 'nginx' && x.round === r.round);
        return nx && nx.reqPerSec > 0 ? r.reqPerSec / nx.reqPerSec : undefined;
      })
      .filter((x): x is number => x !== undefined);
    const p999s = rs.map((r) => r.latencyMs.p999);
    out.push({
      workload,
      system,
      rounds: rs.length,
      reqPerSec: Math.round(med((r) => r.reqPerSec)),
      latencyMs: {
        p50: med((r) => r.latencyMs.p50),
        p99: med((r) => r.latencyMs.p99),
        p999: p999s.every((x) => x !== null) ? median(p999s as number[]) : null,
      },
      errors: rs.reduce((a, r) => a + r.errors, 0),
      non2xx: rs.reduce((a, r) => a + r.non2xx, 0),
      cpuUsPerReq: tiers,
      serverUsPerReq: round1(med((r) => r.serverUsPerReq)),
      machineBusyPct: round1(med((r) => r.machineBusyPct)),
      otherBusyPct: round1(med((r) => r.otherBusyPct)),
      loadgenCorePct: round1(med((r) => r.loadgenCorePct)),
      xNginx: ratios.length > 0 ? round3(median(ratios)) : null,
    });
  }
  return out;
}

interface TargetCheck {
  readonly target: string;
  readonly measured: string;
  readonly status: 'met' | 'not met' | 'n/a';
  readonly note?: string;
}

function targets(results: readonly RowSummary[]): TargetCheck[] {
  const find = (w: WorkloadName, s: SystemName) => results.find((r) => r.workload === w && r.system === s);
  const out: TargetCheck[] = [];
  const ratio = (label: string, w: WorkloadName, s: SystemName, floor: number) => {
    const r = find(w, s);
    const nginx = find(w, 'nginx');
    if (!r || !nginx || r.xNginx === null) return out.push({ target: label, measured: '–', status: 'n/a', note: `needs the ${s} and nginx rows of ${w}` });
    out.push({
      target: label,
      measured: `${r.xNginx.toFixed(2)}× (${fmt(r.reqPerSec)} vs ${fmt(nginx.reqPerSec)} req/s)`,
      status: r.xNginx >= floor ? 'met' : 'not met',
    });
  };
  ratio('router GET req/s ≥ 1.3× nginx', 'get-10k-uniform', 'router', 1.3);
  ratio('router PUT req/s ≥ 1.2× nginx', 'put-100b', 'router', 1.2);
  const rg = find('get-10k-uniform', 'router');
  const hello = find('get-10k-uniform', 'hello');
  const nx = find('get-10k-uniform', 'nginx');
  if (rg?.cpuUsPerReq['router'] !== undefined && hello?.cpuUsPerReq['peer'] !== undefined) {
    const x = rg.cpuUsPerReq['router'] / hello.cpuUsPerReq['peer'];
    out.push({
      target: 'router workers CPU per GET ≤ 2× the node:http hello',
      measured: `${rg.cpuUsPerReq['router']} vs ${hello.cpuUsPerReq['peer']} µs (${x.toFixed(2)}×)`,
      status: x <= 2 ? 'met' : 'not met',
    });
  } else
    out.push({
      target: 'router workers CPU per GET ≤ 2× the node:http hello',
      measured: '–',
      status: 'n/a',
      note: 'needs the router and hello rows of get-10k-uniform',
    });
  if (rg && nx) {
    const x = rg.serverUsPerReq / Math.max(0.1, nx.serverUsPerReq);
    out.push({
      target: 'total server CPU per GET (router + shards) ≤ 0.65× nginx + shards',
      measured: `${rg.serverUsPerReq} vs ${nx.serverUsPerReq} µs (${x.toFixed(2)}×)`,
      status: x <= 0.65 ? 'met' : 'not met',
    });
    out.push({
      target: `router GET p99 ≤ nginx p99 at ${settings.connections} connections`,
      measured: `${rg.latencyMs.p99} vs ${nx.latencyMs.p99} ms`,
      status: rg.latencyMs.p99 <= nx.latencyMs.p99 ? 'met' : 'not met',
    });
  } else {
    for (const t of ['total server CPU per GET (router + shards) ≤ 0.65× nginx + shards', `router GET p99 ≤ nginx p99 at ${settings.connections} connections`])
      out.push({ target: t, measured: '–', status: 'n/a', note: 'needs the router and nginx rows of get-10k-uniform' });
  }
  const bad = results.filter((r) => r.errors + r.non2xx > 0);
  out.push({
    target: 'zero errors (every row)',
    measured: bad.length === 0 ? '0' : bad.map((r) => `${r.system}/${r.workload}: ${r.errors} errors, ${r.non2xx} non-2xx`).join('; '),
    status: bad.length === 0 ? 'met' : 'not met',
  });
  ratio('with an API key: router GET ≥ 1.3× nginx', 'get-10k-uniform', 'router-auth', 1.3);
  ratio('with an API key: router PUT ≥ 1.2× nginx', 'put-100b', 'router-auth', 1.2);
  // The request metrics' cost, when router-nometrics ran: router workers' CPU per GET with them minus without.
  const nm = find('get-10k-uniform', 'router-nometrics');
  if (rg?.cpuUsPerReq['router'] !== undefined && nm?.cpuUsPerReq['router'] !== undefined) {
    const d = round3(rg.cpuUsPerReq['router'] - nm.cpuUsPerReq['router']);
    out.push({
      target: 'request metrics cost ≤ 0.5 µs of router CPU per GET',
      measured: `${d} µs (${rg.cpuUsPerReq['router']} with, ${nm.cpuUsPerReq['router']} without)`,
      status: d <= 0.5 ? 'met' : 'not met',
      note: 'a difference of two noisy medians; compare over several rounds',
    });
  }
  return out;
}

const fmt = (x: number | null | undefined) => (x === null || x === undefined ? '–' : x.toLocaleString('en-US'));

function resultsTable(rows: readonly RowSummary[]): string {
  const tiers = TIER_ORDER.filter((t) => rows.some((r) => r.cpuUsPerReq[t] !== undefined));
  return markdownTable(
    ['system', 'req/s', '×nginx', 'p50 ms', 'p99 ms', 'p99.9 ms', 'err/non2xx', ...tiers.map((t) => `${t} µs`), 'server µs', 'loadgen%', 'busy%', 'other%'],
    rows.map((r) => [
      r.system,
      fmt(r.reqPerSec),
      r.xNginx === null ? '–' : r.xNginx.toFixed(2),
      fmt(r.latencyMs.p50),
      fmt(r.latencyMs.p99),
      fmt(r.latencyMs.p999),
      `${r.errors}/${r.non2xx}`,
      ...tiers.map((t) => fmt(r.cpuUsPerReq[t])),
      fmt(r.serverUsPerReq),
      fmt(r.loadgenCorePct),
      fmt(r.machineBusyPct),
      fmt(r.otherBusyPct),
    ]),
  );
}

interface ScalingRow {
  what: string;
  shards: number;
  workers: number;
  rounds: number;
  reqPerSec: number;
  p99: number;
  routerUs: number | undefined;
  shardsUs: number | undefined;
  /** req/s of every round, in round order. */
  perRound: number[];
}

/**
 * The scaling table: get-10k-uniform through the router, 1 to N workers on
 * the suite's shards, then 1 to 4 shards (each its own topology and preload).
 * Every configuration is started first and stays up, and the rounds take
 * turns over all of them (the order reversed every other round), as the main
 * rows do, after one pass over all of them that is not counted (warm-up): one configuration measured alone after the others would take
 * whatever the machine was doing at that moment for its own scaling.
 */
async function scaling(suite: Suite, cleanup: Cleanup): Promise<ScalingRow[]> {
  const w: WorkloadName = 'get-10k-uniform';
  const configs: Array<{ what: string; shards: number; workers: number; suite: Suite; router?: RouterProcess; runs: RowRun[] }> = [];
  for (let n = 1; n <= Math.max(2, settings.routerWorkers); n++) {
    const r = await startRouter(suite.topo.redis.url, { shards: settings.shards, routerWorkers: n, noSync: settings.noSync, verbose, nodeArgs: [] }, cleanup, {
      dataAuth: false,
      rebalanceCoordinator: false,
      tenantRateLimitPerSec: 1_000_000_000,
    });
    configs.push({ what: 'router workers', shards: settings.shards, workers: n, suite, router: r, runs: [] });
  }
  for (let k = 1; k <= 4; k++) {
    const sub = new Suite(cleanup);
    sub.topo = await startTopology(
      {
        shards: k,
        routerWorkers: settings.routerWorkers,
        noSync: settings.noSync,
        verbose,
        nodeArgs: [],
        dataAuth: false,
        tenantRateLimitPerSec: 1_000_000_000,
      },
      cleanup,
    );
    const ds = DATASETS.small;
    await bulkLoad(sub.topo.router.url, {
      keys: Array.from({ length: ds.count }, (_, i) => keyName(ds.prefix, i)),
      value: () => benchValue(ds.bytes).toString('latin1'),
      batch: 1000,
      concurrency: 4,
    });
    configs.push({ what: 'shards', shards: k, workers: settings.routerWorkers, suite: sub, runs: [] });
  }
  // Fresh processes: one pass over every configuration first, not counted,
  // so that no configuration's first round is also its JIT's warm-up.
  for (const c of configs) {
    if (suite.aborted) throw new Error('aborted');
    await c.suite.runRow('router', w, 0, settings.otherDurationS, c.router);
  }
  for (let round = 1; round <= settings.rounds; round++) {
    for (const c of round % 2 === 1 ? configs : [...configs].reverse()) {
      if (suite.aborted) throw new Error('aborted');
      const row = await c.suite.runRow('router', w, round, settings.otherDurationS, c.router);
      c.runs.push(row);
      log(`scaling, round ${round}/${settings.rounds}: ${c.shards} shards, ${c.workers} workers: ${row.reqPerSec} req/s`);
    }
  }
  const med = (rs: RowRun[], f: (r: RowRun) => number | undefined): number | undefined => {
    const xs = rs.map(f).filter((x): x is number => x !== undefined);
    return xs.length > 0 ? round1(median(xs)) : undefined;
  };
  return configs.map((c) => ({
    what: c.what,
    shards: c.shards,
    workers: c.workers,
    rounds: c.runs.length,
    reqPerSec: Math.round(median(c.runs.map((r) => r.reqPerSec))),
    p99: median(c.runs.map((r) => r.latencyMs.p99)),
    routerUs: med(c.runs, (r) => r.cpuUsPerReq['router']),
    shardsUs: med(c.runs, (r) => r.cpuUsPerReq['shards']),
    perRound: c.runs.map((r) => r.reqPerSec),
  }));
}

async function main(cleanup: Cleanup): Promise<void> {
  const startedAt = new Date();
  const machine = machineInfo();
  const suite = new Suite(cleanup);
  current = suite;
  log(
    `${String(machine['cpuCount'])} x ${String(machine['cpuModel'])}, node ${process.version}; workloads ${workloads.join(',')}; systems ${systems.join(',')}${quick ? ' (quick)' : ''}`,
  );
  await suite.start();
  await suite.preload();
  const runs: RowRun[] = [];
  const notApplicableRows: Array<{ workload: WorkloadName; system: SystemName; reason: string }> = [];
  for (const w of workloads) {
    const wl = WORKLOADS[w];
    const rows = systems.filter((s) => {
      const why = notApplicable(s, w);
      if (why) notApplicableRows.push({ workload: w, system: s, reason: why });
      return !why && suite.available(s);
    });
    const rounds = wl.main ? settings.rounds : settings.otherRounds;
    const durationS = wl.main ? settings.durationS : settings.otherDurationS;
    for (let round = 1; round <= rounds; round++) {
      for (const s of round % 2 === 1 ? rows : [...rows].reverse()) {
        if (suite.aborted) throw new Error('aborted');
        log(`${w}, round ${round}/${rounds}: ${s}`);
        const r = await suite.runRow(s, w, round, durationS);
        runs.push(r);
        log(
          `  ${r.reqPerSec} req/s, p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, errors ${r.errors}, non-2xx ${r.non2xx}, server ${r.serverUsPerReq} µs/req`,
        );
      }
    }
  }
  const scalingRows = settings.scaling ? await scaling(suite, cleanup) : [];
  const results = summarize(runs);
  const checks = targets(results);

  // The run's temporary directory means nothing after the run.
  const portable = (config: string) => config.split(suite.topo.dir).join('<run dir>');
  const peers = {
    nginx: suite.nginx ? { version: suite.nginx.version, workers: settings.peerWorkers, config: portable(suite.nginx.config) } : undefined,
    haproxy: suite.haproxy ? { version: suite.haproxy.version, nbthread: settings.peerWorkers, config: portable(suite.haproxy.config) } : undefined,
    redis: suite.redis
      ? {
          version: suite.redis.version,
          command: `redis-benchmark -c ${settings.connections} -P 1 -d 100 -r ${settings.keys} -n <BENCH_DURATION_S × BENCH_REDIS_RATE> -t get|set --csv`,
        }
      : undefined,
    hello: suite.hello ? { what: 'bench/hello.ts: node:http, one process, 100-byte body, keepAliveTimeout 120 s' } : undefined,
    router: { workers: settings.routerWorkers, dataAuth: false, tenantRateLimitPerSec: 1_000_000_000, shards: settings.shards, fsync: !settings.noSync },
  };
  const method =
    'Every tier is a separate process on 127.0.0.1 of one machine. Per workload every system runs once per round, the order reversed every other round; each run is a warm-up and a measured run of autocannon (keep-alive, no pipelining) in its own process. CPU per request: the change in utime+stime from /proc/<pid>/stat over the measured run over completed requests, per tier. results[] holds medians over rounds (errors summed), ×nginx the median of per-round ratios to the nginx row.';
  const md: string[] = [
    `# Benchmark suite, ${startedAt.toISOString()}`,
    '',
    `- machine: ${String(machine['cpuCount'])} × ${String(machine['cpuModel'])}, ${String(machine['totalMemMiB'])} MiB, ${String(machine['platform'])}, node ${process.version}, load average at start ${JSON.stringify(machine['loadAvgAtStart'])}`,
    `- commit: ${String(machine['commit'])}${machine['uncommittedChanges'] ? ' (with uncommitted changes outside bench/)' : ''}`,
    `- method: ${method}`,
    `- load: ${settings.connections} connections; main workloads ${settings.rounds} rounds × ${settings.durationS} s (+${settings.warmupS} s warm-up), others ${settings.otherRounds} × ${settings.otherDurationS} s; ${settings.keys} keys (1M workloads: ${settings.bigKeys})${quick ? '; BENCH_QUICK (a smoke run: not figures)' : ''}`,
    `- topology: ${settings.shards} shards (${settings.noSync ? 'noSync' : 'fsync every commit'}), router ${settings.routerWorkers} workers (router-1w: 1), dataAuth=false (router-auth sends an API key), Redis for shared state`,
    `- CPU columns: µs per completed request: router = the router's workers, rt-pri its primary, peer = nginx / haproxy / hello / redis-server, shards = all shards, redis = the router's Redis; server = every tier but loadgen and redis. loadgen%: the load generator's CPU as a share of one core (near 100: it set the pace, not the system). busy%: the whole machine; other%: busy time no tier of the row accounts for`,
    ...(() => {
      const sat = results.filter((r) => r.loadgenCorePct >= 90);
      return sat.length > 0
        ? [
            `- load generator at ≥ 90% of a core in: ${sat.map((r) => `${r.system}/${r.workload}`).join(', ')}: these rows measure the load generator as much as the system`,
          ]
        : [];
    })(),
    ...suite.skipped.map((s) => `- skipped: ${s.system}: ${s.reason}`),
    ...Object.entries(suite.preloadS).map(([k, v]) => `- preload ${k}: ${v} s`),
    '',
    '## Targets',
    '',
    markdownTable(
      ['target', 'measured', 'status'],
      checks.map((c) => [c.target, c.measured, c.status === 'n/a' ? `n/a (${c.note ?? ''})` : c.status]),
      3,
    ),
    '',
  ];
  for (const w of workloads) {
    const rows = results.filter((r) => r.workload === w);
    if (rows.length === 0) continue;
    md.push(`## ${w}: ${WORKLOADS[w].what}`, '', resultsTable(rows), '');
  }
  if (scalingRows.length > 0)
    md.push(
      '## Scaling (get-10k-uniform, router)',
      '',
      `Medians of ${settings.rounds} rounds taking turns over every configuration (all started first, then one uncounted pass over all as warm-up); CPU in µs per request.`,
      '',
      markdownTable(
        ['varied', 'shards', 'workers', 'req/s', 'p99 ms', 'router µs', 'shards µs', 'req/s per round'],
        scalingRows.map((r) => [
          r.what,
          String(r.shards),
          String(r.workers),
          fmt(r.reqPerSec),
          fmt(r.p99),
          fmt(r.routerUs),
          fmt(r.shardsUs),
          r.perRound.map((x) => fmt(x)).join(' / '),
        ]),
      ),
      '',
    );
  md.push('## Rows not run', '', ...(notApplicableRows.length > 0 ? notApplicableRows.map((n) => `- ${n.system} / ${n.workload}: ${n.reason}`) : ['none']), '');
  md.push('## Peers', '');
  if (peers.nginx) md.push(`${peers.nginx.version}, worker_processes ${settings.peerWorkers}:`, '', '```nginx', peers.nginx.config.trim(), '```', '');
  if (peers.haproxy) md.push(`${peers.haproxy.version}:`, '', '```', peers.haproxy.config.trim(), '```', '');
  if (peers.redis) md.push(`${peers.redis.version}: \`${peers.redis.command}\``, '');
  if (peers.hello) md.push(`hello: ${peers.hello.what}`, '');
  const markdown = md.join('\n');
  console.log(`\n${markdown}`);

  const file = writeResults(
    'suite',
    startedAt,
    {
      benchmark: 'suite',
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      machine,
      settings: { ...settings, workloads, systems },
      method,
      peers,
      skipped: suite.skipped,
      notApplicable: notApplicableRows,
      preloadS: suite.preloadS,
      targets: checks,
      results,
      scaling: scalingRows,
      runs,
    },
    markdown,
  );
  const main = workloads.filter((w) => WORKLOADS[w].main);
  const svg = barChart(
    'shardkv benchmark suite: req/s (median over rounds)',
    `${startedAt.toISOString().slice(0, 10)}, commit ${String(machine['commit'])}, ${String(machine['cpuCount'])} CPUs, ${settings.connections} connections`,
    (main.length > 0 ? main : workloads).map((w) => ({
      title: `${w}: ${WORKLOADS[w].what}`,
      bars: results.filter((r) => r.workload === w).map((r) => ({ label: r.system, value: r.reqPerSec })),
    })),
  );
  writeFileSync(file.replace(/\.json$/, '.svg'), svg);
  console.log(`\nresults: ${path.relative(process.cwd(), file) || file} (and .md, .svg)`);
}

let current: Suite | undefined;
runBench(
  main,
  () => {
    if (!current) return;
    current.aborted = true;
    for (const g of current.live) g.child.send({ type: 'stop' });
  },
  log,
);
