// A small HTTP client over node:http. `fresh: true` opens a new connection for
// the request, so the cluster primary hands it to the next worker (round
// robin): that is how tests reach every router worker.
import http from 'node:http';

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  text: string;
  json<T = Record<string, unknown>>(): T;
}

export interface HttpOptions {
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  fresh?: boolean;
  agent?: http.Agent;
  timeoutMs?: number;
}

const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 64 });

export function request(method: string, url: string, o: HttpOptions = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method,
      headers: { ...(o.body !== undefined ? { 'content-length': String(Buffer.byteLength(o.body)) } : {}), ...o.headers },
      agent: o.fresh ? false : (o.agent ?? keepAlive),
      timeout: o.timeoutMs ?? 20_000,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body,
          text: body.toString('utf8'),
          json: <T,>() => JSON.parse(body.toString('utf8')) as T,
        });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    if (o.body !== undefined) req.write(o.body);
    req.end();
  });
}

export const get = (url: string, o?: HttpOptions) => request('GET', url, o);
export const put = (url: string, body: string | Uint8Array, o: HttpOptions = {}) => request('PUT', url, { ...o, body });
export const del = (url: string, o?: HttpOptions) => request('DELETE', url, o);

/** Reach every router worker: fresh connections until each worker id was seen. */
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
