// The router primary's workers (cluster module): fork them, respawn a crashed
// one with exponential backoff inside a crash-loop budget, roll them one at a
// time with zero downtime (the new worker listens before the old one drains),
// and retire them all on shutdown.
import cluster, { type Worker } from 'node:cluster';
import { backoffMs } from '../core/backoff.js';
import type { RouterConfig } from '../core/config.js';
import type { WorkerMessage } from './worker.js';

export type PrimaryEvent =
  | { type: 'ready'; port: number; workers: number[] }
  | { type: 'rolled'; workers: number[] }
  | { type: 'respawned'; pid: number; replaced: number }
  | { type: 'crash-loop'; restarts: number };

export type PoolConfig = Pick<RouterConfig, 'crashLoopWindowMs' | 'crashLoopMaxRestarts' | 'respawnMinDelayMs' | 'respawnMaxDelayMs' | 'drainTimeoutMs'>;

interface Slot {
  readonly worker: Worker;
  readonly workerId: string;
  ready: boolean;
  retiring: boolean;
}

/** A draining worker gets this long beyond its own drain timeout before SIGKILL. */
const RETIRE_GRACE_MS = 5000;

export class WorkerPool {
  readonly #cfg: PoolConfig;
  readonly #log: (msg: string) => void;
  readonly #emit: (ev: PrimaryEvent) => void;
  /** Called when crashes exceed the budget: the primary shuts down. */
  readonly #onCrashLoop: () => void;
  readonly #slots = new Map<number, Slot>(); // by worker.id
  readonly #crashes: number[] = [];
  #nextWorkerId = 1;
  #stopping = false;
  #rolling = false;
  #rollAgain = false;
  /** The port the workers listen on (reported by the first that is ready). */
  port = 0;

  constructor(cfg: PoolConfig, log: (msg: string) => void, emit: (ev: PrimaryEvent) => void, onCrashLoop: () => void) {
    this.#cfg = cfg;
    this.#log = log;
    this.#emit = emit;
    this.#onCrashLoop = onCrashLoop;
    cluster.on('exit', (w, code, signal) => this.#onExit(w, code, signal));
  }

  /** Pids of the workers that are ready and not retiring. */
  livePids(): number[] {
    return [...this.#slots.values()].filter((s) => s.ready && !s.retiring).map((s) => s.worker.process.pid!);
  }

  /** Workers that are ready, retiring ones included (they still serve until they exit). */
  readyWorkers(): Worker[] {
    return [...this.#slots.values()].filter((s) => s.ready).map((s) => s.worker);
  }

  /** Start `n` workers; resolves once every one listens. */
  async start(n: number): Promise<void> {
    await Promise.all(Array.from({ length: n }, () => this.#fork()));
  }

  #fork(): Promise<Slot> {
    const workerId = String(this.#nextWorkerId++);
    const worker = cluster.fork({ KV_WORKER_ID: workerId });
    const slot: Slot = { worker, workerId, ready: false, retiring: false };
    this.#slots.set(worker.id, slot);
    return new Promise((resolve, reject) => {
      const onMsg = (msg: WorkerMessage) => {
        if (msg?.type === 'ready') {
          slot.ready = true;
          this.port = msg.port;
          worker.off('message', onMsg);
          resolve(slot);
        }
      };
      worker.on('message', onMsg);
      worker.once('exit', (code, signal) => {
        if (!slot.ready) reject(new Error(`worker ${workerId} exited before it was ready (code ${code}, signal ${signal})`));
      });
    });
  }

  #onExit(worker: Worker, code: number, signal: string): void {
    const slot = this.#slots.get(worker.id);
    this.#slots.delete(worker.id);
    if (!slot || slot.retiring || this.#stopping) return;
    const now = Date.now();
    const crashes = this.#crashes;
    crashes.push(now);
    while (crashes.length > 0 && crashes[0]! < now - this.#cfg.crashLoopWindowMs) crashes.shift();
    if (crashes.length > this.#cfg.crashLoopMaxRestarts) {
      this.#log(
        `router: ${crashes.length} worker crashes within ${this.#cfg.crashLoopWindowMs} ms, over the budget of ${this.#cfg.crashLoopMaxRestarts}; stopping`,
      );
      this.#emit({ type: 'crash-loop', restarts: crashes.length });
      this.#onCrashLoop();
      return;
    }
    const delay = backoffMs(crashes.length - 1, this.#cfg.respawnMinDelayMs, this.#cfg.respawnMaxDelayMs);
    this.#log(`router: worker ${slot.workerId} (pid ${worker.process.pid}) died (code ${code}, signal ${signal}); respawning in ${delay} ms`);
    setTimeout(() => {
      if (this.#stopping) return;
      this.#fork().then(
        (s) => this.#emit({ type: 'respawned', pid: s.worker.process.pid!, replaced: worker.process.pid! }),
        (err: Error) => this.#log(`router: respawn failed: ${err.message}`),
      );
    }, delay);
  }

  /** Drain one worker (SIGKILL after timeoutMs); resolves when it has exited. */
  #retire(slot: Slot, timeoutMs: number): Promise<void> {
    slot.retiring = true;
    return new Promise((resolve) => {
      if (slot.worker.isDead()) return resolve();
      const timer = setTimeout(() => {
        slot.worker.process.kill('SIGKILL');
      }, timeoutMs);
      slot.worker.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      // A worker still starting has no requests to drain and may not listen
      // for messages yet: a signal stops it.
      if (!slot.ready) {
        slot.worker.process.kill('SIGTERM');
        return;
      }
      try {
        slot.worker.send({ type: 'drain' });
      } catch {
        slot.worker.process.kill('SIGTERM');
      }
    });
  }

  /** Rolling restart; a roll asked for while one runs starts again when it ends. */
  async roll(): Promise<void> {
    if (this.#rolling) {
      this.#rollAgain = true;
      return;
    }
    this.#rolling = true;
    try {
      do {
        this.#rollAgain = false;
        const old = [...this.#slots.values()].filter((s) => !s.retiring);
        for (const slot of old) {
          if (this.#stopping) return;
          // Start the replacement first; only once it listens does the old one drain.
          await this.#fork();
          await this.#retire(slot, this.#cfg.drainTimeoutMs + RETIRE_GRACE_MS);
        }
        this.#log(`router: rolled ${old.length} workers`);
        this.#emit({ type: 'rolled', workers: this.livePids() });
      } while (this.#rollAgain && !this.#stopping);
    } catch (err) {
      this.#log(`router: rolling restart stopped: ${(err as Error).message}`);
    } finally {
      this.#rolling = false;
    }
  }

  /** No respawns and no more rolling from now on (the primary is shutting down). */
  stopRespawning(): void {
    this.#stopping = true;
  }

  /** Drain every worker; no respawns from now on. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await Promise.all([...this.#slots.values()].map((s) => this.#retire(s, this.#cfg.drainTimeoutMs + RETIRE_GRACE_MS)));
  }
}
