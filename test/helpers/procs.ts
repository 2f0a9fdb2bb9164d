// Test harness: real redis-server, shard and router processes on 127.0.0.1.
// Each piece reports readiness over IPC; everything started is registered for
// cleanup at once.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { startRedis, freePort, type LocalRedis } from '../../src/local/redis-server.js';
import { TopologyStore, initTopology } from '../../src/infra/topology-store.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const KV_BIN = path.join(ROOT, 'dist/cli/kv.js');

export interface Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly messages: Record<string, unknown>[];
  readonly output: string[];
  waitFor(pred: (m: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): void;
  stop(timeoutMs?: number): Promise<void>;
}

function spawnKv(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(process.execPath, [KV_BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: { ...process.env, ...env },
  });
  const messages: Record<string, unknown>[] = [];
  const output: string[] = [];
  const waiters = new Set<() => void>();
  child.on('message', (m: Record<string, unknown>) => {
    messages.push(m);
    for (const w of waiters) w();
  });
  for (const s of [child.stdout!, child.stderr!]) s.on('data', (d: Buffer) => { output.push(d.toString()); if (process.env['KV_TEST_VERBOSE']) process.stderr.write(d); });
  const exitP = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const proc: Proc = {
    child,
    pid: child.pid!,
    messages,
    output,
    waitFor(pred, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = messages.find(pred);
          if (m) { cleanup(); resolve(m); return true; }
          return false;
        };
        const timer = setTimeout(() => { cleanup(); reject(new Error(`timed out waiting for a message; output:\n${output.join('')}`)); }, timeoutMs);
        const onExit = () => { cleanup(); reject(new Error(`process exited before the message arrived; output:\n${output.join('')}`)); };
        const cleanup = () => { clearTimeout(timer); waiters.delete(w); child.off('exit', onExit); };
        const w = () => { check(); };
        if (check()) return;
        waiters.add(w);
        child.once('exit', onExit);
      });
    },
    exited: () => exitP,
    kill(signal = 'SIGKILL') { child.kill(signal); },
    async stop(timeoutMs = 15_000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exitP;
      clearTimeout(t);
    },
  };
  return proc;
}

export interface ShardProc extends Proc {
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
}

export async function startShard(o: ShardOptions): Promise<ShardProc> {
  const sets = Object.entries(o.set ?? {}).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
  const p = spawnKv(['shard', 'start', '--id', o.id, '--data-dir', o.dataDir, '--data-port', String(o.dataPort ?? 0),
    '--admin-port', String(o.adminPort ?? 0), '--redis-url', o.redisUrl, '--redis-prefix', o.prefix, ...sets]);
  const ready = await p.waitFor((m) => m['type'] === 'ready');
  return Object.assign(p, {
    id: o.id,
    dataDir: o.dataDir,
    dataAddr: String(ready['dataAddr']),
    adminUrl: `http://${String(ready['adminAddr'])}`,
    dataPort: Number(ready['dataPort']),
    adminPort: Number(ready['adminPort']),
  });
}

export interface RouterProc extends Proc {
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
}

export async function startRouter(o: RouterOptions): Promise<RouterProc> {
  const port = o.port ?? (await freePort());
  const sets = Object.entries(o.set ?? {}).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
  const p = spawnKv(['router', 'start', '--port', String(port), '--workers', String(o.workers), '--redis-url', o.redisUrl,
    '--redis-prefix', o.prefix, ...sets]);
  const ready = await p.waitFor((m) => m['type'] === 'ready', 30_000);
  return Object.assign(p, { url: `http://127.0.0.1:${port}`, port, workerPids: ready['workers'] as number[] });
}

export interface ClusterOptions {
  shards?: number;
  workers?: number;
  routerSet?: Record<string, string | number>;
  shardSet?: Record<string, string | number>;
}

/** A whole system: private Redis, N shards in the ring, a router cluster. */
export class TestCluster {
  redis!: LocalRedis;
  admin!: Redis;
  store!: TopologyStore;
  readonly prefix = `t${process.pid}:`;
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'shardkv-test-'));
  shards: ShardProc[] = [];
  router!: RouterProc;
  readonly #opts: ClusterOptions;

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

  async #start(): Promise<void> {
    this.redis = await startRedis();
    this.admin = new Redis(this.redis.url);
    this.admin.on('error', () => {});
    this.store = new TopologyStore(this.admin, this.prefix);
    const n = this.#opts.shards ?? 3;
    const ids = Array.from({ length: n }, (_, i) => `s${i + 1}`);
    this.shards = await Promise.all(ids.map((id) => this.startShard(id)));
    await initTopology(this.store, ids, { waitMs: 5000 });
    this.router = await startRouter({ redisUrl: this.redis.url, prefix: this.prefix, workers: this.#opts.workers ?? 2, ...(this.#opts.routerSet ? { set: this.#opts.routerSet } : {}) });
  }

  startShard(id: string, ports: { dataPort?: number; adminPort?: number } = {}): Promise<ShardProc> {
    return startShard({ redisUrl: this.redis.url, prefix: this.prefix, id, dataDir: path.join(this.dir, id), ...ports, ...(this.#opts.shardSet ? { set: this.#opts.shardSet } : {}) });
  }

  /** Restart a shard on the same data dir and ports. */
  async restartShard(old: ShardProc): Promise<ShardProc> {
    const fresh = await this.startShard(old.id, { dataPort: old.dataPort, adminPort: old.adminPort });
    this.shards = this.shards.map((s) => (s === old ? fresh : s));
    return fresh;
  }

  get url(): string {
    return this.router.url;
  }

  async stop(): Promise<void> {
    await this.router?.stop().catch(() => undefined);
    await Promise.all(this.shards.map((s) => s.stop().catch(() => undefined)));
    this.admin?.disconnect();
    await this.redis?.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
