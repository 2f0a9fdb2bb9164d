// Client loops for fault tests: each loop records every operation with its
// outcome so tests can check the invariants afterwards.
import http from 'node:http';
import { request, type HttpResult } from './http.js';

export interface OpRecord {
  kind: 'put' | 'get';
  key: string;
  value: string;
  status: number | 'error';
  error?: string;
  start: number;
  end: number;
}

export interface LoadOptions {
  url: string;
  concurrency: number;
  /** Keys are `${prefix}${n % keySpace}`; each put writes a new increasing value. */
  keySpace: number;
  prefix: string;
  /** Fraction of operations that are reads. */
  readRatio: number;
  stop: () => boolean;
  maxOps?: number;
}

export async function runLoad(o: LoadOptions): Promise<OpRecord[]> {
  const records: OpRecord[] = [];
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency });
  let seq = 0;
  const maxOps = o.maxOps ?? 200_000;
  const loop = async (worker: number) => {
    while (!o.stop() && seq < maxOps) {
      const n = seq++;
      const key = `${o.prefix}${(n * 7 + worker) % o.keySpace}`;
      const isRead = Math.random() < o.readRatio;
      const value = isRead ? '' : `${n}`;
      const start = Date.now();
      let res: HttpResult | undefined;
      let error: string | undefined;
      try {
        res = isRead
          ? await request('GET', `${o.url}/v1/kv/${key}`, { agent, timeoutMs: 10_000 })
          : await request('PUT', `${o.url}/v1/kv/${key}`, { agent, body: value, timeoutMs: 10_000 });
      } catch (err) {
        error = (err as Error).message;
      }
      records.push({ kind: isRead ? 'get' : 'put', key, value: isRead && res?.status === 200 ? res.text : value, status: res ? res.status : 'error', ...(error ? { error } : {}), start, end: Date.now() });
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, (_, i) => loop(i)));
  agent.destroy();
  return records;
}

/**
 * Per key, the value read at the end must be the latest acknowledged write or
 * a write that did not get a clear answer and started after it (it may have
 * landed). Returns the list of violations.
 */
export function checkFinal(records: OpRecord[], finalValues: Map<string, string | null>): string[] {
  const problems: string[] = [];
  const byKey = new Map<string, OpRecord[]>();
  for (const r of records) if (r.kind === 'put') (byKey.get(r.key) ?? byKey.set(r.key, []).get(r.key)!).push(r);
  for (const [key, puts] of byKey) {
    const acked = puts.filter((p) => p.status === 204);
    const final = finalValues.get(key) ?? null;
    if (acked.length === 0) continue;
    const lastAck = acked.reduce((a, b) => (b.end > a.end ? b : a));
    // Acceptable: any write not known to have finished before lastAck started.
    const ok = new Set(puts.filter((p) => p === lastAck || p.end >= lastAck.start && (p.status === 204 || p.status === 'error' || p.status === 502 || p.status === 504)).map((p) => p.value));
    if (final === null) problems.push(`${key}: acknowledged write ${lastAck.value} lost (key missing)`);
    else if (!ok.has(final)) problems.push(`${key}: read ${final}, expected ${lastAck.value} or a concurrent write`);
  }
  return problems;
}
