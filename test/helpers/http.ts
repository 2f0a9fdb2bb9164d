// The tests' HTTP client: the undici client of dev/http.ts, plus a way to
// reach every router worker. `fresh: true` opens a new connection for the
// request, so the cluster primary hands it to the next worker (round robin).
import { Client } from 'undici';
import { get, type HttpResult } from '../../dev/http.js';

export { request, get, put, del, keepAliveAgent, type HttpResult } from '../../dev/http.js';

/** Reach every router worker: fresh connections until each worker id (`x-kv-worker`) has answered. */
export async function onEveryWorker<T>(url: string, workers: number, fn: (res: HttpResult) => T, maxTries = 50): Promise<Map<string, T>> {
  const seen = new Map<string, T>();
  for (let i = 0; i < maxTries && seen.size < workers; i++) {
    const res = await get(url, { fresh: true });
    const w = String(res.headers['x-kv-worker']);
    if (!seen.has(w)) seen.set(w, fn(res));
  }
  if (seen.size < workers) throw new Error(`reached only ${seen.size} of ${workers} workers`);
  return seen;
}

/** A server-sent events subscription: every `data:` payload, parsed as JSON. */
export interface EventStream<T> {
  readonly events: readonly T[];
  /** The first event (already received or still to come) that matches; rejects on timeout or when the stream ends. */
  waitFor(pred: (e: T) => boolean, timeoutMs: number, what?: string): Promise<T>;
  close(): Promise<void>;
}

/** Subscribe to `url` and resolve once the first event has arrived (the server is then surely subscribed). */
export async function openEventStream<T>(url: string, timeoutMs = 10_000, headers: Record<string, string> = {}): Promise<EventStream<T>> {
  const u = new URL(url);
  const client = new Client(u.origin);
  const events: T[] = [];
  const waiters = new Set<() => void>();
  let ended = false;
  const wake = () => {
    for (const w of waiters) w();
  };
  try {
    const res = await client.request({
      method: 'GET',
      path: u.pathname + u.search,
      headers: { accept: 'text/event-stream', ...headers },
      headersTimeout: timeoutMs,
      bodyTimeout: 0,
    });
    if (res.statusCode !== 200) throw new Error(`GET ${url}: ${res.statusCode} ${await res.body.text()}`);
    let buf = '';
    res.body.setEncoding('utf8');
    res.body.on('data', (chunk: string) => {
      buf += chunk;
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = block
          .split('\n')
          .filter((l) => l.startsWith('data: '))
          .map((l) => l.slice(6))
          .join('\n');
        if (data) events.push(JSON.parse(data) as T);
      }
      wake();
    });
    res.body.on('error', () => undefined);
    res.body.on('close', () => {
      ended = true;
      wake();
    });
  } catch (err) {
    await client.destroy();
    throw err;
  }
  const stream: EventStream<T> = {
    events,
    waitFor: (pred, ms, what = 'an event') =>
      new Promise<T>((resolve, reject) => {
        const check = () => {
          const e = events.find(pred);
          if (e !== undefined) finish(() => resolve(e));
          else if (ended) finish(() => reject(new Error(`event stream ${url} ended before ${what}; got ${events.length} events`)));
        };
        const timer = setTimeout(() => finish(() => reject(new Error(`no ${what} on ${url} within ${ms} ms; got ${events.length} events`))), ms);
        const finish = (settle: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          settle();
        };
        waiters.add(check);
        check();
      }),
    close: async () => {
      ended = true;
      await client.destroy();
    },
  };
  try {
    await stream.waitFor(() => true, timeoutMs, 'the first event');
  } catch (err) {
    await stream.close();
    throw err;
  }
  return stream;
}
