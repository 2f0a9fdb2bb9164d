// Start a private topology for a benchmark, each tier its own process, all on
// 127.0.0.1: a redis-server, N shards (temporary data dirs, ports 0), the
// topology bootstrap (`kv topology init`), and the router cluster; startShard()
// adds a shard later (registered, not yet in the ring). Every process is
// registered with the Cleanup as soon as it exists; Cleanup.run() tears them
// down in order (router drains first, then shards, then Redis) and removes
// the data dirs.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { newSecret } from '../src/local/secrets.js';
import { Child, type Message } from '../src/local/child.js';
import { startRedis, freePort, type LocalRedis } from '../src/local/redis-server.js';
import { createRedis } from '../src/infra/redis.js';
import { TopologyStore, initTopology } from '../src/infra/topology-store.js';
import type { Topology } from '../src/core/topology.js';
import { closeSharedAgent, get } from '../dev/http.js';

/** The built CLI (`npm run build`); BENCH_KV_BIN runs another build, e.g. an earlier commit's. */
const KV_BIN = process.env['BENCH_KV_BIN'] || fileURLToPath(new URL('../dist/cli/kv.js', import.meta.url));
const READY_TIMEOUT_MS = 30_000;

export interface ShardProcess {
  readonly id: string;
  readonly pid: number;
  readonly dataAddr: string;
  readonly adminAddr: string;
  readonly adminPort: number;
  readonly child: Child;
}

export interface RouterProcess {
  readonly pid: number;
  readonly port: number;
  readonly url: string;
  /** Worker pids reported at start (the primary may respawn some later). */
  readonly workers: readonly number[];
  readonly child: Child;
}

export interface BenchTopology {
  readonly dir: string;
  readonly redis: LocalRedis;
  readonly shards: readonly ShardProcess[];
  readonly router: RouterProcess;
  readonly topology: Topology;
}

export interface TopologyOptions {
  readonly shards: number;
  readonly routerWorkers: number;
  /** Shards skip fsync on commit (LMDB noSync). */
  readonly noSync: boolean;
  /** Shards take writes of any key on their HTTP ports (httpKvWrites=standalone), for nginx in front of them. */
  readonly standaloneHttp?: boolean;
  /** Echo every line the child processes print, not only warnings. */
  readonly verbose: boolean;
  /** Extra node flags for shards and router (e.g. --cpu-prof); cluster workers inherit them. */
  readonly nodeArgs: readonly string[];
  /** Extra router options as `key=value`, passed with `--set` (e.g. rebalanceBatchKeys=5000). */
  readonly routerSets?: readonly string[];
  /**
   * The router's dataAuth (default false here, unlike the router's own
   * default): requests without credentials are anonymous, requests with an
   * API key or a session are still checked and scoped to their tenant.
   */
  readonly dataAuth?: boolean;
  /** The router's tenantRateLimitPerSec (unset: the router's default; 0: no limit). */
  readonly tenantRateLimitPerSec?: number;
}

/** Per-router settings of startRouter() beyond the topology's own. */
export interface RouterOptions {
  readonly dataAuth?: boolean | undefined;
  readonly tenantRateLimitPerSec?: number | undefined;
  /** Run the rebalance coordinator (default true; a second router of a benchmark does not need it). */
  readonly rebalanceCoordinator?: boolean;
  /** Count requests for /metrics (default true); false measures what that costs. */
  readonly requestMetrics?: boolean;
}

/**
 * Router options that go through the environment rather than `--set`: a
 * build that does not know an option ignores its variable, while `--set`
 * with an unknown key is refused (bench/compare.ts runs older builds too).
 */
function routerEnv(o: RouterOptions): Record<string, string> {
  const env: Record<string, string> = { ROUTER_DATA_AUTH: String(o.dataAuth ?? false) };
  if (o.tenantRateLimitPerSec !== undefined) env['ROUTER_TENANT_RATE_LIMIT_PER_SEC'] = String(o.tenantRateLimitPerSec);
  if (o.rebalanceCoordinator === false) env['ROUTER_REBALANCE_COORDINATOR'] = 'false';
  if (o.requestMetrics === false) env['ROUTER_REQUEST_METRICS'] = 'false';
  return env;
}

/** What killNow() can reach: a Child, a ChildProcess, or anything else with a kill(). */
export interface Killable {
  kill(signal: NodeJS.Signals): unknown;
}

/** Cleanup steps, run once, newest first, plus a last-resort kill list. */
export class Cleanup {
  readonly #steps: Array<{ name: string; fn: () => Promise<void> | void }> = [];
  readonly #children = new Set<Killable>();
  #ran: Promise<void> | undefined;

  /** Remember a child so killNow() can reach it even if the orderly stop never ran. */
  track(child: Killable): void {
    this.#children.add(child);
  }

  /** Synchronous: SIGKILL every tracked child still running (for process 'exit'). */
  killNow(): void {
    // A ChildProcess that has exited ignores kill(); a Child checks itself.
    for (const c of this.#children) c.kill('SIGKILL');
  }

  add(name: string, fn: () => Promise<void> | void): void {
    this.#steps.push({ name, fn });
  }

  run(): Promise<void> {
    this.#ran ??= (async () => {
      while (this.#steps.length > 0) {
        const step = this.#steps.pop()!;
        try {
          await step.fn();
        } catch (err) {
          console.error(`[bench] cleanup of ${step.name} failed: ${(err as Error).message}`);
        }
      }
    })();
    return this.#ran;
  }
}

/**
 * The secrets of this benchmark's processes, generated per run (every router
 * and shard needs them). Given to the children through the environment, so an
 * older build that does not know the cluster secret simply ignores it.
 */
export const BENCH_SECRETS = { adminToken: newSecret(), clusterSecret: newSecret() };
/** `Authorization` for a shard's HTTP port and the admin API. */
export const ADMIN_HEADER = { authorization: `Bearer ${BENCH_SECRETS.adminToken}` };

function spawnKv(args: string[], name: string, o: TopologyOptions, env: Record<string, string> = {}): Child {
  // Own process group: Ctrl-C reaches only the benchmark, which then stops
  // the tiers in order. The IPC channel still ties each child to us: shards
  // and the router primary stop on 'disconnect' if the benchmark dies.
  return new Child(KV_BIN, args, {
    nodeArgs: o.nodeArgs,
    detached: true,
    env: { ...process.env, KV_ADMIN_TOKEN: BENCH_SECRETS.adminToken, KV_CLUSTER_SECRET: BENCH_SECRETS.clusterSecret, KV_INSECURE: '', ...env },
    onLine: (line) => {
      // Startup banners are noise in a results table; warnings and errors are not.
      if (o.verbose || /"level":\s*[4-6]\d|error|warn|fail|deprecat/i.test(line)) process.stderr.write(`[${name}] ${line}\n`);
    },
  });
}

async function ready(child: Child, name: string): Promise<Message> {
  try {
    return await child.ready(READY_TIMEOUT_MS);
  } catch (err) {
    throw new Error(`${name} was not ready: ${(err as Error).message}`, { cause: err });
  }
}

function killIfAlive(pid: number): void {
  try {
    process.kill(pid, 0);
    process.kill(pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

/**
 * Run a benchmark's main with its own cleanup. The first SIGINT/SIGTERM calls
 * `abort` (stop the load) and stops every process in order, then exits 130; a
 * second one exits at once (the 'exit' hook still kills what is left).
 * Otherwise, after the cleanup ran: success exits 0, a failure is logged
 * (unless aborted) and exits 1, an aborted run exits 130.
 */
export function runBench(main: (cleanup: Cleanup) => Promise<void>, abort: () => void, log: (msg: string) => void): void {
  const cleanup = new Cleanup();
  let aborted = false;
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    aborted = true;
    abort();
    if (signals > 1) process.exit(130);
    log(`${sig}: stopping everything (again to force)`);
    void cleanup.run().then(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => cleanup.killNow());
  main(cleanup).then(
    () => cleanup.run().then(() => process.exit(0)),
    (err: Error) => {
      if (!aborted) log(`failed: ${err.stack ?? err.message}`);
      abort();
      return cleanup.run().then(() => process.exit(aborted ? 130 : 1));
    },
  );
}

/**
 * Start one shard process with its data dir under `dir`; resolves once it is
 * ready (listening and registered in Redis). It is not in the ring until an
 * admin action puts it there.
 */
export async function startShard(id: string, dir: string, redisUrl: string, o: TopologyOptions, cleanup: Cleanup): Promise<ShardProcess> {
  const child = spawnKv(
    [
      'shard',
      'start',
      '--id',
      id,
      '--data-dir',
      path.join(dir, id),
      '--host',
      '127.0.0.1',
      '--data-port',
      '0',
      '--admin-port',
      '0',
      '--redis-url',
      redisUrl,
      // Standalone: nginx writes keys through the shards' HTTP ports by its own hash, not our ring.
      ...(o.standaloneHttp ? ['--set', 'httpKvWrites=standalone'] : []),
      ...(o.noSync ? ['--set', 'noSync=true'] : []),
    ],
    id,
    o,
  );
  cleanup.track(child);
  cleanup.add(`shard ${id}`, () => child.stop(15_000));
  const m = await ready(child, id);
  return {
    id: String(m['id']),
    pid: Number(m['pid']),
    dataAddr: String(m['dataAddr']),
    adminAddr: String(m['adminAddr']),
    adminPort: Number(m['adminPort']),
    child,
  };
}

export async function startTopology(o: TopologyOptions, cleanup: Cleanup): Promise<BenchTopology> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'shardkv-bench-'));
  cleanup.add('data dirs', () => rmSync(dir, { recursive: true, force: true }));

  // Memory only: Redis holds the topology and registry, never data.
  const redis = await startRedis({ detached: true });
  cleanup.track(redis.process);
  cleanup.add('redis', () => redis.stop());

  const ids = Array.from({ length: o.shards }, (_, i) => `s${i + 1}`);
  const shards = await Promise.all(ids.map((id) => startShard(id, dir, redis.url, o, cleanup)));

  const admin = createRedis({ redisUrl: redis.url, redisCommandTimeoutMs: 2000 });
  let topology: Topology;
  try {
    topology = await initTopology(new TopologyStore(admin, 'kv:'), ids, { waitMs: 10_000 });
  } finally {
    admin.disconnect();
  }

  const router = await startRouter(redis.url, o, cleanup, { dataAuth: o.dataAuth, tenantRateLimitPerSec: o.tenantRateLimitPerSec });
  return { dir, redis, shards, router, topology };
}

/**
 * Start a router cluster (primary and o.routerWorkers workers) on a free
 * port against the topology in `redisUrl`; resolves once /readyz answers 200.
 * startTopology() starts the first; a benchmark may add more with other
 * settings (all routers serve the same shards).
 */
export async function startRouter(redisUrl: string, o: TopologyOptions, cleanup: Cleanup, r: RouterOptions = {}): Promise<RouterProcess> {
  const port = await freePort();
  const child = spawnKv(
    [
      'router',
      'start',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--workers',
      String(o.routerWorkers),
      '--redis-url',
      redisUrl,
      ...(o.routerSets?.length ? ['--set', ...o.routerSets] : []),
    ],
    `router:${port}`,
    o,
    routerEnv(r),
  );
  cleanup.track(child);
  let workerPids: number[] = [];
  cleanup.add(`router ${port}`, async () => {
    await child.stop(20_000);
    // Workers leave when the primary does; make sure no straggler outlives us.
    for (const pid of workerPids) killIfAlive(pid);
  });
  // Runs before the router stops: a draining worker waits for open client connections.
  cleanup.add('http client', () => closeSharedAgent());
  const m = await ready(child, 'router');
  workerPids = (m['workers'] as number[]).slice();
  const router: RouterProcess = { pid: child.pid, port: Number(m['port']), url: `http://127.0.0.1:${String(m['port'])}`, workers: workerPids, child };

  const res = await get(`${router.url}/readyz`, { fresh: true });
  if (res.status !== 200) throw new Error(`router not ready: ${res.status} ${res.text}`);
  return router;
}
