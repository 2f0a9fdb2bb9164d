// The CLI's client of a router's HTTP API (the admin API for `kv shards` and
// `kv rebalance`), with the bearer token when one is set.

export interface RouterClientOptions {
  url: string;
  token?: string | undefined;
  /** Give up on a request after this long (none by default). */
  timeoutMs?: number | undefined;
  /** Abort every request when this fires (e.g. `kv top` quitting). */
  signal?: AbortSignal | undefined;
}

/** One shard as GET /v1/admin/shards lists it. */
export interface AdminShard {
  id: string;
  state: string;
  weight: number | null;
  share: number;
  registered: boolean;
  keys: number | null;
  bytes: number | null;
  dataAddr: string;
  /** Milliseconds since the shard's last heartbeat, where the admin API reports it. */
  heartbeatAgeMs?: number | null;
}
export interface AdminShards {
  epoch: number;
  migration: { jobId: string } | null;
  shards: AdminShard[];
}

/** A router's error answer: its HTTP status and, when it sent one, its KV_ERR_* code. */
export class RouterHttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

interface StreamView {
  source: string;
  target: string;
  keysDone: number;
  keysTotal: number;
  bytesDone: number;
  bytesTotal: number;
  done: boolean;
  /** Records its source has purged, and whether the purge of its ranges is done. */
  keysPurged?: number;
  purged?: boolean;
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
  progress?: { keysDone: number; keysTotal: number; bytesDone: number; bytesTotal: number; keysPerSec: number; etaSeconds: number | null; keysPurged?: number };
  foregroundErrors?: number;
  coordinator?: string | null;
}

export class RouterClient {
  constructor(readonly o: RouterClientOptions) {}

  #signal(): AbortSignal | undefined {
    const list = [this.o.signal, this.o.timeoutMs !== undefined ? AbortSignal.timeout(this.o.timeoutMs) : undefined].filter((s) => s !== undefined);
    return list.length > 1 ? AbortSignal.any(list) : list[0];
  }

  async #fetch(method: string, path: string, body?: unknown): Promise<{ res: Response; text: string }> {
    const signal = this.#signal();
    const res = await fetch(`${this.o.url.replace(/\/$/, '')}${path}`, {
      method,
      headers: {
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(this.o.token ? { authorization: `Bearer ${this.o.token}` } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      ...(signal ? { signal } : {}),
    });
    return { res, text: await res.text() };
  }

  /** GET a plain-text resource (e.g. /metrics); an error answer throws a RouterHttpError. */
  async text(path: string): Promise<string> {
    const { res, text } = await this.#fetch('GET', path);
    if (res.status >= 400) throw errorOf(res.status, text);
    return text;
  }

  async call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const { res, text } = await this.#fetch(method, path, body);
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    if (res.status >= 400) throw errorOf(res.status, text);
    return { status: res.status, body: parsed as T };
  }

  status(): Promise<StatusView> {
    return this.call<StatusView>('GET', '/v1/admin/rebalance').then((r) => r.body);
  }
}

function errorOf(status: number, text: string): RouterHttpError {
  let e: { code?: unknown; message?: unknown } = {};
  try {
    e = JSON.parse(text) as typeof e;
  } catch {
    /* not JSON */
  }
  const code = typeof e?.code === 'string' ? e.code : undefined;
  return new RouterHttpError(status, code, code ? `${code}: ${String(e.message)}` : `${status} ${text}`);
}
