// A history checker for key-value operations under faults. Every client
// operation is recorded with its start, end and outcome; check() then asks,
// per key, whether each read could have happened:
//
//  - a read returns the value of some write that started before the read
//    ended and was not surely overwritten before the read started;
//  - "not found" is allowed only if no acknowledged write surely preceded
//    the read, or the write it reflects is a delete;
//  - writes with an unknown outcome (timeouts, lost connections) may take
//    effect at any time after they start; writes that surely failed never do.
//
// A final read of every key after the run catches lost acknowledged writes
// and deletes that came back. Values must be unique per write.
import { setTimeout as sleep } from 'node:timers/promises';
import { keepAliveAgent, request, type HttpResult } from './http.js';

export type Outcome = 'ok' | 'fail' | 'unknown';

export interface HistOp {
  kind: 'put' | 'del' | 'get';
  key: string;
  /** put: the value written; get: the value read (null = not found). */
  value: string | null;
  start: number;
  end: number;
  outcome: Outcome;
  status: number | string;
}

export class History {
  readonly ops: HistOp[] = [];
  #clock = 0;

  /** A strictly increasing timestamp: ms precision is too coarse for ordering. */
  now(): number {
    const t = performance.now();
    this.#clock = t > this.#clock ? t : this.#clock + 1e-6;
    return this.#clock;
  }

  add(op: HistOp): void {
    this.ops.push(op);
  }

  /** Record writes acknowledged before the history started (e.g. a bulk load). */
  preload(entries: Iterable<[string, string]>): void {
    for (const [key, value] of entries) {
      const t = this.now();
      this.ops.push({ kind: 'put', key, value, start: t, end: t, outcome: 'ok', status: 204 });
    }
  }

  counts(): Record<string, number> {
    const c: Record<string, number> = {};
    for (const o of this.ops) c[`${o.kind}:${o.outcome}`] = (c[`${o.kind}:${o.outcome}`] ?? 0) + 1;
    return c;
  }

  /** Keys whose last recorded read found nothing (deleted by the workload). */
  absentAtEnd(): Set<string> {
    const last = new Map<string, HistOp>();
    for (const o of this.ops) if (o.kind === 'get' && o.outcome === 'ok') last.set(o.key, o);
    return new Set([...last].filter(([, o]) => o.value === null).map(([k]) => k));
  }

  /** Server errors seen by clients (5xx and transport errors). */
  serverErrors(): HistOp[] {
    return this.ops.filter((o) => o.status === 'error' || (typeof o.status === 'number' && o.status >= 500));
  }

  check(): string[] {
    const problems: string[] = [];
    const byKey = new Map<string, HistOp[]>();
    for (const o of this.ops) {
      const list = byKey.get(o.key);
      if (list) list.push(o);
      else byKey.set(o.key, [o]);
    }
    for (const [key, ops] of byKey) {
      const writes = ops.filter((o) => o.kind !== 'get' && o.outcome !== 'fail');
      for (const g of ops) {
        if (g.kind !== 'get' || g.outcome !== 'ok') continue;
        const why = explain(writes, g);
        if (why) problems.push(`${key}: ${why}`);
      }
    }
    return problems;
  }
}

/** End time for ordering: an unknown write may land any time after it starts. */
const effEnd = (w: HistOp) => (w.outcome === 'unknown' ? Infinity : w.end);

/** Is `w` surely overwritten before time `t` by another write that surely followed it? */
function overwrittenBefore(w: HistOp, writes: HistOp[], t: number): boolean {
  return writes.some((w2) => w2 !== w && w2.outcome === 'ok' && w2.start > effEnd(w) && w2.end < t);
}

function explain(writes: HistOp[], g: HistOp): string | undefined {
  if (g.value === null) {
    // Initial "absent" state, unless an acknowledged write surely came before.
    const anyBefore = writes.some((w) => w.outcome === 'ok' && w.end < g.start);
    if (!anyBefore) return undefined;
    const ok = writes.some((w) => w.kind === 'del' && w.start < g.end && !overwrittenBefore(w, writes, g.start));
    if (ok) return undefined;
    const last = writes.filter((w) => w.outcome === 'ok' && w.end < g.start).sort((a, b) => b.end - a.end)[0]!;
    return `read "not found" at ${g.start.toFixed(1)} but the ${last.kind} of ${JSON.stringify(last.value)} was acknowledged at ${last.end.toFixed(1)} (lost write)`;
  }
  const src = writes.find((w) => w.kind === 'put' && w.value === g.value);
  if (!src) return `read ${JSON.stringify(g.value)} that no write produced (or one that surely failed)`;
  if (src.start > g.end) return `read ${JSON.stringify(g.value)} before it was written`;
  if (overwrittenBefore(src, writes, g.start)) {
    const by = writes.find((w2) => w2 !== src && w2.outcome === 'ok' && w2.start > effEnd(src) && w2.end < g.start)!;
    return by.kind === 'del'
      ? `read ${JSON.stringify(g.value)} after it was deleted (acknowledged at ${by.end.toFixed(1)}): a delete came back`
      : `read stale ${JSON.stringify(g.value)}; ${JSON.stringify(by.value)} was acknowledged at ${by.end.toFixed(1)}`;
  }
  return undefined;
}

export interface WorkloadOptions {
  url: string;
  keys: string[];
  concurrency: number;
  /** Mix of operations; the rest are reads. */
  putRatio: number;
  delRatio: number;
  stop: () => boolean;
  /** Pause between operations per client (ms), to limit the load. */
  pauseMs?: number;
  /** New connection per request, so requests spread over all router workers. */
  fresh?: boolean;
}

/**
 * What a client may conclude from an answer:
 *  - 2xx, and 404 for a delete or read: done;
 *  - 502 (connection to the shard lost after sending), 504 (no answer in
 *    time) or no answer at all: a write may or may not have landed, a read
 *    learned nothing;
 *  - 503 (shard unavailable or overloaded, topology changing, freeze, Redis
 *    unavailable) and 4xx: refused before anything was written;
 *  - 500: nobody knows, so a write counts as unknown (serverErrors() shows it).
 */
function outcomeOf(kind: HistOp['kind'], res: HttpResult | undefined): Outcome {
  if (!res) return 'unknown';
  const s = res.status;
  if (s >= 200 && s < 300) return 'ok';
  if (s === 404 && kind !== 'put') return 'ok';
  if (s === 502 || s === 504 || s === 500) return kind === 'get' ? 'fail' : 'unknown';
  return 'fail';
}

/** Run clients that put, delete and read keys; every op goes into `h`. */
export async function runWorkload(h: History, o: WorkloadOptions): Promise<void> {
  const agent = keepAliveAgent(o.concurrency);
  let seq = 0;
  const client = async (c: number) => {
    while (!o.stop()) {
      const n = seq++;
      const key = o.keys[Math.floor(Math.random() * o.keys.length)]!;
      const r = Math.random();
      const kind: HistOp['kind'] = r < o.putRatio ? 'put' : r < o.putRatio + o.delRatio ? 'del' : 'get';
      const value = kind === 'put' ? `v${c}-${n}` : null;
      const url = `${o.url}/v1/kv/${encodeURIComponent(key)}`;
      const start = h.now();
      let res: HttpResult | undefined;
      try {
        const opt = o.fresh ? { fresh: true, timeoutMs: 15_000 } : { agent, timeoutMs: 15_000 };
        res =
          kind === 'put'
            ? await request('PUT', url, { ...opt, body: value! })
            : kind === 'del'
              ? await request('DELETE', url, opt)
              : await request('GET', url, opt);
      } catch {
        res = undefined;
      }
      const end = h.now();
      h.add({
        kind,
        key,
        start,
        end,
        value: kind === 'get' ? (res?.status === 200 ? res.text : null) : value,
        outcome: outcomeOf(kind, res),
        status: res ? res.status : 'error',
      });
      if (o.pauseMs) await sleep(o.pauseMs); // pacing, not synchronisation
    }
  };
  try {
    await Promise.all(Array.from({ length: o.concurrency }, (_, c) => client(c)));
  } finally {
    await agent.close();
  }
}

/** How long a final read keeps trying while it is refused with 503 (a shard just restarted, a router reconnecting). */
const FINAL_READ_PATIENCE_MS = 10_000;
const FINAL_READ_RETRY_MS = 50;

/**
 * Read every key once more at the end: the final state must be explainable
 * too. A read refused with 503 learned nothing and is tried again for a
 * while; any key that still gets no answer (200 or 404) throws, since a
 * missing final read could hide a lost write.
 */
export async function finalReads(h: History, url: string, keys: string[]): Promise<void> {
  const agent = keepAliveAgent(16);
  const todo = [...keys];
  const failed: string[] = [];
  const deadline = Date.now() + FINAL_READ_PATIENCE_MS;
  try {
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let key = todo.pop(); key !== undefined; key = todo.pop()) {
          for (;;) {
            const start = h.now();
            const res = await request('GET', `${url}/v1/kv/${encodeURIComponent(key)}`, { agent });
            const answered = res.status === 200 || res.status === 404;
            h.add({
              kind: 'get',
              key,
              start,
              end: h.now(),
              value: res.status === 200 ? res.text : null,
              outcome: answered ? 'ok' : 'fail',
              status: res.status,
            });
            if (answered) break;
            if (res.status !== 503 || Date.now() > deadline) {
              failed.push(`${key}: ${res.status} ${res.text.slice(0, 200)}`);
              break;
            }
            await sleep(FINAL_READ_RETRY_MS);
          }
        }
      }),
    );
  } finally {
    await agent.close();
  }
  if (failed.length > 0) throw new Error(`${failed.length} final reads got no answer, e.g. ${failed.slice(0, 3).join('; ')}`);
}

/**
 * Start a recorded workload over `keys` (whose current values are `initial`)
 * and return a function that stops it, reads every key once more and hands
 * back the history to check.
 */
export function startCheckedWorkload(
  url: string,
  keys: string[],
  initial: (key: string) => string,
  opts: Partial<Pick<WorkloadOptions, 'concurrency' | 'putRatio' | 'delRatio' | 'pauseMs'>> = {},
): { history: History; finish: () => Promise<History> } {
  const h = new History();
  h.preload(keys.map((k) => [k, initial(k)]));
  let stop = false;
  const load = runWorkload(h, { url, keys, concurrency: 8, putRatio: 0.4, delRatio: 0.1, ...opts, stop: () => stop });
  return {
    history: h,
    finish: async () => {
      stop = true;
      await load;
      await finalReads(h, url, keys);
      return h;
    },
  };
}
