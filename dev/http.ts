// The HTTP client of the tests and benchmarks (undici). `fresh: true` opens
// a new connection for the request, so the cluster primary hands it to the
// next router worker (round robin): that is how a caller reaches every worker.
import { Agent, Client, request as undiciRequest, type Dispatcher } from 'undici';

export interface HttpResult {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  readonly text: string;
  json<T = Record<string, unknown>>(): T;
}

export interface HttpOptions {
  readonly headers?: Record<string, string>;
  readonly body?: string | Uint8Array;
  /** A new connection, closed after the response. */
  readonly fresh?: boolean;
  /** Connection pool to use (default: one shared keep-alive agent). */
  readonly agent?: Dispatcher;
  readonly timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 20_000;

/** A keep-alive pool of at most `connections` sockets per origin. */
export function keepAliveAgent(connections: number): Agent {
  return new Agent({ connections, pipelining: 1 });
}

let shared: Agent | undefined;

/** Close the shared pool (a draining router worker waits for open connections to go). */
export async function closeSharedAgent(): Promise<void> {
  const a = shared;
  shared = undefined;
  await a?.close();
}

export async function request(method: string, url: string, o: HttpOptions = {}): Promise<HttpResult> {
  const timeout = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const oneShot = o.fresh ? new Client(new URL(url).origin, { pipelining: 1 }) : undefined;
  const dispatcher = oneShot ?? o.agent ?? (shared ??= keepAliveAgent(64));
  try {
    const res = await undiciRequest(url, {
      method: method as Dispatcher.HttpMethod,
      ...(o.headers ? { headers: o.headers } : {}),
      ...(o.body !== undefined ? { body: o.body } : {}),
      dispatcher,
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
    const body = Buffer.from(await res.body.arrayBuffer());
    return {
      status: res.statusCode,
      headers: res.headers,
      body,
      text: body.toString('utf8'),
      json: <T>() => JSON.parse(body.toString('utf8')) as T,
    };
  } finally {
    await oneShot?.close();
  }
}

export const get = (url: string, o?: HttpOptions) => request('GET', url, o);
export const put = (url: string, body: string | Uint8Array, o: HttpOptions = {}) => request('PUT', url, { ...o, body });
export const del = (url: string, o?: HttpOptions) => request('DELETE', url, o);

/** GET a JSON document; anything but 200 is an error. */
export async function getJson<T>(url: string, o?: HttpOptions): Promise<T> {
  const res = await get(url, o);
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${res.text.slice(0, 200)}`);
  return res.json<T>();
}

/** Run `fn` over `items` with at most `limit` in flight. */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}
