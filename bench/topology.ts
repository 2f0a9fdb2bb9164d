// Start a private topology for a benchmark, each tier its own process, all on
// 127.0.0.1: a redis-server, N shards (temporary data dirs, ports 0), the
// topology bootstrap (`kv topology init`), and the router cluster; startShard()
// adds a shard later (registered, not yet in the ring). Every
// process is registered for cleanup as soon as it exists; stop() tears them
// down in order (router drains first, then shards, then Redis) and removes
// the data dirs.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { startRedis, freePort, type LocalRedis } from '../src/local/redis-server.js';
import { createRedis } from '../src/infra/redis.js';
import { TopologyStore, initTopology } from '../src/infra/topology-store.js';
import type { Topology } from '../src/core/topology.js';
import { request } from './http-client.js';

/** The built CLI (`npm run build`); BENCH_KV_BIN runs another build, e.g. an earlier commit's. */
const KV_BIN = process.env['BENCH_KV_BIN'] || fileURLToPath(new URL('../dist/cli/kv.js', import.meta.url));
const READY_TIMEOUT_MS = 30_000;

export interface ShardProcess {
  readonly id: string;
  readonly pid: number;
  readonly dataAddr: string;
  readonly adminAddr: string;
  readonly adminPort: number;
  readonly child: ChildProcess;
}

export interface RouterProcess {
  readonly pid: number;
  readonly port: number;
  readonly url: string;
  /** Worker pids reported at start (the primary may respawn some later). */
  readonly workers: readonly number[];
  readonly child: ChildProcess;
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
  /** Echo every line the child processes print, not only warnings. */
  readonly verbose: boolean;
  /** Extra node flags for shards and router (e.g. --cpu-prof); cluster workers inherit them. */
  readonly nodeArgs: readonly string[];
  /** Extra router options as `key=value`, passed with `--set` (e.g. rebalanceBatchKeys=5000). */
  readonly routerSets?: readonly string[];
}

/** Cleanup steps, run once, newest first, plus a last-resort kill list. */
export class Cleanup {
  readonly #steps: Array<{ name: string; fn: () => Promise<void> | void }> = [];
  readonly #children = new Set<ChildProcess>();
  #ran: Promise<void> | undefined;

  /** Remember a child so killNow() can reach it even if the orderly stop never ran. */
  track(child: ChildProcess): void {
    this.#children.add(child);
  }

  /** Synchronous: SIGKILL every tracked child still running (for process 'exit'). */
  killNow(): void {
    for (const c of this.#children) if (alive(c)) c.kill('SIGKILL');
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

function echo(child: ChildProcess, name: string, verbose: boolean): void {
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    createInterface({ input: stream }).on('line', (line) => {
      // Startup banners are noise in a results table; warnings and errors are not.
      if (verbose || /"level":\s*[4-6]\d|error|warn|fail|deprecat/i.test(line)) process.stderr.write(`[${name}] ${line}\n`);
    });
  }
}

function spawnKv(args: string[], name: string, o: TopologyOptions): { child: ChildProcess; ready: Promise<Record<string, unknown>> } {
  // Own process group: Ctrl-C reaches only the benchmark, which then stops
  // the tiers in order. The IPC channel still ties each child to us: shards
  // and the router primary stop on 'disconnect' if the benchmark dies.
  const child = spawn(process.execPath, [...o.nodeArgs, KV_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], detached: true, env: process.env });
  echo(child, name, o.verbose);
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} was not ready within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
    child.on('message', (m: Record<string, unknown>) => {
      if (m?.['type'] === 'ready') { clearTimeout(timer); resolve(m); }
    });
    child.once('exit', (code, sig) => { clearTimeout(timer); reject(new Error(`${name} exited (code ${code}, signal ${sig}) before it was ready`)); });
  });
  return { child, ready };
}

function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function stopChild(child: ChildProcess, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (!alive(child)) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => { if (alive(child)) child.kill('SIGKILL'); }, timeoutMs).unref();
  });
}

function killIfAlive(pid: number): void {
  try {
    process.kill(pid, 0);
    process.kill(pid, 'SIGKILL');
  } catch { /* already gone */ }
}

/**
 * Start one shard process with its data dir under `dir`; resolves once it is
 * ready (listening and registered in Redis). It is not in the ring until an
 * admin action puts it there.
 */
/**
 * SIGINT/SIGTERM stop the benchmark: `onAbort` stops the load, then every
 * process is stopped in order; a second signal exits at once (the 'exit'
 * hook still kills what is left).
 */
/**
 * Run a benchmark's main with its own cleanup: the first SIGINT/SIGTERM calls
 * `abort` and stops everything (a second one forces exit); success exits 0,
 * failure logs (unless aborted) and exits 1, an abort 130, always after the
 * cleanup ran.
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

export async function startShard(id: string, dir: string, redisUrl: string, o: TopologyOptions, cleanup: Cleanup): Promise<ShardProcess> {
  const s = spawnKv(['shard', 'start', '--id', id, '--data-dir', path.join(dir, id), '--host', '127.0.0.1',
    '--data-port', '0', '--admin-port', '0', '--redis-url', redisUrl,
    ...(o.noSync ? ['--set', 'noSync=true'] : [])], id, o);
  cleanup.track(s.child);
  cleanup.add(`shard ${id}`, () => stopChild(s.child, 15_000));
  const m = await s.ready;
  return {
    id: String(m['id']), pid: Number(m['pid']), dataAddr: String(m['dataAddr']), adminAddr: String(m['adminAddr']),
    adminPort: Number(m['adminPort']), child: s.child,
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

  const port = await freePort();
  const r = spawnKv(['router', 'start', '--host', '127.0.0.1', '--port', String(port), '--workers', String(o.routerWorkers),
    '--redis-url', redis.url, ...(o.routerSets?.length ? ['--set', ...o.routerSets] : [])], 'router', o);
  cleanup.track(r.child);
  let workerPids: number[] = [];
  cleanup.add('router', async () => {
    await stopChild(r.child, 20_000);
    // Workers leave when the primary does; make sure no straggler outlives us.
    for (const pid of workerPids) killIfAlive(pid);
  });
  const ready = await r.ready;
  workerPids = (ready['workers'] as number[]).slice();
  const router: RouterProcess = { pid: r.child.pid!, port: Number(ready['port']), url: `http://127.0.0.1:${String(ready['port'])}`, workers: workerPids, child: r.child };

  const res = await request(`${router.url}/readyz`);
  if (res.status !== 200) throw new Error(`router not ready: ${res.status} ${res.body.toString('utf8')}`);
  return { dir, redis, shards, router, topology };
}
