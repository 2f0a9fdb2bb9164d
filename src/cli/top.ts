// `kv top`: read the cluster every interval (the admin API's shard list and
// job through one router, /metrics of every router host given) and redraw a
// full-screen table in place; or, with --once, print one snapshot and exit.
import { setTimeout as sleep } from 'node:timers/promises';
import { parsePromText, type Scrape } from './prom-text.js';
import { RouterClient, RouterHttpError, type AdminShards, type StatusView } from './router-client.js';
import { buildSnapshot, type RouterScrapes, type TopSnapshot } from './top-model.js';
import { renderSnapshot, type Line, type Style } from './top-render.js';

export interface TopConfig {
  urls: readonly string[];
  token: string | undefined;
  /** Where the token came from, to name it when the router refuses it. */
  tokenSource: string;
  intervalMs: number;
  timeoutMs: number;
  lateMs: number;
}

/** One line that says what went wrong talking to `url`, and for a 401 where the token comes from. */
export function describeError(url: string, path: string, err: unknown, c: Pick<TopConfig, 'token' | 'tokenSource' | 'timeoutMs'>): string {
  if (err instanceof RouterHttpError) {
    if (err.status === 401) {
      return c.token
        ? `router ${url} refused the admin token from ${c.tokenSource} (${err.code ?? '401'}): check KV_ADMIN_TOKEN or --token`
        : `router ${url} needs the admin token (${err.code ?? '401'}): set KV_ADMIN_TOKEN or pass --token (a local \`kv up\` keeps it in its data dir's secrets.json)`;
    }
    return `router ${url}: GET ${path} answered ${err.message.slice(0, 200)}`;
  }
  const e = err as Error & { cause?: { code?: string; message?: string } };
  if (e?.name === 'TimeoutError') return `router ${url} did not answer GET ${path} within ${c.timeoutMs} ms`;
  if (e?.name === 'AbortError') return `router ${url}: GET ${path} aborted`;
  if (e?.cause) return `router ${url} unreachable: ${e.cause.code ?? e.cause.message ?? String(e.cause)}`;
  return `router ${url}: GET ${path}: ${e?.message ?? String(err)}`;
}

/** Reads the cluster; keeps each router host's previous scrape so every read yields rates over the last interval. */
export class TopReader {
  readonly #c: TopConfig;
  readonly #signal: AbortSignal | undefined;
  readonly #last = new Map<string, { scrape: Scrape; atMs: number }>();

  constructor(c: TopConfig, signal?: AbortSignal) {
    this.#c = c;
    this.#signal = signal;
  }

  #client(url: string): RouterClient {
    return new RouterClient({ url, token: this.#c.token, timeoutMs: this.#c.timeoutMs, signal: this.#signal });
  }

  async #scrape(url: string): Promise<RouterScrapes> {
    const before = this.#last.get(url);
    // After a failed scrape the next good one compares with the last good one: still a correct rate, over a longer window.
    const failed = (error: string): RouterScrapes => ({ url, prev: null, cur: null, seconds: 0, error });
    let text: string;
    try {
      text = await this.#client(url).text('/metrics');
    } catch (err) {
      return failed(describeError(url, '/metrics', err, this.#c));
    }
    const atMs = performance.now();
    let scrape: Scrape;
    try {
      scrape = parsePromText(text);
    } catch (err) {
      return failed(`router ${url}: /metrics is not Prometheus text: ${(err as Error).message}`);
    }
    this.#last.set(url, { scrape, atMs });
    return { url, prev: before?.scrape ?? null, cur: scrape, seconds: before ? (atMs - before.atMs) / 1000 : 0, error: null };
  }

  /** The admin API's view through the first router that answers. */
  async #admin(): Promise<{ router: string; shards: AdminShards | null; status: StatusView | null; errors: string[] }> {
    const errors: string[] = [];
    for (const url of this.#c.urls) {
      const c = this.#client(url);
      try {
        const [shards, status] = await Promise.all([c.call<AdminShards>('GET', '/v1/admin/shards').then((r) => r.body), c.status()]);
        return { router: url, shards, status, errors: [] };
      } catch (err) {
        errors.push(describeError(url, '/v1/admin', err, this.#c));
      }
    }
    return { router: this.#c.urls[0]!, shards: null, status: null, errors };
  }

  /** One read: every router's /metrics, and (unless `admin` is false) the shards and the job. */
  async read(admin = true): Promise<TopSnapshot> {
    const [a, routers] = await Promise.all([
      admin ? this.#admin() : Promise.resolve({ router: this.#c.urls[0]!, shards: null, status: null, errors: [] }),
      Promise.all(this.#c.urls.map((u) => this.#scrape(u))),
    ]);
    return buildSnapshot({ router: a.router, shards: a.shards, status: a.status, routers, errors: a.errors, at: new Date() }, { lateMs: this.#c.lateMs });
  }
}

/** --once: two scrapes `intervalMs` apart, one snapshot. */
export async function topOnce(c: TopConfig): Promise<TopSnapshot> {
  const reader = new TopReader(c);
  await reader.read(false);
  await sleep(c.intervalMs);
  return reader.read();
}

export function snapshotText(s: TopSnapshot, intervalMs: number): string {
  return `${renderSnapshot(s, { live: false, intervalMs })
    .map((l) => l.text)
    .join('\n')}\n`;
}

const ESC = '\x1b[';
const STYLES: Record<Style, [string, string]> = {
  plain: ['', ''],
  title: [`${ESC}1m`, `${ESC}22m`],
  head: [`${ESC}1m`, `${ESC}22m`],
  error: [`${ESC}1;31m`, `${ESC}0m`],
  late: [`${ESC}33m`, `${ESC}39m`],
  down: [`${ESC}1;31m`, `${ESC}0m`],
  dim: [`${ESC}2m`, `${ESC}22m`],
};

/** One frame: cursor home, each line cut to the width and cleared to its end, the rest of the screen cleared. No full clear, so no flicker. */
export function frame(lines: readonly Line[], columns: number, rows: number, color: boolean): string {
  const fit = lines.slice(0, Math.max(1, rows));
  if (lines.length > fit.length && fit.length > 0)
    fit[fit.length - 1] = { text: `... ${lines.length - fit.length + 1} more lines (a taller terminal shows them)`, style: 'dim' };
  const body = fit.map((l) => {
    const text = l.text.length > columns ? `${l.text.slice(0, Math.max(0, columns - 1))}…` : l.text;
    const [on, off] = color ? STYLES[l.style] : ['', ''];
    return `${on}${text}${off}${ESC}K`;
  });
  return `${ESC}H${body.join('\r\n')}${ESC}J`;
}

/** The live view: the alternate screen, redrawn every interval until q, Ctrl-C or SIGTERM; the terminal is restored on every way out. */
export async function topLive(c: TopConfig): Promise<void> {
  const out = process.stdout;
  const stdin = process.stdin;
  const stop = new AbortController();
  const color = !process.env['NO_COLOR'];
  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    if (stdin.isTTY) stdin.setRawMode(false);
    stdin.pause();
    out.write(`${ESC}0m${ESC}?25h${ESC}?1049l`);
  };
  const quit = () => stop.abort();
  process.on('exit', restore);
  process.on('SIGINT', quit);
  process.on('SIGTERM', quit);
  const onKey = (b: Buffer) => {
    // q, Q, Ctrl-C (raw mode delivers it as a byte, not as SIGINT).
    if (b.includes(0x71) || b.includes(0x51) || b.includes(0x03)) quit();
  };
  if (stdin.isTTY) {
    stdin.setRawMode(true);
    stdin.on('data', onKey);
    stdin.resume();
  }
  out.write(`${ESC}?1049h${ESC}?25l${ESC}H${ESC}2J`);
  const reader = new TopReader(c, stop.signal);
  let last: TopSnapshot | null = null;
  const draw = () => {
    if (last && !restored) out.write(frame(renderSnapshot(last, { live: true, intervalMs: c.intervalMs }), out.columns || 120, out.rows || 40, color));
  };
  out.on('resize', draw);
  try {
    while (!stop.signal.aborted) {
      const started = performance.now();
      const snap = await reader.read();
      if (stop.signal.aborted) break;
      last = snap;
      draw();
      await sleep(Math.max(0, c.intervalMs - (performance.now() - started)), undefined, { signal: stop.signal }).catch(() => undefined);
    }
  } finally {
    out.off('resize', draw);
    stdin.off('data', onKey);
    process.off('SIGINT', quit);
    process.off('SIGTERM', quit);
    restore();
    process.off('exit', restore);
  }
}
