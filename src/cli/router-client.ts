// The CLI's client of a router's HTTP API (the admin API for `kv shards` and
// `kv rebalance`), with the bearer token when one is set.

export interface RouterClientOptions {
  url: string;
  token?: string | undefined;
}

interface StreamView {
  source: string;
  target: string;
  keysDone: number;
  keysTotal: number;
  bytesDone: number;
  bytesTotal: number;
  done: boolean;
  lastError?: string;
}
interface JobView {
  id: string;
  kind: string;
  shardId: string;
  state: string;
  direction: string;
  error?: string;
  startedAt?: number;
  finishedAt?: number;
  pacing?: JobPacing;
  streams: StreamView[];
}
export interface JobPacing {
  mode: 'adaptive' | 'fixed';
  keysPerSec: number | null;
  phase: string | null;
  fgP99Ms: number | null;
  baselineP99Ms: number | null;
  ratio: number | null;
}
export interface StatusView {
  job: JobView | null;
  progress?: { keysDone: number; keysTotal: number; bytesDone: number; bytesTotal: number; keysPerSec: number; etaSeconds: number | null };
  foregroundErrors?: number;
  coordinator?: string | null;
}

export class RouterClient {
  constructor(readonly o: RouterClientOptions) {}

  async call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(`${this.o.url.replace(/\/$/, '')}${path}`, {
      method,
      headers: {
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(this.o.token ? { authorization: `Bearer ${this.o.token}` } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    if (res.status >= 400) {
      const e = parsed as { code?: string; message?: string };
      throw new Error(e?.code ? `${e.code}: ${e.message}` : `${res.status} ${text}`);
    }
    return { status: res.status, body: parsed as T };
  }

  status(): Promise<StatusView> {
    return this.call<StatusView>('GET', '/v1/admin/rebalance').then((r) => r.body);
  }
}
