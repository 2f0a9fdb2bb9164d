// Test harness: real redis-server, shard and router processes on 127.0.0.1.
// Each process is a Child (src/local/child.ts) that reports readiness over
// IPC; a TestCluster stops everything it started at once.
// KV_TEST_VERBOSE=1 echoes every line the processes print to stderr.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { Child, type Message } from '../../src/local/child.js';
import { startRedis, freePort, type LocalRedis } from '../../src/local/redis-server.js';
import { TopologyStore, initTopology } from '../../src/infra/topology-store.js';
import { closeSharedAgent } from '../../dev/http.js';
import { SECRETS_ENV } from './secrets.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const KV_BIN = path.join(ROOT, 'dist/cli/kv.js');

const WAIT_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 15_000;
const SHARD_READY_TIMEOUT_MS = 20_000;
const ROUTER_READY_TIMEOUT_MS = 30_000;

/**
 * A `kv` process: a Child whose waits and stop have the tests' default
 * timeouts, and which keeps every line it printed so a test can wait for
 * one (e.g. the coordinator's log line about a failing shard call).
 */
export class KvProc extends Child {
  /** Every line the process printed, oldest first. */
  readonly lines: string[];
  readonly #lineWaiters = new Set<() => void>();

  constructor(args: readonly string[], env: NodeJS.ProcessEnv = SECRETS_ENV) {
    const verbose = Boolean(process.env['KV_TEST_VERBOSE']);
    const lines: string[] = [];
    const wake = () => {
      for (const w of this.#lineWaiters) w();
    };
    super(KV_BIN, args, {
      env: { ...process.env, ...env },
      onLine: (line) => {
        lines.push(line);
        if (verbose) process.stderr.write(`${line}\n`);
        wake();
      },
    });
    this.lines = lines;
    void this.exited().then(wake);
  }

  override waitFor(pred: (m: Message) => boolean, timeoutMs = WAIT_TIMEOUT_MS, what?: string): Promise<Message> {
    return super.waitFor(pred, timeoutMs, what);
  }

  /** The first line at index `from` or later that matches; rejects on exit or timeout. */
  waitForLine(pred: (line: string) => boolean, o: { from?: number; timeoutMs?: number; what?: string } = {}): Promise<string> {
    const what = o.what ?? 'a matching line';
    const timeoutMs = o.timeoutMs ?? WAIT_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const check = () => {
        const line = this.lines.slice(o.from ?? 0).find(pred);
        if (line !== undefined) done(() => resolve(line));
        else if (!this.alive) done(() => reject(new Error(`process ${this.pid} exited before ${what}; its last output:\n${this.tail}`)));
      };
      const timer = setTimeout(
        () => done(() => reject(new Error(`no ${what} from process ${this.pid} within ${timeoutMs} ms; its last output:\n${this.tail}`))),
        timeoutMs,
      );
      const done = (settle: () => void) => {
        clearTimeout(timer);
        this.#lineWaiters.delete(check);
        settle();
      };
      this.#lineWaiters.add(check);
      check();
    });
  }

  override stop(timeoutMs = STOP_TIMEOUT_MS): Promise<void> {
    return super.stop(timeoutMs);
  }
}

/** Start `kv <args>` and wait for its ready message; a process that never gets ready is killed. */
async function startKv(args: readonly string[], timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<{ proc: KvProc; ready: Message }> {
  const proc = new KvProc(args, env);
  try {
    return { proc, ready: await proc.ready(timeoutMs) };
  } catch (err) {
    proc.kill('SIGKILL');
    throw err;
  }
}

export interface ShardProc extends KvProc {
  readonly id: string;
  readonly dataDir: string;
  readonly dataAddr: string;
  readonly adminUrl: string;
  readonly dataPort: number;
  readonly adminPort: number;
}

export interface ShardOptions {
  redisUrl: string;
  prefix: string;
  id: string;
  dataDir: string;
  dataPort?: number;
  adminPort?: number;
  set?: Record<string, string | number>;
  /** Environment of the process (default: the test secrets). */
  env?: NodeJS.ProcessEnv;
}

export async function startShard(o: ShardOptions): Promise<ShardProc> {
  const sets = Object.entries(o.set ?? {}).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
  const { proc, ready } = await startKv(
    [
      'shard',
      'start',
      '--id',
      o.id,
      '--data-dir',
      o.dataDir,
      '--data-port',
      String(o.dataPort ?? 0),
      '--admin-port',
      String(o.adminPort ?? 0),
      '--redis-url',
      o.redisUrl,
      '--redis-prefix',
      o.prefix,
      ...sets,
    ],
    SHARD_READY_TIMEOUT_MS,
    o.env,
  );
  return Object.assign(proc, {
    id: o.id,
    dataDir: o.dataDir,
    dataAddr: String(ready['dataAddr']),
    adminUrl: `${o.set?.['tlsCertFile'] ? 'https' : 'http'}://${String(ready['adminAddr'])}`,
    dataPort: Number(ready['dataPort']),
    adminPort: Number(ready['adminPort']),
  });
}

export interface RouterProc extends KvProc {
  readonly url: string;
  readonly port: number;
  readonly workerPids: number[];
}

export interface RouterOptions {
  redisUrl: string;
  prefix: string;
  workers: number;
  port?: number;
  set?: Record<string, string | number>;
  /** Environment of the process (default: the test secrets). */
  env?: NodeJS.ProcessEnv;
}

export async function startRouter(o: RouterOptions): Promise<RouterProc> {
  const port = o.port ?? (await freePort());
  // Most suites test routing, not tenants: their data requests are anonymous unless a test asks for dataAuth.
  const sets = Object.entries({ dataAuth: 'false', ...o.set }).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
  const { proc, ready } = await startKv(
    ['router', 'start', '--port', String(port), '--workers', String(o.workers), '--redis-url', o.redisUrl, '--redis-prefix', o.prefix, ...sets],
    ROUTER_READY_TIMEOUT_MS,
    o.env,
  );
  const scheme = o.set?.['tlsCertFile'] ? 'https' : 'http';
  return Object.assign(proc, { url: `${scheme}://127.0.0.1:${port}`, port, workerPids: ready['workers'] as number[] });
}

export interface ClusterOptions {
  shards?: number;
  workers?: number;
  routerSet?: Record<string, string | number>;
  shardSet?: Record<string, string | number>;
  /** Redis keeps an append-only file in the cluster's dir, so restartRedis() finds the topology again. */
  persistentRedis?: boolean;
}

/**
 * A whole system: private Redis, N shards in the ring, a router cluster.
 * Every process it starts is registered at once, so stop() ends all of
 * them, whatever the test did with `shards` meanwhile.
 */
export class TestCluster {
  redis!: LocalRedis;
  admin!: Redis;
  store!: TopologyStore;
  readonly prefix = `t${process.pid}:`;
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'shardkv-test-'));
  /** The shard processes, one per id (a restart replaces its entry). */
  shards: ShardProc[] = [];
  router!: RouterProc;
  readonly #opts: ClusterOptions;
  /** Every process started and not exited yet, routers apart (they stop first). */
  readonly #routers = new Set<KvProc>();
  readonly #shardProcs = new Set<KvProc>();

  constructor(opts: ClusterOptions = {}) {
    this.#opts = opts;
  }

  static async start(opts: ClusterOptions = {}): Promise<TestCluster> {
    const c = new TestCluster(opts);
    try {
      await c.#start();
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  get #redisDir(): string | undefined {
    return this.#opts.persistentRedis ? path.join(this.dir, 'redis') : undefined;
  }

  async #start(): Promise<void> {
    const dir = this.#redisDir;
    this.redis = await startRedis(dir ? { dir } : {});
    this.admin = new Redis(this.redis.url);
    this.admin.on('error', () => {});
    this.store = new TopologyStore(this.admin, this.prefix);
    const n = this.#opts.shards ?? 3;
    const ids = Array.from({ length: n }, (_, i) => `s${i + 1}`);
    await Promise.all(ids.map((id) => this.startShard(id)));
    await initTopology(this.store, ids, { waitMs: 5000 });
    await this.startRouter();
  }

  #track<P extends KvProc>(set: Set<KvProc>, p: P): P {
    set.add(p);
    void p.exited().then(() => set.delete(p));
    return p;
  }

  /** Start shard `id` on its data dir (not in the ring unless the ring already names it) and list it in `shards`. */
  async startShard(id: string, ports: { dataPort?: number; adminPort?: number } = {}, set: Record<string, string | number> = {}): Promise<ShardProc> {
    const sets = { ...this.#opts.shardSet, ...set };
    const s = this.#track(
      this.#shardProcs,
      await startShard({ redisUrl: this.redis.url, prefix: this.prefix, id, dataDir: path.join(this.dir, id), ...ports, set: sets }),
    );
    this.shards = [...this.shards.filter((x) => x.id !== id), s];
    return s;
  }

  /** Restart a shard on the same data dir and ports. */
  restartShard(old: ShardProc): Promise<ShardProc> {
    return this.startShard(old.id, { dataPort: old.dataPort, adminPort: old.adminPort });
  }

  shard(id: string): ShardProc {
    const s = this.shards.find((x) => x.id === id);
    if (!s) throw new Error(`no shard ${id} in this cluster`);
    return s;
  }

  /** Start the router (again, on the same port after the first time) with the cluster's options. */
  async startRouter(): Promise<RouterProc> {
    const port = this.router?.port;
    this.router = this.#track(
      this.#routers,
      await startRouter({
        redisUrl: this.redis.url,
        prefix: this.prefix,
        workers: this.#opts.workers ?? 2,
        ...(port !== undefined ? { port } : {}),
        ...(this.#opts.routerSet ? { set: this.#opts.routerSet } : {}),
      }),
    );
    return this.router;
  }

  get url(): string {
    return this.router.url;
  }

  /** Start Redis again on its port (and, with persistentRedis, its data) after a test stopped it. */
  async restartRedis(): Promise<void> {
    const dir = this.#redisDir;
    this.redis = await startRedis({ port: this.redis.port, ...(dir ? { dir } : {}) });
  }

  async stop(): Promise<void> {
    // Idle keep-alive connections would hold a draining router worker until
    // the client's keep-alive timeout: close the shared pool first.
    await closeSharedAgent();
    // Routers first, so nothing forwards to shards that are going away.
    await Promise.all([...this.#routers].map((p) => p.stop().catch(() => undefined)));
    await Promise.all([...this.#shardProcs].map((p) => p.stop().catch(() => undefined)));
    this.admin?.disconnect();
    await this.redis?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
