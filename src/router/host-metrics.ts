// One /metrics per router host, whichever worker a scrape lands on. The
// worker that gets GET /metrics asks the cluster primary over the cluster's
// IPC channel; the primary asks every ready worker for its numbers
// (prom-client's JSON form), merges them with prom-client's
// AggregatorRegistry.aggregate (each metric by its own aggregator: counters
// and histograms are summed bucket by bucket, per-host gauges such as the
// epoch take the max) and answers with the text the worker serves.
//
// Counters of a host never go back, so rate() stays right across worker
// restarts and rolls:
//  - a worker that does not answer within metricsWorkerTimeoutMs is
//    represented by the counters and histograms of its last answer (its
//    gauges are left out), and kv_router_metrics_late_workers says so;
//  - when a worker exits, the counters and histograms of its last answer are
//    kept and added to every later scrape.
// A scrape never waits longer than metricsWorkerTimeoutMs for workers; the
// asking worker gives up after that plus a margin and answers 503
// KV_ERR_METRICS_UNAVAILABLE.
import cluster, { type Worker } from 'node:cluster';
import client from 'prom-client';
import { kvError } from '../core/errors.js';
import { readGauge } from '../infra/prom.js';

/** A worker's numbers: what prom-client's getMetricsAsJSON() returns. */
type Snapshot = Array<{ name: string; type: unknown; values: unknown[] }>;

export type MetricsRequest = { type: 'metrics-req'; id: number } | { type: 'metrics-snapshot'; seq: number; metrics: Snapshot };
export type MetricsAnswer = { type: 'metrics-collect'; seq: number } | { type: 'metrics-res'; id: number; text?: string; error?: string };

/** The asking worker waits this much longer than the primary waits for the workers. */
const PRIMARY_MARGIN_MS = 1000;

/** Counters and histograms only: what may stand in for a worker that is late or gone. */
const monotonic = (s: Snapshot): Snapshot => s.filter((m) => m.type === 'counter' || m.type === 'histogram');

/** The primary's side: answers the workers' scrapes. */
export class HostMetrics {
  readonly #timeoutMs: number;
  /** Ready workers (retiring ones too: they still serve) and the number of live ones. */
  readonly #workers: () => { ready: Worker[]; live: number };
  /** Each worker's last answer, by cluster worker id. */
  readonly #last = new Map<number, Snapshot>();
  /** The counters and histograms of workers that have exited, merged. */
  #departed: Promise<Snapshot | undefined> = Promise.resolve(undefined);
  #seq = 0;
  #round: { seq: number; got(id: number): void } | undefined;
  /** A scrape under way: scrapes that come meanwhile share its answer. */
  #collecting: Promise<string> | undefined;
  #late = 0;
  #live = 0;
  readonly #own = new client.Registry();

  constructor(timeoutMs: number, workers: () => { ready: Worker[]; live: number }) {
    this.#timeoutMs = timeoutMs;
    this.#workers = workers;
    readGauge(this.#own, 'kv_router_workers', 'Live workers on this host', () => this.#live, 'max');
    readGauge(
      this.#own,
      'kv_router_metrics_late_workers',
      'Workers that did not answer this scrape in time; their counters are from their last answer, their gauges are left out',
      () => this.#late,
      'max',
    );
    cluster.on('message', (worker: Worker, msg: MetricsRequest) => this.#onMessage(worker, msg));
    cluster.on('exit', (worker: Worker) => this.#onExit(worker));
  }

  #onMessage(worker: Worker, msg: MetricsRequest): void {
    if (msg?.type === 'metrics-snapshot') {
      this.#last.set(worker.id, msg.metrics);
      if (this.#round?.seq === msg.seq) this.#round.got(worker.id);
    } else if (msg?.type === 'metrics-req') {
      this.scrape().then(
        (text) => send(worker, { type: 'metrics-res', id: msg.id, text }),
        (err: Error) => send(worker, { type: 'metrics-res', id: msg.id, error: err.message }),
      );
    }
  }

  #onExit(worker: Worker): void {
    const last = this.#last.get(worker.id);
    this.#last.delete(worker.id);
    if (!last) return;
    this.#departed = this.#departed.then(async (d) => {
      const merged = client.AggregatorRegistry.aggregate([...(d ? [d] : []), monotonic(last)]);
      return (await merged.getMetricsAsJSON()) as unknown as Snapshot;
    });
  }

  /** The host's metrics in the Prometheus text format. */
  scrape(): Promise<string> {
    this.#collecting ??= this.#collect().finally(() => {
      this.#collecting = undefined;
    });
    return this.#collecting;
  }

  async #collect(): Promise<string> {
    const { ready, live } = this.#workers();
    const targets = ready.filter((w) => w.isConnected());
    const seq = ++this.#seq;
    const fresh = new Set<number>();
    await new Promise<void>((resolve) => {
      let left = targets.length;
      const timer = setTimeout(resolve, this.#timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.#round = {
        seq,
        got: (id) => {
          if (fresh.has(id)) return;
          fresh.add(id);
          if (--left === 0) done();
        },
      };
      for (const w of targets) if (!send(w, { type: 'metrics-collect', seq })) left--;
      if (left <= 0) done();
    });
    this.#round = undefined;
    const parts: Snapshot[] = [];
    let late = 0;
    for (const w of targets) {
      const s = this.#last.get(w.id);
      if (!s) continue; // exited meanwhile: its numbers are in departed
      if (fresh.has(w.id)) parts.push(s);
      else {
        late++;
        if (s) parts.push(monotonic(s));
      }
    }
    const departed = await this.#departed;
    if (departed) parts.push(departed);
    this.#late = late;
    this.#live = live;
    parts.push((await this.#own.getMetricsAsJSON()) as unknown as Snapshot);
    return client.AggregatorRegistry.aggregate(parts).metrics();
  }
}

function send(w: Worker, msg: MetricsAnswer): boolean {
  try {
    w.send(msg);
    return true;
  } catch {
    return false;
  }
}

/** A worker's side: answers the primary's requests for its numbers, and asks it for the host's metrics. */
export class WorkerMetricsChannel {
  readonly #waitMs: number;
  #collect: (() => Promise<unknown>) | undefined;
  #nextId = 1;
  readonly #waiting = new Map<number, { resolve(text: string): void; reject(err: Error): void; timer: NodeJS.Timeout }>();

  /** `timeoutMs`: the primary's wait for the workers (metricsWorkerTimeoutMs). */
  constructor(timeoutMs: number) {
    this.#waitMs = timeoutMs + PRIMARY_MARGIN_MS;
    process.on('message', (msg: MetricsAnswer) => this.#onMessage(msg));
  }

  /** How this worker's own numbers are read (the metrics plugin sets it). */
  answerWith(collect: () => Promise<unknown>): void {
    this.#collect = collect;
  }

  /** The host's merged metrics text. */
  scrape(): Promise<string> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(kvError('KV_ERR_METRICS_UNAVAILABLE', `the router primary did not answer within ${this.#waitMs} ms`));
      }, this.#waitMs);
      this.#waiting.set(id, { resolve, reject, timer });
      process.send!({ type: 'metrics-req', id } satisfies MetricsRequest);
    });
  }

  #onMessage(msg: MetricsAnswer): void {
    if (msg?.type === 'metrics-collect') {
      const collect = this.#collect;
      if (!collect) return;
      collect().then(
        (metrics) => process.send?.({ type: 'metrics-snapshot', seq: msg.seq, metrics: metrics as Snapshot } satisfies MetricsRequest),
        () => undefined,
      );
    } else if (msg?.type === 'metrics-res') {
      const w = this.#waiting.get(msg.id);
      if (!w) return;
      this.#waiting.delete(msg.id);
      clearTimeout(w.timer);
      if (msg.text !== undefined) w.resolve(msg.text);
      else w.reject(kvError('KV_ERR_METRICS_UNAVAILABLE', msg.error ?? 'no answer'));
    }
  }
}
