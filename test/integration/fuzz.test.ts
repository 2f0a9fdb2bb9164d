// Hostile input on every port of a running cluster, seeded so that a failing
// run can be repeated: the router API, each shard's HTTP port and each
// shard's data port get malformed, oversized, lying, forged and unauthenticated
// requests, mixed at random from KV_FUZZ_SEED (KV_FUZZ_ITERATIONS cases;
// KV_FUZZ_CASES=3,17 runs only those), and named cases that always run for
// the defects this kind of input once found.
//
// Tenants, sessions and the paged scan get their own cases, on a second
// router with dataAuth=true on the same Redis and shards: forged, revoked,
// ended and expired credentials, cookies of every shape, page tokens of
// other callers, tampered and reused, bad scan parameters, keys and prefixes
// that name a tenant namespace (U+FFFF), and the tenant admin API. Two
// tenants hold the same keys with their own values (B's marked); no answer
// to anyone but B may show B's values or keys, and A reads its own.
//
// Every case: only documented 4xx answers (status = ERRORS[code].status, body
// {code, message, requestId}) and never a 5xx; on the data port a coded
// refusal or the connection closed. Every write a case attempts is meant to
// be refused. Afterwards: every process still runs (the same router workers),
// no shard holds a record but those of the well-behaved client that ran
// throughout (and saw no error) and the few the named cases wrote on purpose,
// every key a case tried is absent on every shard and through the router,
// and the topology and the rebalance job are as they were; tenant B's keys
// hold their values, tenant A holds nothing but its keys and the ones its
// cases may write, both routers run with the same workers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestCluster, startRouter, type RouterProc } from '../helpers/procs.js';
import { request, keepAliveAgent, type HttpResult } from '../helpers/http.js';
import { ADMIN_AUTH, TEST_ADMIN_TOKEN, TEST_CLUSTER_SECRET } from '../helpers/secrets.js';
import { rawHttp, type RawPiece, type RawResponse } from '../helpers/raw-http.js';
import { bearer, createApiKey, login, logout, revokeApiKey, scanPage, tenantWithSession } from '../helpers/tenants.js';
import { Rng, WirePeer, caseSeed, envInt, httpProblems, preview, wireRefusalProblems, type HttpExpect } from '../helpers/fuzz.js';
import { closeSharedAgent, forEachLimit } from '../../dev/http.js';
import { LIMIT_DEFAULTS, type Limits } from '../../src/core/config.js';
import { isErrorCode } from '../../src/core/errors.js';
import { storedKey } from '../../src/core/tenant.js';
import { waitUntil } from '../../src/local/wait.js';
import { compareKeys } from '../../src/router/scan.js';
import { HANDSHAKE_VERSION, newNonce } from '../../src/core/handshake.js';
import { encodeFrame } from '../../src/core/protocol.js';
import { POINT_MAX, keyPoint, type PointRange, type Ring } from '../../src/core/ring.js';
import { ringOf } from '../../src/core/topology.js';
import { decodeKeyFromPath, validateKey } from '../../src/core/validate.js';
import { RebalanceStore } from '../../src/rebalance/job-store.js';
import { MovedWriter, encodeRecord, readMoved, recordKey, type StoredRecord } from '../../src/shard/record.js';

const SEED = envInt('KV_FUZZ_SEED', 20_261_202);
const ITERATIONS = envInt('KV_FUZZ_ITERATIONS', 6000);
const ONLY = new Set(
  (process.env['KV_FUZZ_CASES'] ?? '')
    .split(',')
    .filter((s) => s.trim() !== '')
    .map(Number),
);
const REPLAY = `KV_FUZZ_SEED=${SEED} KV_FUZZ_ITERATIONS=${ITERATIONS} npx vitest run test/integration/fuzz.test.ts`;
/** Cases in flight at once: enough to overlap the slow ones, few enough for two cores. */
const CONCURRENCY = 6;
const CASE_TIMEOUT_MS = 20_000;

const MAX_VALUE = 64 * 1024;
const MAX_BODY = 256 * 1024;
const MAX_KEY = 200;
const MAX_HEADER = 8 * 1024;
const HEADERS_TIMEOUT_MS = 1000;
const REQUEST_TIMEOUT_MS = 2000;
const HANDSHAKE_TIMEOUT_MS = 500;
const MAX_BATCH = 100;
/** An answer that the server owes within a timeout comes within it plus this (a busy machine). */
const SLACK_MS = 2500;
const HTTP_LIMITS = {
  maxValueBytes: MAX_VALUE,
  maxBodyBytes: MAX_BODY,
  maxKeyBytes: MAX_KEY,
  maxHeaderBytes: MAX_HEADER,
  httpHeadersTimeoutMs: HEADERS_TIMEOUT_MS,
  httpRequestTimeoutMs: REQUEST_TIMEOUT_MS,
  httpTimeoutCheckMs: 100,
};
const LIMITS: Limits = { ...LIMIT_DEFAULTS, maxValueBytes: MAX_VALUE, maxKeyBytes: MAX_KEY };
const TOKEN = TEST_ADMIN_TOKEN;

interface ShardPorts {
  readonly id: string;
  readonly http: number;
  readonly data: number;
}

interface World {
  readonly router: number;
  readonly shards: readonly ShardPorts[];
  readonly ring: Ring;
  readonly epoch: number;
  /** The topology as it was before any case ran. */
  readonly topology: string;
}

let c: TestCluster;
let w: World;
let good: GoodClient;
let workerPids: number[] = [];
/** Keys the cases tried to write: none may exist afterwards. */
const tried = new Set<string>();
/** Keys the named cases wrote on purpose. */
const legit = new Set<string>();

beforeAll(async () => {
  c = await TestCluster.start({
    shards: 3,
    workers: 2,
    routerSet: { ...HTTP_LIMITS, maxBatchOps: MAX_BATCH },
    shardSet: { ...HTTP_LIMITS, handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS },
  });
  const t = await c.store.get();
  w = {
    router: c.router.port,
    shards: c.shards.map((s) => ({ id: s.id, http: s.adminPort, data: s.dataPort })),
    ring: ringOf(t),
    epoch: t.epoch,
    topology: JSON.stringify(t),
  };
  workerPids = [...c.router.workerPids];
  good = new GoodClient(c.url);
  good.start(2);
  tw = await startTenantWorld();
  goodA = new GoodClient(tw.url, bearer(tw.A.session), 'gooda');
  goodA.start(1);
}, 90_000);

afterAll(async () => {
  await good?.stop();
  await goodA?.stop();
  // Idle keep-alive connections would hold a draining router.
  await closeSharedAgent();
  await Promise.all(extraRouters.map((r) => r.stop().catch(() => undefined)));
  await c?.stop();
}, 60_000);

// ---------------------------------------------------------------------------
// The well-behaved client: puts and reads back its own keys the whole time,
// on fresh connections now and then so it reaches both router workers.

class GoodClient {
  readonly keys = new Set<string>();
  readonly errors: string[] = [];
  readonly workers = new Set<string>();
  ops = 0;
  readonly #url: string;
  readonly #headers: Record<string, string>;
  readonly #prefix: string;
  #stopped = false;
  #done: Promise<unknown> = Promise.resolve();

  /** `headers`: its credentials (none: anonymous); its keys are `${prefix}-<lane>-<n>`. */
  constructor(url: string, headers: Record<string, string> = {}, prefix = 'good') {
    this.#url = url;
    this.#headers = headers;
    this.#prefix = prefix;
  }

  start(lanes: number): void {
    this.#done = Promise.all(Array.from({ length: lanes }, (_, l) => this.#lane(l)));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#done;
  }

  async #lane(lane: number): Promise<void> {
    const agent = keepAliveAgent(1);
    try {
      for (let n = 0; !this.#stopped; n++) {
        const key = `${this.#prefix}-${lane}-${n}`;
        const value = `v${lane}.${n}.${'x'.repeat(n % 64)}`;
        this.keys.add(key);
        try {
          const p = await request('PUT', `${this.#url}/v1/kv/${key}`, { body: value, headers: this.#headers, agent, fresh: n % 8 === 0, timeoutMs: 10_000 });
          this.workers.add(String(p.headers['x-kv-worker']));
          if (p.status !== 204) this.#error(`PUT ${key}: ${p.status} ${p.text.slice(0, 200)}`);
          const g = await request('GET', `${this.#url}/v1/kv/${key}`, { headers: this.#headers, agent, fresh: n % 8 === 4, timeoutMs: 10_000 });
          this.workers.add(String(g.headers['x-kv-worker']));
          if (g.status !== 200 || g.text !== value) this.#error(`GET ${key}: ${g.status} ${g.text.slice(0, 200)}`);
          this.ops += 2;
        } catch (err) {
          this.#error(`${key}: ${(err as Error).message}`);
        }
        // Pace it: it is there to notice, not to load the machine.
        await new Promise((r) => setTimeout(r, 10));
      }
    } finally {
      await agent.close();
    }
  }

  #error(e: string): void {
    if (this.errors.length < 100) this.errors.push(e);
  }
}

// ---------------------------------------------------------------------------
// Keys and ring helpers.

/** Note `key` as one a case tried to write (when it is a key at all). */
function tryKey(key: unknown): void {
  try {
    tried.add(validateKey(key, LIMITS));
  } catch {
    /* not a key: nothing could be stored under it */
  }
}

/** Note the key of a raw /kv/ path segment. */
function tryPath(raw: string): void {
  try {
    tried.add(validateKey(decodeKeyFromPath(raw), LIMITS));
  } catch {
    /* not a key */
  }
}

/** A key `${base}-<n>` that `shard` owns (or, with `owned = false`, one it does not). */
function keyOn(shard: string, base: string, owned = true): string {
  for (let n = 0; ; n++) {
    const k = `${base}-${n}`;
    if ((w.ring.ownerOf(k) === shard) === owned) return k;
  }
}

/** A point range that holds at least one of `shard`'s ring points (a shard refuses to purge it). */
function ownedRange(rng: Rng, shard: string): PointRange {
  const mine = w.ring.points().filter((p) => p.id === shard);
  const p = rng.pick(mine).point;
  return rng.pick([
    { lo: p, hi: p },
    { lo: Math.max(0, p - rng.int(1000)), hi: Math.min(POINT_MAX, p + rng.int(1000)) },
    { lo: 0, hi: POINT_MAX },
  ]);
}

function randomRange(rng: Rng): PointRange {
  const a = rng.int(POINT_MAX + 1);
  const b = rng.int(POINT_MAX + 1);
  return { lo: Math.min(a, b), hi: Math.max(a, b) };
}

// ---------------------------------------------------------------------------
// HTTP requests as bytes.

interface Draft {
  method: string;
  /** Raw path, already encoded. */
  path: string;
  /** Raw `name=value` query pieces. */
  query: string[];
  headers: Array<[string, string]>;
  body: Buffer | undefined;
  /** Send the body in this many chunks (whatever it is by then); undefined: with a Content-Length. */
  chunks: number | undefined;
  version: string;
  host: boolean;
}

const draft = (method: string, path: string, body?: Buffer | string): Draft => ({
  method,
  path,
  query: [],
  headers: [],
  body: body === undefined ? undefined : Buffer.from(body),
  chunks: undefined,
  version: 'HTTP/1.1',
  host: true,
});

function setHeader(d: Draft, name: string, value: string): void {
  d.headers = d.headers.filter(([n]) => n.toLowerCase() !== name.toLowerCase());
  d.headers.push([name, value]);
}

function setQuery(d: Draft, name: string, value?: string): void {
  d.query = d.query.filter((q) => q.split('=')[0] !== name);
  d.query.push(value === undefined ? name : `${name}=${value}`);
}

function chunked(rng: Rng, d: Draft): void {
  d.chunks = rng.range(1, 5);
}

function wire(d: Draft): Buffer {
  const target = d.path + (d.query.length > 0 ? `?${d.query.join('&')}` : '');
  const has = (name: string) => d.headers.some(([n]) => n.toLowerCase() === name);
  const lines = [`${d.method} ${target} ${d.version}`];
  if (d.host) lines.push('Host: 127.0.0.1');
  for (const [n, v] of d.headers) lines.push(`${n}: ${v}`);
  if (!has('connection')) lines.push('Connection: close');
  const body = d.body ?? Buffer.alloc(0);
  let payload = body;
  if (d.chunks) {
    if (!has('transfer-encoding')) lines.push('Transfer-Encoding: chunked');
    const parts: Buffer[] = [];
    for (let i = 0; i < d.chunks; i++) {
      const piece = body.subarray(Math.floor((i * body.length) / d.chunks), Math.floor(((i + 1) * body.length) / d.chunks));
      // An empty chunk would end the body.
      if (piece.length > 0) parts.push(Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n'));
    }
    parts.push(Buffer.from('0\r\n\r\n'));
    payload = Buffer.concat(parts);
  } else if (d.body !== undefined && !has('content-length')) {
    lines.push(`Content-Length: ${body.length}`);
  }
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), payload]);
}

interface HttpCheck {
  /** Method of the (first) request: a HEAD answer has no body. */
  readonly method?: string;
  /** The first answer must be exactly this. */
  readonly status?: number;
  readonly code?: string;
  /** The first answer byte must come within this. */
  readonly withinMs?: number;
  readonly timeoutMs?: number;
  /** Stop reading after this many answers (a connection the server keeps open). */
  readonly responses?: number;
  /** More checks of each answer (n: its index). */
  readonly inspect?: (res: RawResponse, n: number) => string[];
}

/** Send raw pieces to `port` and check every answer. */
async function httpCase(port: number, pieces: readonly RawPiece[], expect: HttpExpect, o: HttpCheck = {}): Promise<string[]> {
  const r = await rawHttp(port, pieces, {
    timeoutMs: o.timeoutMs ?? REQUEST_TIMEOUT_MS + 3 * SLACK_MS,
    methods: [o.method ?? 'GET'],
    ...(o.responses !== undefined ? { responses: o.responses } : {}),
  });
  if (r.responses.length === 0)
    return [`no answer (connection ${r.closed ? 'closed' : 'still open'} after ${Math.round(r.elapsedMs)} ms)`, `the request was ${requestPreview(pieces)}`];
  const problems: string[] = [];
  if (r.garbage.length > 0) problems.push(`bytes that are no HTTP answer: ${JSON.stringify(r.garbage.toString('latin1').slice(0, 120))}`);
  for (const [n, res] of r.responses.entries()) {
    problems.push(
      ...[...httpProblems(res, expect, n === 0 && o.method === 'HEAD'), ...(o.inspect?.(res, n) ?? [])].map((p) =>
        r.responses.length > 1 ? `answer ${n + 1}: ${p}` : p,
      ),
    );
  }
  const first = r.responses[0]!;
  const code = (first.json as { code?: unknown } | undefined)?.code;
  if (o.status !== undefined && first.status !== o.status) problems.push(`status ${first.status} (${String(code)}), expected ${o.status}`);
  // A HEAD answer has no body to carry the code.
  if (o.code !== undefined && o.method !== 'HEAD' && code !== o.code) problems.push(`code ${String(code)}, expected ${o.code}`);
  if (o.withinMs !== undefined && (r.firstByteMs ?? Infinity) > o.withinMs)
    problems.push(`answered after ${Math.round(r.firstByteMs ?? r.elapsedMs)} ms, expected within ${o.withinMs} ms`);
  if (problems.length > 0) problems.push(`the request was ${requestPreview(pieces)}`);
  return problems;
}

function requestPreview(pieces: readonly RawPiece[]): string {
  const text = pieces.map((p) => (typeof p === 'string' ? p : Buffer.isBuffer(p) ? p.toString('latin1') : `<${p.pauseMs} ms>`)).join('');
  return JSON.stringify(text.length > 600 ? `${text.slice(0, 600)}...` : text);
}

const send = (port: number, d: Draft, expect: HttpExpect, o: HttpCheck = {}) => httpCase(port, [wire(d)], expect, { method: d.method, ...o });

// ---------------------------------------------------------------------------
// The pieces requests are made of.

const KV = '/v1/kv/';
const UNKNOWN_PARAMS = [
  'dryRun=1',
  'TTL=5',
  'x',
  'x=',
  'ttl[]=5',
  '__proto__=1',
  '__proto__[x]=1',
  'constructor=1',
  'constructor.prototype=1',
  'toString=1',
  'hasOwnProperty=x',
  'valueOf=1',
  'ttl%00=5',
  'Ttl=5',
  'ttl%20=5',
];
const BAD_TTLS = ['', 'abc', '1.5', '-1', '0', '1e3', '0x10', '%205', '99999999999999', '%2B5', '5%00', '315360001'];
const BAD_TTL_HEADERS = ['abc', '-1', '1.5', '0', '', '1e3', '10 s', '+5', '0x10'];
const BAD_CONTENT_TYPES = ['not a type', 'text', 'text/', '/plain', 'a/b c', `${'x'.repeat(300)}/y`, 'text/plain, text/html', 'a//b', 'a/b/c', '"a/b"'];
const BAD_IF_MATCH = ['W/"1"', '"abc"', '1', '"1", "2"', '""', '"-1"', '"1.5"', '"99999999999999999"', '"1', '1"'];
const ABSENT_IF_MATCH = ['"1"', '"123456"', '*'];
const BAD_IF_NONE_MATCH = ['"3"', '**', 'W/"1"', '"*"', '*, *'];
const PROTO_NAMES = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', '__defineGetter__'];
const BAD_AUTH: ReadonlyArray<Array<[string, string]>> = [
  [],
  [['authorization', 'Bearer']],
  [['authorization', 'Bearer ']],
  [['authorization', 'Bearer short']],
  [['authorization', `Bearer ${TOKEN.slice(0, -1)}`]],
  [['authorization', `Bearer ${TOKEN}x`]],
  [['authorization', `bearer ${TOKEN}`]],
  [['authorization', `Bearer  ${TOKEN}`]],
  [['authorization', `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}`]],
  [['authorization', `Bearer ${TOKEN.toUpperCase()}`]],
  [['authorization', `Token ${TOKEN}`]],
  [['authorization', TOKEN]],
  [['authorization', `Bearer ${'a'.repeat(TOKEN.length)}`]],
  [['authorization', `Bearer ${'a'.repeat(5000)}`]],
  [['x-admin-token', TOKEN]],
];
const GOOD_AUTH: Array<[string, string]> = [['authorization', `Bearer ${TOKEN}`]];

/** A key as a raw path segment: mostly fine keys with the case's prefix, some hostile ones. */
function pathKey(rng: Rng, base: string): string {
  return rng.weighted<() => string>([
    [8, () => base],
    [1, () => `${base}/a/b`],
    [1, () => `${base}/../x`],
    [1, () => `../${base}`],
    [1, () => `%2e%2e/${base}`],
    [1, () => `${base}%2F%2e%2e%2F`],
    [1, () => encodeURIComponent(`${base}-é☃😀`)],
    [1, () => `${base}-__proto__`],
    [1, () => rng.pick(PROTO_NAMES)],
    [1, () => `${base}+a=b&c`],
    [4, () => badPathKey(rng, base)],
  ])();
}

/** A path segment that is no key (or a reserved name). */
function badPathKey(rng: Rng, base: string): string {
  return rng.pick([
    `${base}%00`,
    `${base}%FF`,
    `${base}%`,
    `${base}%G1`,
    `${base}%ED%A0%80`,
    `%C3%28${base}`,
    '',
    `${base}${'a'.repeat(MAX_KEY)}`,
    `${base}${'%C3%A9'.repeat(100)}`,
    '_batch',
    '_scan',
    `${base}%0A`,
    `${base}%7F`,
    `${base}%1B`,
  ]);
}

type Mutation = (d: Draft, rng: Rng) => void;

/** Changes a request may or may not survive (applied before the sure refusal, which has the last word). */
const MAYBE: readonly Mutation[] = [
  (d, r) => setHeader(d, 'content-encoding', r.pick(['gzip', 'br', 'identity', 'x'])),
  (d, r) => setHeader(d, 'content-type', r.pick(['application/json', 'text/plain; charset=utf-8', 'application/octet-stream', 'a/b; x=y'])),
  (d, r) => setHeader(d, `x-fuzz-${r.int(100)}`, r.pick(['', 'x', 'a'.repeat(1000), '\u00e9\u00ff'])),
  (d, r) => setHeader(d, r.pick(PROTO_NAMES), r.pick(['1', '{}', ''])),
  (d) => setHeader(d, 'expect', '100-continue'),
  (d, r) => chunked(r, d),
  (d, r) => setQuery(d, 'ttl', String(r.range(1, 1000))),
  (d) => setHeader(d, 'if-none-match', '*'),
  (d, r) => {
    d.body = r.pick([Buffer.alloc(0), Buffer.from('{"__proto__":{"polluted":true}}'), r.bytes(r.int(300))]);
  },
  (d) => {
    d.version = 'HTTP/1.0';
  },
  (d, r) => {
    for (let i = r.range(10, 150); i > 0; i--) d.headers.push([`x-many-${i}`, 'v']);
  },
  (d) => setHeader(d, 'accept', '*/*'),
];

/** Refusals a PUT of a key cannot survive, from its request line and headers alone. */
const PUT_HEAD_REFUSALS: readonly Mutation[] = [
  (d, r) => setQuery(d, 'ttl', r.pick(BAD_TTLS)),
  (d, r) => setHeader(d, 'x-kv-ttl', r.pick(BAD_TTL_HEADERS)),
  (d, r) => {
    setQuery(d, 'ttl', '100');
    setHeader(d, 'x-kv-ttl', r.pick(['abc', '101', '99', '-1']));
  },
  (d) => {
    d.headers = d.headers.filter(([n]) => n !== 'x-kv-ttl');
    d.headers.push(['x-kv-ttl', '5'], ['x-kv-ttl', '5']);
  },
  (d) => {
    d.query = d.query.filter((q) => !q.startsWith('ttl='));
    d.query.push('ttl=5', 'ttl=5');
  },
  (d, r) => d.query.push(r.pick(UNKNOWN_PARAMS)),
  (d, r) => setHeader(d, 'content-type', r.pick(BAD_CONTENT_TYPES)),
  (d, r) => setHeader(d, 'if-match', r.pick(BAD_IF_MATCH)),
  (d, r) => setHeader(d, 'if-match', r.pick(ABSENT_IF_MATCH)),
  (d, r) => setHeader(d, 'if-none-match', r.pick(BAD_IF_NONE_MATCH)),
  (d) => setHeader(d, 'expect', 'foo'),
  (d, r) => {
    d.method = r.pick(['POST', 'PATCH']);
  },
];

/** Refusals of a PUT, the body-size ones included. */
const PUT_REFUSALS: ReadonlyArray<readonly [number, Mutation]> = [
  ...PUT_HEAD_REFUSALS.map((m) => [4, m] as const),
  [
    2,
    (d, r) => {
      d.body = r.bytes(MAX_VALUE + r.range(1, 2000));
    },
  ],
  [
    1,
    (d, r) => {
      d.body = Buffer.alloc(MAX_BODY + r.range(1, 5000), 0x61);
    },
  ],
];

const DEL_REFUSALS: readonly Mutation[] = [
  (d, r) => setHeader(d, 'if-match', r.pick(BAD_IF_MATCH)),
  (d, r) => setHeader(d, 'if-match', r.pick(ABSENT_IF_MATCH)),
  (d, r) => d.query.push(r.pick([...UNKNOWN_PARAMS, 'ttl=5', 'dryRun=1'])),
  (d) => setHeader(d, 'expect', 'foo'),
];

function maybes(rng: Rng, d: Draft, max = 2): void {
  for (let n = rng.int(max + 1); n > 0; n--) rng.pick(MAYBE)(d, rng);
}

// ---------------------------------------------------------------------------
// Case generators. Each returns what to run; keys it tries to write are
// noted when the case is made, so a run can check them whatever happened.

interface Case {
  readonly name: string;
  run(): Promise<string[]>;
}

type Generator = (rng: Rng, id: number) => Case;

/** PUT or DELETE of a key through the router, with at least one sure refusal. */
const kvWrite: Generator = (rng, id) => {
  const base = `fz${id}`;
  const del = rng.chance(0.25);
  let raw = pathKey(rng, base);
  const d = draft(del ? 'DELETE' : 'PUT', KV + raw, del ? undefined : rng.bytes(rng.int(200)));
  maybes(rng, d);
  if (del) rng.pick(DEL_REFUSALS)(d, rng);
  else if (rng.chance(0.1)) raw = badPathKey(rng, base);
  else rng.weighted(PUT_REFUSALS)(d, rng);
  d.path = KV + raw;
  tryPath(raw);
  return { name: `router ${d.method} ${d.path.slice(0, 60)}`, run: () => send(w.router, d, 'refuse') };
};

/** GET or HEAD of a key through the router. */
const kvRead: Generator = (rng, id) => {
  const d = draft(rng.pick(['GET', 'GET', 'HEAD']), KV + pathKey(rng, `fz${id}`));
  if (rng.chance(0.3)) d.query.push(rng.pick([...UNKNOWN_PARAMS, 'ttl=5']));
  maybes(rng, d);
  return { name: `router ${d.method} ${d.path.slice(0, 60)}`, run: () => send(w.router, d, 'any') };
};

/** Methods no route of this path takes. */
const wrongMethod: Generator = (rng, id) => {
  const raw = pathKey(rng, `fz${id}`);
  const batch = rng.chance(0.3);
  const method = batch
    ? rng.pick(['GET', 'PUT', 'DELETE', 'HEAD', 'PATCH'])
    : rng.pick(['POST', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND', 'LOCK', 'SEARCH', 'MKCOL', 'PURGE', 'get', 'Get', 'G-ET', 'FOO']);
  const d = draft(method, batch ? '/v1/kv/_batch' : KV + raw, rng.chance(0.5) ? '{"ops":[]}' : undefined);
  if (!batch) tryPath(raw);
  maybes(rng, d);
  return { name: `router ${method} ${d.path.slice(0, 60)}`, run: () => send(w.router, d, 'refuse') };
};

type Json = null | boolean | number | string | Json[] | { [k: string]: Json | undefined };
type BatchOp = Record<string, Json | undefined>;

/** Add a member that JSON.stringify writes out, a `__proto__` one included (assignment would set the prototype instead). */
function ownMember(o: Record<string, Json | undefined>, name: string, value: Json): void {
  Object.defineProperty(o, name, { value, enumerable: true, writable: true, configurable: true });
}

/** A valid batch operation; writes are marked. */
function batchOp(rng: Rng, key: string): { op: BatchOp; write: boolean } {
  const kind = rng.pick(['get', 'put', 'put', 'del']);
  tryKey(key);
  if (kind === 'get') return { op: { op: 'get', key }, write: false };
  if (kind === 'del') return { op: { op: 'del', key }, write: true };
  const op: BatchOp = rng.chance(0.3)
    ? { op: 'put', key, value: rng.bytes(rng.int(100)).toString('base64'), encoding: 'base64' }
    : { op: 'put', key, value: rng.pick(['x', '', 'é☃😀', '{"__proto__":{"polluted":true}}', 'a'.repeat(rng.int(2000))]) };
  if (rng.chance(0.3)) op['ttl'] = rng.range(1, 1000);
  if (rng.chance(0.2)) op['contentType'] = rng.pick(['text/plain', 'application/json', 'a/b; c=d']);
  if (rng.chance(0.1)) ownMember(op, rng.pick(PROTO_NAMES), { polluted: true });
  return { op, write: true };
}

type OpMutation = (o: BatchOp, rng: Rng) => void;

/** Changes that make one operation invalid, so the whole batch is refused before anything is sent. */
const OP_REFUSALS: readonly OpMutation[] = [
  (o, r) => {
    o['op'] = 'put';
    o['value'] ??= 'x';
    o['ttl'] = r.pick<Json>(['10', 'abc', -1, 1.5, 0, 1e20, true, [], {}, '']);
  },
  (o) => {
    o['op'] = 'put';
    o['value'] = '\ud800x';
    delete o['encoding'];
  },
  (o, r) => {
    o['op'] = 'put';
    o['value'] = r.pick<Json>([5, null, {}, [], true]);
  },
  (o) => {
    o['op'] = 'put';
    delete o['value'];
  },
  (o, r) => {
    o['op'] = 'put';
    o['value'] ??= 'eA==';
    o['encoding'] = r.pick<Json>(['hex', 'BASE64', 'utf-8', '', 5]);
  },
  (o, r) => {
    o['op'] = 'put';
    o['encoding'] = 'base64';
    o['value'] = r.pick(['a', '!!!!', 'abc=d', '====', 'YQ===', 'Y Q==']);
  },
  (o, r) => {
    o['key'] = r.pick<Json>(['', 5, null, 'a\u0001b', '\ud800', 'x'.repeat(MAX_KEY + 1), [], {}]);
  },
  (o, r) => {
    o['op'] = 'put';
    o['value'] ??= 'x';
    o['contentType'] = r.pick<Json>([...BAD_CONTENT_TYPES, 5]);
  },
  (o, r) => {
    o['ifMatch'] = r.pick<Json>(['W/"1"', 'abc', -1, 1.5, '"x"', true, {}, '']);
  },
  (o, r) => {
    o['op'] = r.pick<Json>(['incr', 'PUT', 'get ', null, 5, '', '__proto__', 'constructor']);
  },
  (o) => {
    delete o['op'];
  },
  (o) => {
    o['op'] = 'put';
    o['value'] = 'x'.repeat(MAX_VALUE + 1);
    delete o['encoding'];
  },
];

const NOT_JSON_TYPES = [
  'text/plain',
  'application/x-www-form-urlencoded',
  'application/json; charset=latin1',
  'application/jsonx',
  'application/json, text/plain',
  'multipart/form-data; boundary=x',
  'application/msgpack',
  'json',
  '*/*',
];

/** Bodies the batch endpoint refuses whatever the ops were. */
function badBatchBody(rng: Rng, ops: BatchOp[]): string | Buffer {
  const good = JSON.stringify({ ops });
  return rng.pick<() => string | Buffer>([
    () => good.slice(0, rng.range(1, good.length - 1)),
    () => `${good}x`,
    () => good.replace(/"/g, "'"),
    () => '{"ops": [NaN]}',
    () => Buffer.concat([Buffer.from(good.slice(0, -2)), Buffer.from([0xff, 0xfe]), Buffer.from(good.slice(-2))]),
    () => '',
    () => 'null',
    () => '[]',
    () => '{}',
    () => '{"ops": {}}',
    () => '{"ops": "x"}',
    () => '{"ops": []}',
    () => '['.repeat(10_000),
    () => `{"ops":${'['.repeat(5000)}${']'.repeat(5000)}}`,
    () => `${good.slice(0, -1)}, "ops": []}`,
    () => `{"__proto__": ${good}}`,
    () => `{"constructor": ${good}}`,
    () => `${good}${' '.repeat(MAX_BODY)}`,
  ])();
}

/** POST /v1/kv/_batch: refused as a whole, or run with every write refused by a precondition. */
const batch: Generator = (rng, id) => {
  const base = `fz${id}`;
  const made = Array.from({ length: rng.range(1, 8) }, (_, i) => batchOp(rng, `${base}-${i}`));
  const ops = made.map((m) => m.op);
  const d = draft('POST', '/v1/kv/_batch');
  setHeader(d, 'content-type', rng.pick(['application/json', 'application/json; charset=utf-8', 'application/json;charset=UTF-8']));
  const top: Record<string, Json | undefined> = { ops: ops as Json[] };
  if (rng.chance(0.1)) ownMember(top, rng.pick(PROTO_NAMES), { polluted: true });
  if (rng.chance(0.05)) top['x'] = 1;
  const bom = rng.chance(0.05);
  const padded = rng.chance(0.05);
  /** A body that replaces the ops altogether. */
  let replaced: string | Buffer | undefined;
  maybes(rng, d, 1);
  d.headers = d.headers.filter(([n]) => n !== 'content-encoding' || rng.chance(0.5));
  let expect: HttpExpect = 'any';
  const hasWrite = made.some((m) => m.write);
  if (hasWrite || rng.chance(0.5)) {
    expect = 'refuse';
    const how = rng.weighted<() => void>([
      [4, () => rng.pick(OP_REFUSALS)(rng.pick(ops), rng)],
      [
        1,
        () => {
          ops[rng.int(ops.length)] = rng.pick<BatchOp>([5, 'x', null, [], true, [1, 2]] as unknown as BatchOp[]);
        },
      ],
      [
        1,
        () => {
          for (let i = ops.length; i <= MAX_BATCH; i++) ops.push({ op: 'get', key: `${base}-pad${i}` });
        },
      ],
      [2, () => setHeader(d, 'content-type', rng.pick(NOT_JSON_TYPES))],
      [
        1,
        () => {
          d.headers = d.headers.filter(([n]) => n !== 'content-type');
        },
      ],
      [2, () => setHeader(d, 'content-encoding', rng.pick(['gzip', 'br', 'deflate', 'identity, gzip', 'GZIP', 'x', 'zstd']))],
      [2, () => d.query.push(rng.pick(['ttl=', 'ttl=100', 'dryRun=1', ...UNKNOWN_PARAMS]))],
      [1, () => setHeader(d, 'expect', 'foo')],
      [
        2,
        () => {
          replaced = badBatchBody(rng, ops);
        },
      ],
      [
        hasWrite ? 3 : 0,
        () => {
          // Valid, so it runs, but every write meets a precondition that fails.
          expect = 'batch';
          for (const o of ops) if (o['op'] !== 'get') o['ifMatch'] = rng.pick<Json>([7, '"7"', '*']);
        },
      ],
    ]);
    how();
  }
  // The ops as they are now (a refusal may have changed them); a BOM and white space are allowed.
  const text = `${bom ? '\ufeff' : ''}${padded ? ' \n\t' : ''}${JSON.stringify(top)}${padded ? '\n ' : ''}`;
  d.body = Buffer.from(replaced ?? text);
  return { name: `router batch of ${ops.length} (${expect})`, run: () => send(w.router, d, expect) };
};

const REAL_IDS = () => w.shards.map((s) => s.id);
const DRY_TRUE = ['dryRun=1', 'dryRun=true', 'dryRun', 'dryRun='];
const BAD_DRY = [
  'dryRun=yes',
  'dryRun=abc',
  'dryRun=%2B1',
  'dryrun=1',
  'DryRun=1',
  'dryRun=0&dryRun=1',
  'dryRun=1&dryRun=1',
  'dryRun=TRUE',
  'dryRun=%201',
  'dryRun[]=1',
  'x=1',
  '__proto__=1',
  'dryRun=1&x=1',
];
/** Queries of DELETE /v1/admin/shards/<id> that never remove a shard that is in the ring and alive. */
const SAFE_REMOVE = [...BAD_DRY, 'lost=1&dryRun=1', 'lost=yes', 'lost=1', 'lost=true&dryRun=true', 'lost=0&lost=1'];
const BAD_WEIGHT_BODIES = [
  '{"weight":0}',
  '{"weight":-1}',
  '{"weight":"2"}',
  '{"weight":null}',
  '{"weight":1e7}',
  '{"weight":true}',
  '{"weight":[]}',
  '{}',
  '',
  '{"weight":2,"x":1}',
  '{"__proto__":{"weight":2}}',
  '{"constructor":{"weight":2}}',
  '{"weight":2',
  '[2]',
  '2',
  'null',
  '{"weight":2,"dryRun":"yes"}',
  '{"weight":1e-300}',
  `{"weight":2,"pad":"${'x'.repeat(MAX_BODY)}"}`,
];
const ADD_BODIES = [
  '{"id":"s1"}',
  '{"id":"s404"}',
  '{"id":5}',
  '{}',
  '',
  '{"id":"s1","weight":"x"}',
  '{"id":"s404","extra":1}',
  '{"__proto__":{"id":"s1"}}',
  '{"constructor":{}}',
  '{"id":"s2","dryRun":"yes"}',
  '{"id":"s2","dryRun":true}',
  '{"id":"../s1"}',
  '[]',
  'null',
  '{"id":"s1"',
  '{"id":"\\ud800"}',
];

/** The admin API: forged tokens, bad queries and bodies; a real shard is never removed or re-weighted. */
const admin: Generator = (rng) => {
  const tokenOk = rng.chance(0.6);
  const auth = tokenOk ? GOOD_AUTH : rng.pick(BAD_AUTH);
  const real = rng.chance(0.6);
  const id = real ? rng.pick(REAL_IDS()) : rng.pick(['s404', '__proto__', 'constructor', '%00', '..', 'x'.repeat(100), '%C3%A9', 's1%2F..', 's1%00']);
  const json = (d: Draft, body: string) => {
    d.body = Buffer.from(body);
    setHeader(d, 'content-type', rng.chance(0.9) ? 'application/json' : rng.pick(NOT_JSON_TYPES));
    if (rng.chance(0.05)) setHeader(d, 'content-encoding', 'gzip');
  };
  let d: Draft;
  let expect: HttpExpect = 'refuse';
  switch (rng.pick(['list', 'status', 'events', 'cancel', 'add', 'remove', 'remove', 'weight', 'weight', 'wrong'])) {
    case 'list':
      d = draft(rng.pick(['GET', 'HEAD']), '/v1/admin/shards');
      expect = 'any';
      if (rng.chance(0.3)) d.query.push(rng.pick(UNKNOWN_PARAMS));
      break;
    case 'status':
      d = draft(rng.pick(['GET', 'HEAD']), rng.pick(['/v1/admin/rebalance', '/v1/admin/rebalance/history']));
      expect = 'any';
      if (rng.chance(0.3)) d.query.push(rng.pick(UNKNOWN_PARAMS));
      break;
    case 'events':
      if (tokenOk && rng.chance(0.3)) {
        // HEAD: the headers, and an end.
        d = draft('HEAD', '/v1/admin/rebalance/events');
        expect = 'any';
        break;
      }
      // A GET of the event stream with the right token and no query stays open: always something wrong.
      d = draft('GET', '/v1/admin/rebalance/events');
      if (tokenOk || rng.chance(0.5)) d.query.push(rng.pick(UNKNOWN_PARAMS));
      break;
    case 'cancel':
      d = draft('POST', '/v1/admin/rebalance/cancel');
      if (rng.chance(0.3)) json(d, rng.pick(['{}', '{"x":1}', 'null']));
      if (rng.chance(0.3)) d.query.push(rng.pick(UNKNOWN_PARAMS));
      break;
    case 'add':
      d = draft('POST', '/v1/admin/shards');
      json(d, rng.pick(ADD_BODIES));
      if (rng.chance(0.4)) d.query.push(rng.pick([...DRY_TRUE, ...BAD_DRY, 'dryRun=0']));
      break;
    case 'remove':
      d = draft('DELETE', `/v1/admin/shards/${id}`);
      if (real) {
        const q = rng.pick([...SAFE_REMOVE, ...DRY_TRUE]);
        d.query.push(q);
        if (DRY_TRUE.includes(q)) expect = 'any';
      } else {
        const q = rng.pick(['', 'dryRun=0', 'lost=1', 'lost=0', ...DRY_TRUE, ...SAFE_REMOVE]);
        if (q) d.query.push(q);
      }
      if (rng.chance(0.1)) json(d, '{"id":"s1"}');
      break;
    case 'weight': {
      d = draft('PUT', `/v1/admin/shards/${id}/weight`);
      if (!real) {
        json(d, rng.pick(['{"weight":2}', '{"weight":1}', ...BAD_WEIGHT_BODIES]));
        if (rng.chance(0.5)) d.query.push(rng.pick([...DRY_TRUE, ...BAD_DRY, 'dryRun=0']));
        break;
      }
      const how = rng.pick(['dry-query', 'bad-query', 'dry-body', 'bad-body']);
      if (how === 'dry-query') {
        d.query.push(rng.pick(DRY_TRUE));
        json(d, rng.pick(['{"weight":2}', '{"weight":0.5,"dryRun":true}', '{"weight":2,"dryRun":false}', ...BAD_WEIGHT_BODIES]));
        expect = 'any';
      } else if (how === 'bad-query') {
        d.query.push(rng.pick(BAD_DRY));
        json(d, rng.pick(['{"weight":2}', '{"weight":1}', '{"weight":2,"dryRun":true}', '{"weight":2,"dryRun":false}']));
      } else if (how === 'dry-body') {
        json(
          d,
          rng.pick(['{"weight":2,"dryRun":true}', '{"weight":0.5,"dryRun":true}', '{"weight":1000000,"dryRun":true}', '{"weight":1e-300,"dryRun":true}']),
        );
        if (rng.chance(0.3)) d.query.push(rng.pick(['dryRun=0', 'dryRun=false']));
        expect = 'any';
      } else {
        json(d, rng.pick(BAD_WEIGHT_BODIES));
        // Sent as JSON, so that what is refused is the body itself.
        d.headers = d.headers.filter(([n]) => n !== 'content-encoding');
        setHeader(d, 'content-type', 'application/json');
      }
      break;
    }
    default:
      d = draft(
        rng.pick(['PATCH', 'POST', 'PUT', 'DELETE', 'GET']),
        rng.pick([
          '/v1/admin',
          '/v1/admin/',
          '/v1/admin/x',
          `/v1/admin/shards/${id}/weight/x`,
          '/v1/admin/rebalance/cancel/x',
          '/v1/admin/shards/',
          '/v1/admin//shards',
        ]),
      );
      break;
  }
  for (const h of auth) d.headers.push(h);
  if (rng.chance(0.2)) maybes(rng, d, 1);
  // Every admin route needs the token: without it nothing is answered but refusals.
  if (!tokenOk) expect = 'refuse';
  return {
    name: `router admin ${d.method} ${d.path}${d.query.length ? `?${d.query.join('&')}` : ''} (${tokenOk ? 'token' : 'no token'})`,
    run: () => send(w.router, d, expect),
  };
};

/** Health, topology, stats and metrics, and paths that are nothing. */
const health: Generator = (rng) => {
  const path = rng.pick(['/healthz', '/readyz', '/metrics', '/v1/topology', '/v1/stats']);
  const wrong = rng.chance(0.3);
  const d = draft(
    wrong ? rng.pick(['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) : rng.pick(['GET', 'HEAD']),
    path,
    wrong && rng.chance(0.5) ? 'x' : undefined,
  );
  const query = rng.chance(0.3);
  if (query) d.query.push(rng.pick(UNKNOWN_PARAMS));
  maybes(rng, d, 1);
  return { name: `router ${d.method} ${path}`, run: () => send(w.router, d, wrong || query ? 'refuse' : 'any') };
};

const unknownPath: Generator = (rng) => {
  const path = rng.pick([
    '/',
    '/v2/x',
    '/v1',
    '/v1/kvx',
    '/V1/KV/x',
    '/%00',
    '/..%2f',
    '/v1/admin/../kv/x',
    '//v1/kv/x',
    '/v1//kv/x',
    '/healthz/',
    '/healthz/x',
    '/metrics.json',
    '/v1/topology/x',
    '/favicon.ico',
    '/.env',
    '/%2e%2e/%2e%2e/etc/passwd',
    '/v1/kv%2Fx',
    `/${'a'.repeat(5000)}`,
    '/__proto__',
    '/constructor',
  ]);
  const d = draft(rng.pick(['GET', 'HEAD', 'POST', 'DELETE', 'OPTIONS']), path);
  maybes(rng, d, 1);
  return { name: `router ${d.method} ${path.slice(0, 60)}`, run: () => send(w.router, d, 'refuse') };
};

/** A shard's HTTP port: writes that must be refused (a key it does not own among the reasons), reads, stats, metrics. */
const shardHttp: Generator = (rng, id) => {
  const s = rng.pick(w.shards);
  const tokenOk = rng.chance(0.7);
  const base = `fz${id}`;
  const kind = rng.weighted([
    [5, 'put'],
    [2, 'delete'],
    [3, 'get'],
    [1, 'stats'],
    [1, 'metrics'],
    [1, 'healthz'],
    [1, 'other'],
  ] as const);
  let d: Draft;
  let expect: HttpExpect = 'refuse';
  if (kind === 'put' || kind === 'delete') {
    let raw = encodeURIComponent(keyOn(s.id, base, rng.chance(0.7)));
    if (rng.chance(0.1)) raw = badPathKey(rng, base);
    d = draft(kind === 'put' ? 'PUT' : 'DELETE', `/kv/${raw}`, kind === 'put' ? rng.bytes(rng.int(100)) : undefined);
    maybes(rng, d);
    if (kind === 'put') rng.weighted(PUT_REFUSALS)(d, rng);
    else rng.pick(DEL_REFUSALS)(d, rng);
    tryPath(raw);
  } else if (kind === 'get') {
    d = draft(rng.pick(['GET', 'HEAD']), `/kv/${pathKey(rng, base)}`);
    if (rng.chance(0.2)) d.query.push(rng.pick(UNKNOWN_PARAMS));
    maybes(rng, d, 1);
    expect = 'any';
  } else if (kind === 'other') {
    d = draft(
      rng.pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH']),
      rng.pick(['/', '/kv', '/kv/', '/v1/kv/x', '/stats/x', '/admin', '/healthz', '/metrics', '/stats']),
    );
    if (d.method === 'GET' && ['/healthz', '/metrics', '/stats', '/kv/'].includes(d.path)) d.query.push(rng.pick(UNKNOWN_PARAMS));
  } else {
    d = draft(rng.pick(['GET', 'HEAD']), `/${kind}`);
    expect = 'any';
    if (rng.chance(0.3)) {
      d.query.push(rng.pick(UNKNOWN_PARAMS));
      expect = 'refuse';
    }
  }
  if (tokenOk) d.headers.push(...GOOD_AUTH);
  else d.headers.push(...rng.pick(BAD_AUTH));
  return { name: `shard ${s.id} ${d.method} ${d.path.slice(0, 60)} (${tokenOk ? 'token' : 'no token'})`, run: () => send(s.http, d, expect) };
};

/** A port that speaks HTTP: the router's or a shard's, with a path and token that fit it. */
function httpTarget(rng: Rng): { port: number; kvPath: (raw: string) => string; auth: Array<[string, string]>; owner: string | undefined } {
  if (rng.chance(0.6)) return { port: w.router, kvPath: (raw) => KV + raw, auth: [], owner: undefined };
  const s = rng.pick(w.shards);
  return { port: s.http, kvPath: (raw) => `/kv/${raw}`, auth: GOOD_AUTH, owner: s.id };
}

/** Lying, broken or unusual message framing around a write that is refused anyway. */
const framing: Generator = (rng, id) => {
  const base = `fz${id}`;
  const t = httpTarget(rng);
  const key = t.owner ? keyOn(t.owner, base) : base;
  tryKey(key);
  const d = draft('PUT', t.kvPath(encodeURIComponent(key)), rng.bytes(rng.range(1, 300)));
  d.headers.push(...t.auth);
  rng.pick(PUT_HEAD_REFUSALS)(d, rng);
  const n = d.body!.length;
  let pieces: RawPiece[];
  let o: HttpCheck = {};
  const kind = rng.weighted([
    [3, 'bad-length'],
    [1, 'two-lengths'],
    [2, 'length-and-chunked'],
    [2, 'transfer-encodings'],
    [3, 'bad-chunks'],
    [3, 'shorter-length'],
    [1, 'longer-length'],
    [2, 'chunked'],
    [2, 'pipelined'],
  ] as const);
  switch (kind) {
    case 'bad-length':
      setHeader(d, 'content-length', rng.pick(['abc', '-1', '1.5', '99999999999999999999', '+5', '0x10', '5 5', '', `${n},${n}`]));
      pieces = [wire(d)];
      break;
    case 'two-lengths':
      d.headers.push(['content-length', String(n)], ['content-length', String(n + 1)]);
      pieces = [wire(d)];
      break;
    case 'length-and-chunked':
      setHeader(d, 'content-length', String(n));
      setHeader(d, 'transfer-encoding', 'chunked');
      chunked(rng, d);
      pieces = [wire(d)];
      break;
    case 'transfer-encodings':
      setHeader(d, 'transfer-encoding', rng.pick(['chunked, gzip', 'gzip', 'xchunked', 'chunked, chunked', 'identity', 'Chunked', 'chunked;q=1', ' chunked']));
      chunked(rng, d);
      pieces = [wire(d)];
      break;
    case 'bad-chunks': {
      const bad = rng.pick([
        `zz\r\n${'a'.repeat(10)}\r\n0\r\n\r\n`,
        `5\r\nabcdefgh\r\n0\r\n\r\n`,
        `ffffffffffffffffff\r\nabc\r\n0\r\n\r\n`,
        `-1\r\nabc\r\n0\r\n\r\n`,
        `5;\u0001\r\nabcde\r\n0\r\n\r\n`,
        `5\nabcde\n0\n\n`,
        `5\r\nabcde\r\n0\r\nX-Trailer\r\n\r\n`,
        ` 5\r\nabcde\r\n0\r\n\r\n`,
        `5;${'e'.repeat(20_000)}\r\nabcde\r\n0\r\n\r\n`,
        `1\r\na\r\n`.repeat(5000) + '0\r\n\r\n',
      ]);
      setHeader(d, 'transfer-encoding', 'chunked');
      pieces = [Buffer.concat([wire({ ...d, body: undefined, chunks: undefined }), Buffer.from(bad, 'latin1')])];
      break;
    }
    case 'shorter-length':
      setHeader(d, 'content-length', String(rng.int(n)));
      pieces = [Buffer.concat([wire(d), Buffer.from(rng.pick(['garbage\r\n\r\n', 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', '\u0000\u0001']), 'latin1')])];
      break;
    case 'longer-length':
      // The server waits for the rest, then gives up: 408 within the request timeout.
      setHeader(d, 'content-length', String(n + rng.range(1, 1000)));
      pieces = [wire(d)];
      o = { withinMs: REQUEST_TIMEOUT_MS + SLACK_MS };
      break;
    case 'chunked':
      chunked(rng, d);
      pieces = [wire(d)];
      break;
    case 'pipelined': {
      const second = draft('PUT', t.kvPath(encodeURIComponent(key)), 'x');
      second.headers.push(...t.auth);
      rng.pick(PUT_HEAD_REFUSALS)(second, rng);
      setHeader(d, 'connection', 'keep-alive');
      pieces = [Buffer.concat([wire(d), wire(second)])];
      break;
    }
  }
  return { name: `${t.owner ? `shard ${t.owner}` : 'router'} framing ${kind}`, run: () => httpCase(t.port, pieces, 'refuse', { method: d.method, ...o }) };
};

/** Request lines and headers that are not HTTP/1.1, or barely. */
const syntax: Generator = (rng, id) => {
  const base = `fz${id}`;
  const t = httpTarget(rng);
  const health = '/healthz';
  const key = t.owner ? keyOn(t.owner, base) : base;
  const kvp = t.kvPath(encodeURIComponent(key));
  const line = (s: string) => Buffer.from(s, 'latin1');
  const auth = t.auth.map(([n, v]) => `${n}: ${v}\r\n`).join('');
  const pick = rng.weighted<() => { what: string; pieces: RawPiece[]; expect: HttpExpect; o?: HttpCheck }>([
    [
      2,
      () => {
        const v = rng.pick(['HTTP/9.9', 'HTTP/1.2', 'HTTP/2.0', 'http/1.1', 'HTTP/1', 'HTTP/1.1x', 'HTTP/11', 'HTCPCP/1.0', 'HTTP/1.1 x']);
        return { what: `version ${v}`, pieces: [line(`GET ${health} ${v}\r\nHost: x\r\n\r\n`)], expect: 'refuse' };
      },
    ],
    [
      2,
      () => {
        const h = rng.pick([
          'Bad Header: y',
          'NoColon',
          ': empty',
          'X-A: a\u0000b',
          'X-A: a\rb',
          ' X-Fold: y',
          'X-A\t: y',
          '(X): y',
          'X-A: \u007f',
          'X-\u00e9: y',
        ]);
        return {
          what: `header ${JSON.stringify(h)}`,
          pieces: [line(`PUT ${kvp}?ttl=abc HTTP/1.1\r\nHost: x\r\n${auth}${h}\r\nContent-Length: 1\r\n\r\nx`)],
          expect: 'refuse',
        };
      },
    ],
    [
      2,
      () => {
        const g = rng.pick<() => Buffer>([
          () => rng.bytes(rng.range(1, 200)),
          () => line('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
          () => Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03]),
          () => encodeFrame({ auth: HANDSHAKE_VERSION, nonce: newNonce(), proof: newNonce() }),
          () => encodeFrame([{ i: 1, o: 'put', e: w.epoch, k: key, v: Buffer.from('x') }]),
          () => line('\r\n\r\n\r\n\u0000'),
        ]);
        return { what: 'garbage', pieces: [g()], expect: 'refuse', o: { withinMs: REQUEST_TIMEOUT_MS + SLACK_MS } };
      },
    ],
    [1, () => ({ what: '100 KB URL', pieces: [line(`GET ${t.kvPath('a'.repeat(100_000))} HTTP/1.1\r\nHost: x\r\n\r\n`)], expect: 'refuse' })],
    [1, () => ({ what: '3000 headers', pieces: [line(`GET ${health} HTTP/1.1\r\nHost: x\r\n${'x-h: v\r\n'.repeat(3000)}\r\n`)], expect: 'refuse' })],
    [
      1,
      () => ({
        what: '1 MB header',
        pieces: [line(`PUT ${kvp} HTTP/1.1\r\nHost: x\r\n${auth}x-big: ${'a'.repeat(1 << 20)}\r\nContent-Length: 1\r\n\r\nx`)],
        expect: 'refuse',
      }),
    ],
    [1, () => ({ what: '10 KB header name', pieces: [line(`GET ${health} HTTP/1.1\r\nHost: x\r\n${'n'.repeat(10_000)}: v\r\n\r\n`)], expect: 'refuse' })],
    [
      1,
      () => {
        // More headers than Node parses by default (2000), within the byte limit; the refusal comes last.
        const refusal = rng.pick(['If-Match: "3"', 'x-kv-ttl: abc', 'If-None-Match: "3"']);
        return {
          what: `2000 headers, then ${refusal}`,
          pieces: [line(`PUT ${kvp} HTTP/1.1\r\nHost: x\r\n${auth}${'x:\r\n'.repeat(2000)}${refusal}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx`)],
          expect: 'refuse',
        };
      },
    ],
    [
      1,
      () => ({
        what: 'Expect: foo',
        pieces: [line(`PUT ${kvp} HTTP/1.1\r\nHost: x\r\n${auth}Expect: foo\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx`)],
        expect: 'refuse',
      }),
    ],
    [
      1,
      () => ({
        what: 'Expect: 100-continue on a refused write',
        pieces: [line(`PUT ${kvp}?ttl=-1 HTTP/1.1\r\nHost: x\r\n${auth}Expect: 100-continue\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx`)],
        expect: 'refuse',
      }),
    ],
    [1, () => ({ what: 'HTTP/0.9 write', pieces: [line(`PUT ${kvp}\r\n\r\n`)], expect: 'refuse' })],
    [1, () => ({ what: 'HTTP/0.9 read', pieces: [line(`GET ${kvp}\r\n\r\n`)], expect: 'refuse' })],
    [
      1,
      () => ({
        what: 'HTTP/0.9 line, unfinished',
        pieces: [line(`GET ${health}\r\n`)],
        expect: 'refuse',
        o: { withinMs: HEADERS_TIMEOUT_MS + SLACK_MS },
      }),
    ],
    [1, () => ({ what: 'no Host', pieces: [line(`PUT ${kvp} HTTP/1.1\r\n${auth}Content-Length: 1\r\nConnection: close\r\n\r\nx`)], expect: 'refuse' })],
    [1, () => ({ what: 'HTTP/1.0 without Host', pieces: [line(`GET ${health} HTTP/1.0\r\n\r\n`)], expect: 'any' })],
    [
      1,
      () => ({
        what: 'absolute-form write',
        pieces: [line(`PUT http://127.0.0.1${kvp}?ttl=abc HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 1\r\nConnection: close\r\n\r\nx`)],
        expect: 'refuse',
      }),
    ],
    [
      1,
      () => ({
        what: 'absolute-form read',
        pieces: [
          line(`GET ${rng.pick(['http', 'HTTPS', 'ftp'])}://127.0.0.1${rng.pick([kvp, health])} HTTP/1.1\r\nHost: x\r\n${auth}Connection: close\r\n\r\n`),
        ],
        expect: 'any',
      }),
    ],
    [1, () => ({ what: 'asterisk-form', pieces: [line(`OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)], expect: 'refuse' })],
    [1, () => ({ what: 'CONNECT', pieces: [line(`CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n`)], expect: 'refuse' })],
    [
      1,
      () => ({
        what: 'Upgrade',
        pieces: [line(`GET ${health} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: ${rng.pick(['websocket', 'h2c', 'x'])}\r\n\r\n`)],
        expect: 'any',
        o: { responses: 1 },
      }),
    ],
    [
      1,
      () => ({
        what: 'LF line ends',
        pieces: [line(`PUT ${kvp}?ttl=abc HTTP/1.1\nHost: x\n${auth.replace(/\r/g, '')}Content-Length: 1\n\nx`)],
        expect: 'refuse',
      }),
    ],
    [
      1,
      () => {
        const l = rng.pick([
          `GET  ${health} HTTP/1.1`,
          `GET ${health}  HTTP/1.1`,
          `GET\t${health} HTTP/1.1`,
          `G ET ${health} HTTP/1.1`,
          `get ${health} HTTP/1.1`,
        ]);
        // Node's parser takes extra spaces between the parts; the others are refused.
        return { what: `request line ${JSON.stringify(l)}`, pieces: [line(`${l}\r\nHost: x\r\nConnection: close\r\n\r\n`)], expect: 'any' };
      },
    ],
    [
      1,
      () => ({
        what: 'control characters in the URL',
        pieces: [line(`GET ${t.kvPath(`a${rng.pick(['\u0001', '\u0000', '\u007f', ' ', '\u001b'])}b`)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)],
        expect: 'refuse',
      }),
    ],
  ]);
  const s = pick();
  tryKey(key);
  return { name: `${t.owner ? `shard ${t.owner}` : 'router'} syntax: ${s.what}`, run: () => httpCase(t.port, s.pieces, s.expect, s.o ?? {}) };
};

/** A few slow senders that stay inside the limits (the limits themselves are tested elsewhere). */
const slow: Generator = (rng, id) => {
  const base = `fz${id}`;
  const t = httpTarget(rng);
  const key = t.owner ? keyOn(t.owner, base) : base;
  tryKey(key);
  const d = draft('PUT', t.kvPath(encodeURIComponent(key)), rng.bytes(rng.range(10, 1000)));
  d.headers.push(...t.auth);
  rng.pick(PUT_HEAD_REFUSALS)(d, rng);
  if (rng.chance(0.5)) chunked(rng, d);
  const bytes = wire(d);
  const pieces: RawPiece[] = [];
  const n = rng.range(2, 4);
  for (let i = 0; i < n; i++) {
    pieces.push(bytes.subarray(Math.floor((i * bytes.length) / n), Math.floor(((i + 1) * bytes.length) / n)));
    if (i < n - 1) pieces.push({ pauseMs: rng.range(20, 120) });
  }
  return { name: `${t.owner ? `shard ${t.owner}` : 'router'} slow sender in ${n} pieces`, run: () => httpCase(t.port, pieces, 'refuse', { method: 'PUT' }) };
};

// ---------------------------------------------------------------------------
// The data port.

type Req = Record<string, unknown>;
/** A key string that the frame carries as invalid UTF-8 bytes (patched after encoding). */
const BAD_UTF8_MARK = 'BADUTF8MARK';
const BAD_UTF8 = Buffer.from([0xff, 0xfe, 0x61, 0xc3, 0x28, 0xed, 0xa0, 0x80, 0xc0, 0x80, 0x62]);

function frameBytes(body: unknown): Buffer {
  const b = encodeFrame(body);
  for (let at = b.indexOf(BAD_UTF8_MARK); at >= 0; at = b.indexOf(BAD_UTF8_MARK, at)) BAD_UTF8.copy(b, at);
  return b;
}

/** An object with own keys exactly as given (a `__proto__` key included). */
const withField = (o: Req, name: string, value: unknown): Req => Object.fromEntries([...Object.entries(o), [name, value]]) as Req;

function record(key: string, o: Partial<StoredRecord> = {}, point = keyPoint(key)): { rk: Buffer; rv: Buffer } {
  const rv = encodeRecord({ v: Buffer.from(`moved ${key}`), ct: 'text/plain', ver: Date.now() * 1000, x: 0, e: w.epoch, ...o });
  return { rk: recordKey(point, key), rv };
}

function blob(records: ReadonlyArray<{ rk: Buffer; rv: Buffer }>): Buffer {
  const mw = new MovedWriter();
  for (const r of records) mw.add(r.rk, r.rv);
  return mw.finish();
}

/** A moved record that a shard must refuse, with the code it refuses it with. */
function badRecord(rng: Rng, shard: string, base: string): { what: string; rec: { rk: Buffer; rv: Buffer }; code: string } {
  const key = keyOn(shard, base);
  tryKey(key);
  const version = (ver: number) => {
    const r = record(key);
    r.rv.writeDoubleLE(ver, 5);
    return r;
  };
  return rng.pick<() => { what: string; rec: { rk: Buffer; rv: Buffer }; code: string }>([
    () => {
      const v = rng.pick([1e308, -1, 1.5, NaN, 0, Infinity, -Infinity, 2 ** 53 + 2, (Date.now() + 2 * 24 * 3600 * 1000) * 1000]);
      return { what: `version ${v}`, rec: version(v), code: 'KV_ERR_BAD_FRAME' };
    },
    () => ({
      what: 'a ring point that is not the key',
      rec: record(key, {}, (keyPoint(key) + rng.range(1, 1000)) % (POINT_MAX + 1)),
      code: 'KV_ERR_BAD_FRAME',
    }),
    () => {
      const r = record(key);
      const rk = Buffer.concat([r.rk.subarray(0, 4), BAD_UTF8]);
      return { what: 'invalid UTF-8 key bytes', rec: { rk, rv: r.rv }, code: 'KV_ERR_BAD_FRAME' };
    },
    () => ({ what: 'a write epoch ahead of the shard', rec: record(key, { e: w.epoch + rng.range(1, 1000) }), code: 'KV_ERR_STALE_EPOCH' }),
    () => {
      const r = record(key);
      r.rv.writeDoubleLE(rng.pick([-1, NaN, 1.5, Date.now() + 20 * 365 * 24 * 3600 * 1000]), 13);
      return { what: 'a bad expiry', rec: r, code: 'KV_ERR_BAD_FRAME' };
    },
    () => {
      const r = record(key);
      r.rv[0] = rng.pick([2, 4, 0x80, 0xff]);
      return { what: 'unknown flags', rec: r, code: 'KV_ERR_BAD_FRAME' };
    },
    () => {
      const r = record(key, { d: 1 });
      return { what: 'a tombstone with a value', rec: r, code: 'KV_ERR_BAD_FRAME' };
    },
    () => ({ what: 'a bad content type', rec: record(key, { ct: rng.pick(['not a type', 'x'.repeat(300)]) }), code: 'KV_ERR_BAD_CONTENT_TYPE' }),
    () => ({ what: 'a value over the limit', rec: record(key, { v: Buffer.alloc(MAX_VALUE + 1) }), code: 'KV_ERR_VALUE_TOO_LARGE' }),
    () => {
      const k = `${base}-\u0001`;
      return { what: 'a control character in the key', rec: record(k), code: 'KV_ERR_KEY_INVALID' };
    },
    () => ({ what: 'a key too long', rec: record(`${base}-${'x'.repeat(MAX_KEY)}`), code: 'KV_ERR_BAD_FRAME' }),
    () => {
      const r = record(key);
      return { what: 'a value shorter than its header', rec: { rk: r.rk, rv: r.rv.subarray(0, rng.range(0, 22)) }, code: 'KV_ERR_BAD_FRAME' };
    },
    () => {
      const k = keyOn(shard, base, false);
      tryKey(k);
      return { what: 'a key the shard does not own', rec: record(k), code: 'KV_ERR_NOT_OWNER' };
    },
  ])();
}

/** Refusals of one request of op `o`: each turns a valid request into one the shard must refuse. */
function dataRefusals(o: string, s: ShardPorts, base: string): Array<(r: Req, rng: Rng) => Req> {
  const generic: Array<(r: Req, rng: Rng) => Req> = [
    (r, g) => withField(r, g.pick(['zz', '__proto__', 'constructor', 'prototype', 'K', '']), g.pick([1, 'x', null, {}])),
    (r, g) => ({ ...r, i: g.pick<unknown>([-1, 1.5, 'x', null, 2 ** 53, true, 2n ** 64n - 1n, new Date(0)]) }),
    (r) => {
      const { i: _i, ...rest } = r;
      return rest;
    },
    (r, g) => ({ ...r, e: g.pick<unknown>([-1, 1.5, '1', null, NaN, Infinity, 2 ** 53, {}, -(2n ** 63n), new Date(0)]) }),
    (r) => {
      const { e: _e, ...rest } = r;
      return rest;
    },
    (r, g) => ({
      ...r,
      o: g.pick<unknown>([
        'explode',
        'GET',
        '__proto__',
        'toString',
        'constructor',
        '',
        5,
        null,
        'hasOwnProperty',
        'valueOf',
        2n ** 64n - 1n,
        new Date(0),
        ['get'],
        { o: 'get' },
      ]),
    }),
    (r) => {
      const { o: _o, ...rest } = r;
      return rest;
    },
  ];
  const keyed: Array<(r: Req, rng: Rng) => Req> = [
    (r) => ({ ...r, e: w.epoch - 1 }),
    (r, g) => ({ ...r, e: w.epoch + g.range(1, 1_000_000) }),
    (r) => {
      const k = keyOn(s.id, base, false);
      tryKey(k);
      return { ...r, k };
    },
    (r, g) => ({ ...r, k: g.pick<unknown>([undefined, 5, '', 'x'.repeat(MAX_KEY + 1), 'a\u0001b', null, Buffer.from('k'), ['k'], 5n, new Date(0)]) }),
  ];
  const ranges = (max: number): Array<(r: Req, rng: Rng) => Req> => [
    (r, g) => ({
      ...r,
      ranges: g.pick<unknown>([
        undefined,
        [],
        ...(max === 1 ? [[randomRange(g), randomRange(g)]] : []),
        [{ lo: 5, hi: 1 }],
        [{ lo: -1, hi: 5 }],
        [{ lo: 0, hi: POINT_MAX + 1 }],
        [{ lo: 0, hi: 1, x: 1 }],
        [null],
        'x',
        [{ lo: '0', hi: 1 }],
        [{ lo: 1.5, hi: 2 }],
      ]),
    }),
  ];
  const byOp: Record<string, Array<(r: Req, rng: Rng) => Req>> = {
    get: keyed,
    fetch: keyed,
    put: [
      ...keyed,
      (r, g) => ({ ...r, v: g.pick([undefined, 'str', 5, null, Buffer.alloc(MAX_VALUE + 1)]) }),
      (r, g) => ({ ...r, ct: g.pick(['not a type', 5, 'x'.repeat(300)]) }),
      (r, g) => ({ ...r, x: g.pick([-1, 1.5, '0', Date.now() + LIMITS.maxTtlSeconds * 1000 + 10 * 60_000]) }),
      (r, g) => ({ ...r, m: g.pick([0, -1, 1.5, 'x', null, '**']) }),
      (r, g) => ({ ...r, n: g.pick(['yes', 1, null]) }),
      (r) => ({ ...r, n: true, m: 5 }),
      (r, g) => ({ ...r, m: g.pick([5, '*', 123_456]) }),
    ],
    del: [...keyed, (r, g) => ({ ...r, m: g.pick([0, -1, 1.5, 'x', null]) }), (r, g) => ({ ...r, m: g.pick([5, '*']) })],
    sync: [(r, g) => ({ ...r, me: g.pick([-1, 1.5, 'x', undefined, null]) })],
    scan: [
      ...ranges(1),
      (r, g) => ({ ...r, after: g.pick<unknown>([[1], ['x', 'y'], [POINT_MAX + 1, 'k'], [1, ''], [1, 5], 'x', null]) }),
      (r, g) => ({ ...r, limit: g.pick([0, -1, 1.5, 'x']) }),
      (r, g) => ({ ...r, maxBytes: g.pick([0, -1, 1.5, 'x']) }),
    ],
    count: ranges(100_000),
    import: [
      (r, g) => ({ ...r, me: g.pick([-1, 1.5, 'x', undefined, null]) }),
      (r, g) => ({ ...r, packed: g.pick<unknown>([undefined, 'x', [1, 2], 5, null]) }),
      (r, g) => ({ ...r, me: w.epoch + g.range(1, 1000) }),
      (r, g) => {
        const bad = badRecord(g, s.id, `${base}-i${g.int(1000)}`);
        const ok = Array.from({ length: g.int(3) }, (_, n) => {
          const k = keyOn(s.id, `${base}-ok${n}`);
          tryKey(k);
          return record(k);
        });
        return { ...r, packed: blob(g.chance(0.5) ? [...ok, bad.rec] : [bad.rec, ...ok]) };
      },
      (r, g) => ({ ...r, packed: (r['packed'] as Buffer).subarray(0, Math.max(1, (r['packed'] as Buffer).length - g.range(1, 10))) }),
    ],
    purge: [(r) => r, ...ranges(100_000)],
    retire: [(r) => r],
    ping: [],
    stats: [],
  };
  return [...generic, ...(byOp[o] ?? [])];
}

/** A valid request of op `o` for shard `s` (writes go to keys it owns). */
function dataRequest(rng: Rng, o: string, i: number, s: ShardPorts, base: string): Req {
  const e = w.epoch;
  const k = keyOn(s.id, base);
  tryKey(k);
  switch (o) {
    case 'get':
    case 'fetch':
    case 'del':
      return { i, o, e, k };
    case 'put':
      return { i, o, e, k, v: rng.bytes(rng.int(64)), ct: 'application/octet-stream', x: 0 };
    case 'sync':
      return { i, o, e, me: e };
    case 'scan':
      return { i, o, e, ranges: [randomRange(rng)], limit: 10, maxBytes: 1000 };
    case 'count':
      return { i, o, e, ranges: [randomRange(rng)] };
    case 'import': {
      const ok = keyOn(s.id, `${base}-imp`);
      tryKey(ok);
      return { i, o, e, me: e, packed: blob([record(ok)]) };
    }
    case 'purge':
      return { i, o, e, ranges: [ownedRange(rng, s.id)] };
    default:
      return { i, o, e };
  }
}

const DATA_OPS = ['get', 'fetch', 'put', 'put', 'del', 'ping', 'stats', 'sync', 'scan', 'count', 'import', 'import', 'purge', 'retire'];

/** Frames that break the protocol after the handshake: the shard closes the connection. */
function protocolViolation(rng: Rng): { what: string; bytes: Buffer } {
  return rng.pick<() => { what: string; bytes: Buffer }>([
    () => ({ what: 'a map frame', bytes: encodeFrame({ i: 1, o: 'ping', e: w.epoch }) }),
    () => {
      const v = rng.pick<unknown>([5, 'x', null, true, Buffer.from('abc'), Object.fromEntries([['__proto__', [1]]])]);
      return { what: `the frame ${preview(v)}`, bytes: encodeFrame(v) };
    },
    () => {
      const b = Buffer.alloc(4 + rng.int(16));
      b.writeUInt32BE(rng.pick([64 * 1024 * 1024 + 1, 0xffffffff, 0x7fffffff]), 0);
      return { what: 'a huge announced frame', bytes: b };
    },
    () => ({ what: 'an undecodable frame', bytes: Buffer.from([0, 0, 0, 4, 0xc1, 0xc1, 0xc1, 0xc1]) }),
    () => ({ what: 'a truncated msgpack body', bytes: Buffer.from([0, 0, 0, 2, 0x92, 0x01]) }),
    () => ({ what: 'an empty frame', bytes: Buffer.from([0, 0, 0, 0]) }),
    () => ({ what: 'an unknown msgpack extension', bytes: Buffer.from([0, 0, 0, 4, 0x91, 0xd4, 0x05, 0x01]) }),
    () => ({ what: 'a second handshake', bytes: encodeFrame({ auth: HANDSHAKE_VERSION, nonce: newNonce(), proof: newNonce() }) }),
  ])();
}

/** After a good handshake: requests that must each be refused with a code, or a frame that gets the connection closed. */
const dataOps: Generator = (rng, id) => {
  const s = rng.pick(w.shards);
  const base = `fz${id}`;
  if (rng.chance(0.15)) {
    const v = protocolViolation(rng);
    return {
      name: `data ${s.id}: ${v.what}`,
      run: async () => {
        const p = await WirePeer.authed(s.data);
        try {
          p.send(v.bytes);
          if ((await p.closedWithin(5000)) === 'open') return ['connection still open after a protocol violation'];
          const got = p.drain();
          return got.length > 0 ? [`answered ${preview(got)} before closing`] : [];
        } finally {
          p.close();
        }
      },
    };
  }
  // One to three frames of one to five requests each (or, rarely, one over the shard's in-flight limit).
  const frames: Req[][] = [];
  const whats: string[] = [];
  let i = 0;
  if (rng.chance(0.01)) {
    frames.push(Array.from({ length: 8193 }, () => ({ i: ++i, o: 'ping', e: -1 })));
    whats.push('8193 requests in one frame');
  }
  for (let f = frames.length > 0 ? 0 : rng.range(1, 3); f > 0; f--) {
    const reqs: Req[] = [];
    for (let n = rng.range(1, 5); n > 0; n--) {
      const o = rng.pick(DATA_OPS);
      const kb = `${base}-${++i}`;
      let r = dataRequest(rng, o, i, s, kb);
      if ((o === 'get' || o === 'put' || o === 'del') && rng.chance(0.2)) {
        r = { ...r, k: rng.pick([BAD_UTF8_MARK, '\ud800x', '\u00e9\u2603', '__proto__', 'constructor']) };
        tryKey(r['k']);
      }
      const refusals = dataRefusals(o, s, kb);
      const refusal = rng.int(refusals.length);
      reqs.push(refusals[refusal]!(r, rng));
      whats.push(`${o}#${refusal}`);
    }
    frames.push(reqs);
  }
  const bytes = Buffer.concat(frames.map(frameBytes));
  const split = rng.chance(0.2) ? rng.range(1, bytes.length - 1) : 0;
  const sent = frames.reduce((n, f) => n + f.length, 0);
  return {
    name: `data ${s.id}: ${frames.length} frame(s): ${whats.slice(0, 20).join(', ')}`,
    run: async () => {
      const p = await WirePeer.authed(s.data);
      try {
        if (split) {
          p.send(bytes.subarray(0, split));
          p.send(bytes.subarray(split));
        } else p.send(bytes);
        // Frames run concurrently: their answers may come in any order.
        const answers: unknown[] = [];
        for (let n = 0; n < frames.length; n++) {
          const answer = await p.next(10_000).catch((err: Error) => err);
          if (answer instanceof Error) return [`answer ${n + 1} of ${frames.length}: ${answer.message}`];
          if (!Array.isArray(answer)) return [`answer ${n + 1} is not a response list: ${preview(answer)}`];
          answers.push(...(answer as unknown[]));
        }
        return wireRefusalProblems(answers, sent);
      } finally {
        p.close();
      }
    },
  };
};

/** Before (or instead of) a good handshake: nothing runs; the shard says denied and closes. */
const dataUnauth: Generator = (rng, id) => {
  const s = rng.pick(w.shards);
  const base = `fz${id}`;
  const key = keyOn(s.id, base);
  tryKey(key);
  type Step = { what: string; act: (p: WirePeer) => Promise<void>; frame?: Req[] };
  const first: Array<() => Step> = [
    () => ({ what: 'no handshake', act: async () => {} }),
    () => ({
      what: 'a wrong secret',
      act: async (p) => p.sendAuth(rng.pick(['wrong-secret-0123456789abcdef', '', TEST_CLUSTER_SECRET.slice(0, -1), `${TEST_CLUSTER_SECRET}x`])),
    }),
    () => ({ what: "a proof for another shard's id", act: async (p) => p.sendAuth(TEST_CLUSTER_SECRET, rng.pick(w.shards.filter((x) => x.id !== s.id)).id) }),
    () => ({
      what: 'a replayed handshake',
      act: async (p) => {
        const other = await WirePeer.authed(s.data);
        other.close();
        p.send(other.auth);
      },
    }),
    () => {
      const o = rng.pick(['put', 'scan', 'retire', 'ping', 'import', 'purge', 'get']);
      return { what: `a ${o} frame first`, act: async () => {}, frame: [dataRequest(rng, o, 1, s, base)] };
    },
    () => {
      const bad = rng.pick<() => unknown>([
        () => ({ auth: 2, nonce: newNonce(), proof: newNonce() }),
        () => ({ auth: HANDSHAKE_VERSION, nonce: newNonce().subarray(0, 31), proof: newNonce() }),
        () => ({ auth: HANDSHAKE_VERSION, nonce: newNonce() }),
        () => ({ auth: HANDSHAKE_VERSION, nonce: newNonce(), proof: 'x'.repeat(32) }),
        () => ({ auth: '1', nonce: newNonce(), proof: newNonce() }),
        () => ({ auth: HANDSHAKE_VERSION, nonce: newNonce(), proof: newNonce(), pad: 'x'.repeat(2000) }),
        () => Object.fromEntries([['__proto__', { auth: HANDSHAKE_VERSION }]]),
        () => [{ auth: HANDSHAKE_VERSION }],
        () => null,
      ]);
      return { what: 'a malformed handshake', act: async (p) => p.send(bad()) };
    },
    () => {
      const g = rng.pick<() => Buffer>([
        () => rng.bytes(rng.range(1, 100)),
        () => Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
        () => Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00]),
        () => Buffer.from([0x00, 0x00, 0x10, 0x00]),
      ]);
      return { what: 'garbage instead of a handshake', act: async (p) => p.send(g()) };
    },
  ];
  const step = rng.pick(first)();
  return {
    name: `data ${s.id} unauthenticated: ${step.what}`,
    run: async () => {
      const p = await WirePeer.open(s.data);
      try {
        await step.act(p);
        if (step.frame) p.send(step.frame);
        if ((await p.closedWithin(HANDSHAKE_TIMEOUT_MS + 2 * SLACK_MS)) === 'open') return ['connection still open'];
        const problems: string[] = [];
        for (const f of p.drain()) {
          const d = f as { denied?: unknown; code?: unknown } | null;
          if (d?.denied !== HANDSHAKE_VERSION || d.code !== 'KV_ERR_AUTH_FAILED') problems.push(`sent ${preview(f)} to an unauthenticated peer`);
        }
        return problems;
      } finally {
        p.close();
      }
    },
  };
};

/** Reads and rebalancing queries at the edges of what is valid: answered or refused with a code, never an internal error. */
const dataReads: Generator = (rng, id) => {
  const s = rng.pick(w.shards);
  const e = w.epoch;
  const reqs: Req[] = [];
  for (let i = 1, n = rng.range(1, 4); i <= n; i++) {
    reqs.push(
      rng.pick<() => Req>([
        () => ({
          i,
          o: 'get',
          e,
          k: rng.pick([keyOn(s.id, `fz${id}-${i}`), 'x'.repeat(MAX_KEY), '\u00e9'.repeat(MAX_KEY / 2), '__proto__', 'constructor', BAD_UTF8_MARK]),
        }),
        () => ({ i, o: 'fetch', e, k: keyOn(s.id, `fz${id}-${i}`) }),
        () => ({
          i,
          o: 'scan',
          e,
          ranges: [rng.pick([{ lo: 0, hi: POINT_MAX }, { lo: POINT_MAX, hi: POINT_MAX }, { lo: 0, hi: 0 }, randomRange(rng)])],
          limit: rng.pick([1, 10_000, 2 ** 53 - 1]),
          maxBytes: rng.pick([1, 2 ** 53 - 1]),
        }),
        () => ({ i, o: 'scan', e, ranges: [randomRange(rng)], after: [rng.pick([0, POINT_MAX]), rng.pick(['a', 'x'.repeat(MAX_KEY), '\u00e9'])] }),
        () => ({ i, o: 'count', e, ranges: Array.from({ length: rng.pick([1, 100, 5000]) }, () => randomRange(rng)) }),
        () => ({ i, o: 'sync', e, me: rng.pick([0, e, e + rng.range(1, 100)]) }),
        () => ({ i, o: rng.pick(['ping', 'stats']), e: rng.pick([0, e, 2 ** 53 - 1]) }),
      ])(),
    );
  }
  return {
    name: `data ${s.id} reads: ${reqs.map((r) => String(r['o'])).join(', ')}`,
    run: async () => {
      const p = await WirePeer.authed(s.data);
      try {
        p.send(frameBytes(reqs));
        const answer = await p.next(10_000);
        if (!Array.isArray(answer) || answer.length !== reqs.length) return [`answered ${preview(answer)}`];
        return (answer as Array<{ i?: unknown; r?: unknown; err?: { code?: unknown; message?: unknown } }>)
          .filter((a) => a.err !== undefined && (!isErrorCode(a.err.code) || a.err.code === 'KV_ERR_INTERNAL'))
          .map((a) => `request ${String(a.i)} refused with ${String(a.err!.code)}: ${String(a.err!.message)}`);
      } finally {
        p.close();
      }
    },
  };
};

// ---------------------------------------------------------------------------
// Tenants, sessions and the paged scan, on a second router (dataAuth=true)
// over the same Redis and shards. Tenants A and B hold the same keys with
// their own values; B also holds keys A does not. B's values carry a marker
// that no request of a case carries, so no answer to anyone but B may.

const TA = 'fza';
const TB = 'fzb';
const SEED_KEYS = Array.from({ length: 20 }, (_, n) => `seed-${String(n).padStart(2, '0')}`);
/** Keys only tenant B holds. */
const B_ONLY = Array.from({ length: 8 }, (_, n) => `bonly-${n}`);
const MARK_B = 'SECRET-B';
/** Tenant A's cases may write keys under this prefix (and only there). */
const A_WRITE = 'fzw-';
const SCAN = '/v1/kv';
const BATCH = '/v1/kv/_batch';
const valueOf = (who: Who, key: string): string => (who === 'A' ? `value-a:${key}` : `${MARK_B}:${key}`);

type Who = 'A' | 'B';

interface Principal {
  readonly name: string;
  readonly keyId: string;
  readonly key: string;
  readonly session: string;
  /** A second session of the same key. */
  readonly other: string;
}

interface TenantWorld {
  readonly url: string;
  readonly port: number;
  readonly router: RouterProc;
  readonly workerPids: readonly number[];
  readonly A: Principal;
  readonly B: Principal;
  readonly revokedKey: string;
  readonly revokedKeyId: string;
  /** A session made with the revoked key (ended with it). */
  readonly revokedSession: string;
  readonly endedSession: string;
  readonly expiredSession: string;
}

let tw: TenantWorld;
/** Tenant A's well-behaved client, with its session, on the second router. */
let goodA: GoodClient;
/** Routers started besides the cluster's (stopped before it). */
const extraRouters: RouterProc[] = [];
/** Client keys tenant A's cases wrote or may have written (all under A_WRITE). */
const aWritten = new Set<string>();

async function startTenantWorld(): Promise<TenantWorld> {
  const base = { redisUrl: c.redis.url, prefix: c.prefix };
  const started = await Promise.allSettled([
    // The size limits of the first router; the default timeouts (no case here is slow on purpose, and a busy machine must not cut tenant A's client).
    startRouter({
      ...base,
      workers: 2,
      set: {
        maxValueBytes: MAX_VALUE,
        maxBodyBytes: MAX_BODY,
        maxKeyBytes: MAX_KEY,
        maxHeaderBytes: MAX_HEADER,
        maxBatchOps: MAX_BATCH,
        dataAuth: 'true',
        rebalanceCoordinator: 'false',
      },
    }),
    // Its sessions end a second after login, on every router.
    startRouter({ ...base, workers: 1, set: { dataAuth: 'true', rebalanceCoordinator: 'false', sessionIdleTimeoutMs: 1000, sessionAbsoluteTimeoutMs: 1000 } }),
  ]);
  for (const r of started) if (r.status === 'fulfilled') extraRouters.push(r.value);
  for (const r of started) if (r.status === 'rejected') throw r.reason;
  const [router, short] = extraRouters as [RouterProc, RouterProc];
  const url = router.url;
  const principal = async (name: string): Promise<Principal> => {
    const t = await tenantWithSession(url, name);
    return { name, keyId: t.key.id, key: t.key.key, session: t.session, other: await login(url, t.key.key) };
  };
  const [A, B] = await Promise.all([principal(TA), principal(TB)]);
  // A fresh connection: an idle keep-alive one would hold the router's drain.
  const expiring = await request('POST', `${short.url}/v1/sessions`, { headers: bearer(A.key), fresh: true });
  if (expiring.status !== 201) throw new Error(`login on the short-session router: ${expiring.status} ${expiring.text}`);
  const expiredSession = expiring.json<{ token: string }>().token;
  await short.stop();
  const revoked = await createApiKey(url, TA);
  const revokedSession = await login(url, revoked.key);
  await revokeApiKey(url, revoked.id);
  const endedSession = await login(url, A.key);
  await logout(url, endedSession);
  const seeds: Array<[Principal, string, string]> = [
    ...SEED_KEYS.map((k): [Principal, string, string] => [A, k, valueOf('A', k)]),
    ...[...SEED_KEYS, ...B_ONLY].map((k): [Principal, string, string] => [B, k, valueOf('B', k)]),
  ];
  await forEachLimit(seeds, 8, async ([p, key, value]) => {
    const r = await request('PUT', `${url}${KV}${key}`, { headers: { ...bearer(p.key), 'content-type': 'text/plain' }, body: value });
    if (r.status !== 204) throw new Error(`seeding ${p.name}/${key}: ${r.status} ${r.text}`);
  });
  // The expired session is refused everywhere before any case runs (its absolute expiry is a second after login).
  await waitUntil(async () => (await request('GET', `${url}/v1/sessions/current`, { headers: bearer(expiredSession), fresh: true })).status === 401, {
    timeoutMs: 10_000,
    what: 'the short session to expire',
  });
  return {
    url,
    port: router.port,
    router,
    workerPids: [...router.workerPids],
    A,
    B,
    revokedKey: revoked.key,
    revokedKeyId: revoked.id,
    revokedSession,
    endedSession,
    expiredSession,
  };
}

/** Credentials as a request carries them, and what they amount to. */
interface Cred {
  readonly label: string;
  readonly headers: ReadonlyArray<[string, string]>;
  /** Valid: whose data they reach… */
  readonly who?: Who;
  /** …as what (where page tokens live: an API key's state, or a session's). */
  readonly as?: 'key' | 'session' | 'other';
  /** Not valid: what a data request gets (undefined: some refusal, not foretold). */
  readonly refusal?: 'KV_ERR_AUTH_REQUIRED' | 'KV_ERR_BAD_CREDENTIALS';
}

const ALNUM = [...'abcdefghijklmnopqrstuvwxyz0123456789'];
const b64url = (rng: Rng, n: number) => rng.bytes(n).toString('base64url');
const forgedKey = (rng: Rng) => `kvk_${Array.from({ length: 12 }, () => rng.pick(ALNUM)).join('')}_${b64url(rng, 32)}`;
const forgedSession = (rng: Rng) => `kvs_${b64url(rng, 32)}`;
const authH = (v: string): [string, string] => ['authorization', v];
const cookieH = (v: string): [string, string] => ['cookie', v];

function credential(rng: Rng): Cred {
  const { A, B } = tw;
  const valid = (label: string, who: Who, as: 'key' | 'session' | 'other', ...headers: Array<[string, string]>): Cred => ({ label, headers, who, as });
  const bad = (label: string, ...headers: Array<[string, string]>): Cred => ({ label, headers, refusal: 'KV_ERR_BAD_CREDENTIALS' });
  const none = (label: string, ...headers: Array<[string, string]>): Cred => ({ label, headers, refusal: 'KV_ERR_AUTH_REQUIRED' });
  return rng.weighted<() => Cred>([
    [6, () => valid('A key', 'A', 'key', authH(`Bearer ${A.key}`))],
    [6, () => valid('A session', 'A', 'session', authH(`Bearer ${A.session}`))],
    [2, () => valid("A's other session", 'A', 'other', authH(`Bearer ${A.other}`))],
    [4, () => valid('A session cookie', 'A', 'session', cookieH(`kv_session=${A.session}`))],
    [1, () => valid('A session after two spaces', 'A', 'session', authH(`Bearer  ${A.session}`))],
    [1, () => valid('A cookie with attributes', 'A', 'session', cookieH(`kv_session=${A.session}; Secure; HttpOnly; Path=/`))],
    [1, () => valid('A cookie after another', 'A', 'session', cookieH(`theme=dark; kv_session=${A.session}`))],
    [1, () => valid('A cookie, then a B cookie', 'A', 'session', cookieH(`kv_session=${A.session}; kv_session=${B.session}`))],
    [1, () => valid('two Cookie headers', 'A', 'session', cookieH('theme=dark'), cookieH(`kv_session=${A.session}`))],
    [1, () => valid('A cookie in spaces', 'A', 'session', cookieH(` kv_session = ${A.session} `))],
    [1, () => valid('A bearer over a B cookie', 'A', 'key', authH(`Bearer ${A.key}`), cookieH(`kv_session=${B.session}`))],
    [1, () => valid('A bearer, then a forged one', 'A', 'session', authH(`Bearer ${A.session}`), authH(`Bearer ${forgedSession(rng)}`))],
    [2, () => valid('B key', 'B', 'key', authH(`Bearer ${B.key}`))],
    [2, () => valid('B session', 'B', 'session', authH(`Bearer ${B.session}`))],
    [1, () => valid('B session cookie', 'B', 'session', cookieH(`kv_session=${B.session}`))],
    [1, () => valid('B bearer over an A cookie', 'B', 'key', authH(`Bearer ${B.key}`), cookieH(`kv_session=${A.session}`))],
    [3, () => none('no credentials')],
    [1, () => none('a KV_SESSION cookie', cookieH(`KV_SESSION=${A.session}`))],
    [1, () => none('a kv_sessionx cookie', cookieH(`kv_sessionx=${A.session}; other=1`))],
    [2, () => bad('a forged API key', authH(`Bearer ${forgedKey(rng)}`))],
    [2, () => bad('a forged session', authH(`Bearer ${forgedSession(rng)}`))],
    [1, () => bad("B's key id with A's secret", authH(`Bearer kvk_${B.keyId}_${A.key.slice(-43)}`))],
    [1, () => bad('a wrong prefix', authH(`Bearer ${rng.pick(['kvx_', 'KVS_', 'kvs-', 'kvk_', 'kv_', ''])}${A.session.slice(4)}`))],
    [1, () => bad('truncated', authH(`Bearer ${rng.pick([A.session, A.key])}`.slice(0, -rng.range(1, 20))))],
    [1, () => bad('overlong', authH(`Bearer ${rng.pick([A.session, A.key])}${rng.pick(['A', '=', '_x', A.session])}`))],
    [1, () => bad('a percent-encoded lone surrogate', authH(`Bearer kvs_%ED%A0%80${A.session.slice(13)}`))],
    [1, () => ({ label: 'non-ASCII', headers: [authH(`Bearer kvs_\u00e9${A.session.slice(5)}`)] })],
    [1, () => bad('a revoked key', authH(`Bearer ${tw.revokedKey}`))],
    [1, () => bad("the revoked key's session", authH(`Bearer ${tw.revokedSession}`))],
    [1, () => bad('an ended session', rng.chance(0.5) ? authH(`Bearer ${tw.endedSession}`) : cookieH(`kv_session=${tw.endedSession}`))],
    [1, () => bad('an expired session', rng.chance(0.5) ? authH(`Bearer ${tw.expiredSession}`) : cookieH(`kv_session=${tw.expiredSession}`))],
    [1, () => bad('forged, then A', authH(`Bearer ${forgedSession(rng)}`), authH(`Bearer ${A.session}`))],
    [1, () => bad('Bearer and no token', authH(rng.pick(['Bearer', 'Bearer ', 'Bearer    '])))],
    [
      1,
      () =>
        bad(
          'another scheme',
          authH(
            rng.pick([
              `bearer ${A.session}`,
              `BEARER ${A.session}`,
              `Basic ${Buffer.from(`${A.key}:`).toString('base64')}`,
              `Token ${A.key}`,
              A.session,
              `Bearer:${A.session}`,
              `Bearer\t${A.session}`,
            ]),
          ),
        ),
    ],
    [1, () => bad('the admin token', authH(`Bearer ${TOKEN}`))],
    [1, () => bad('a forged bearer over an A cookie', authH(`Bearer ${forgedKey(rng)}`), cookieH(`kv_session=${A.session}`))],
    [1, () => bad('an empty cookie', cookieH(rng.pick(['kv_session=', 'kv_session= ', 'kv_session=;'])))],
    [1, () => bad('a quoted cookie', cookieH(`kv_session="${A.session}"`))],
    [1, () => bad('an API key in the cookie', cookieH(`kv_session=${rng.pick([A.key, B.key])}`))],
    [1, () => bad('a huge cookie', cookieH(`kv_session=${'a'.repeat(rng.range(100, 6000))}`))],
    [1, () => bad('a forged cookie, then A', cookieH(`kv_session=${forgedSession(rng)}; kv_session=${A.session}`))],
    [1, () => bad('a cookie with %00', cookieH(`kv_session=${A.session}%00`))],
  ])();
}

type Reach = Who | 'anon';

/** Whose keys a request with `cr` reaches on `port` (undefined: refused). The first router takes callers without credentials. */
function reach(cr: Cred, port: number): Reach | undefined {
  if (cr.who) return cr.who;
  return port === w.router && cr.refusal === 'KV_ERR_AUTH_REQUIRED' ? 'anon' : undefined;
}

/** Where `cr`'s page tokens live (the same place: the same caller). */
const stateOf = (cr: Cred, p: Reach): string => (p === 'anon' ? 'anon' : `${p}:${cr.as}`);

/** What a seeded key holds for `p`: its value, or undefined (absent). */
function holds(p: Reach, key: string): string | undefined {
  if (p === 'anon') return undefined;
  if (SEED_KEYS.includes(key) || (p === 'B' && B_ONLY.includes(key))) return valueOf(p, key);
  return undefined;
}

/** A /v1/kv/ path segment that names a tenant namespace (U+FFFF, U+FFFE): a key no client may use. */
function namespacePath(rng: Rng): string {
  const k = rng.pick([...SEED_KEYS, ...B_ONLY]);
  return rng.pick([
    `%EF%BF%BF${TB}%EF%BF%BF${k}`,
    `%EF%BF%BF${TA}%EF%BF%BF${k}`,
    `%EF%BF%BE${TB}%EF%BF%BE${k}`,
    `${k}%EF%BF%BF`,
    '%EF%BF%BF',
    `a%EF%BF%BEb`,
    `%EF%BF%BF${TB}%EF%BF%BF`,
  ]);
}

/** B's values in an answer to anyone else: the body, any header, or a base64 batch value. */
function leakProblems(p: Reach | undefined, res: RawResponse): string[] {
  if (p === 'B') return [];
  const problems: string[] = [];
  const text = res.body.toString('latin1');
  if (text.includes(MARK_B)) problems.push(`the answer shows tenant ${TB}'s data: ${JSON.stringify(text.slice(0, 300))}`);
  for (const [n, v] of Object.entries(res.headers)) if (v.includes(MARK_B)) problems.push(`header ${n} shows tenant ${TB}'s data`);
  const results = (res.json as { results?: unknown } | undefined)?.results;
  if (Array.isArray(results))
    for (const r of results as Array<{ value?: unknown; encoding?: unknown }>)
      if (r?.encoding === 'base64' && typeof r.value === 'string' && Buffer.from(r.value, 'base64').toString('latin1').includes(MARK_B))
        problems.push(`a base64 batch value shows tenant ${TB}'s data`);
  return problems;
}

/** A GET of a seeded key that answered 200 must show what `p` holds. */
function readProblems(p: Reach | undefined, key: string, res: RawResponse, method: string): string[] {
  if (res.status !== 200 || method !== 'GET') return [];
  const want = p === undefined ? undefined : holds(p, key);
  const got = res.body.toString('utf8');
  if (want === undefined) return [`read ${JSON.stringify(key)} (${JSON.stringify(got.slice(0, 100))}), which ${p ?? 'a refused caller'} does not hold`];
  return got === want ? [] : [`read ${JSON.stringify(key)} as ${JSON.stringify(got.slice(0, 100))}, expected ${JSON.stringify(want)}`];
}

/** Refusals of a PUT whatever the key holds (no If-Match: * here: a seeded key exists). */
const SURE_PUT_REFUSALS: readonly Mutation[] = [
  (d, r) => setQuery(d, 'ttl', r.pick(BAD_TTLS)),
  (d, r) => setHeader(d, 'x-kv-ttl', r.pick(BAD_TTL_HEADERS)),
  (d, r) => d.query.push(r.pick(UNKNOWN_PARAMS)),
  (d, r) => setHeader(d, 'content-type', r.pick(BAD_CONTENT_TYPES)),
  (d, r) => setHeader(d, 'if-match', r.pick(BAD_IF_MATCH)),
  (d) => setHeader(d, 'if-match', '"1"'),
  (d, r) => setHeader(d, 'if-none-match', r.pick(BAD_IF_NONE_MATCH)),
  (d) => setHeader(d, 'expect', 'foo'),
  (d, r) => {
    d.method = r.pick(['POST', 'PATCH']);
  },
  (d, r) => {
    d.body = r.bytes(MAX_VALUE + r.range(1, 2000));
  },
];
const SURE_DEL_REFUSALS: readonly Mutation[] = [
  (d, r) => setHeader(d, 'if-match', r.pick(BAD_IF_MATCH)),
  (d) => setHeader(d, 'if-match', '"1"'),
  (d, r) => d.query.push(r.pick([...UNKNOWN_PARAMS, 'ttl=5'])),
  (d) => setHeader(d, 'expect', 'foo'),
];

/** Port and credentials of a tenant case: mostly the second router, some the first (where no credentials are anonymous). */
function tenantTarget(rng: Rng): { port: number; cr: Cred; p: Reach | undefined } {
  const port = rng.chance(0.8) ? tw.port : w.router;
  const cr = credential(rng);
  return { port, cr, p: reach(cr, port) };
}

const routerName = (port: number) => (port === w.router ? 'router' : 'router2');

/** Reads, writes and batches of the data API with every kind of credentials. */
const tenantKv: Generator = (rng, id) => {
  const { port, cr, p } = tenantTarget(rng);
  /** No other defect: the answer is foretold exactly. */
  const exact = rng.chance(0.6);
  const kind = rng.weighted([
    [4, 'read'],
    [3, 'write'],
    [3, 'batch'],
  ] as const);
  let d: Draft;
  let expect: HttpExpect = 'refuse';
  let o: HttpCheck = {};
  let inspect: (res: RawResponse) => string[] = (res) => leakProblems(p, res);
  const refused401 = (): HttpCheck => (cr.refusal ? { status: 401, code: cr.refusal } : {});
  if (kind === 'read') {
    const t = rng.weighted<() => { raw: string; known?: boolean; ns?: boolean }>([
      [4, () => ({ raw: rng.pick(SEED_KEYS), known: true })],
      [2, () => ({ raw: rng.pick(B_ONLY), known: true })],
      [2, () => ({ raw: namespacePath(rng), ns: true })],
      [2, () => ({ raw: pathKey(rng, `fzr${id}`) })],
    ])();
    const known = t.known ? t.raw : undefined;
    // A path that is no valid URL is refused before the credentials are looked at.
    const hostile = !t.known && !t.ns;
    d = draft(rng.pick(['GET', 'GET', 'HEAD']), KV + t.raw);
    d.headers.push(...cr.headers);
    if (!exact) maybes(rng, d, 2);
    if (!p) {
      if (exact && !hostile) o = refused401();
    } else if (!exact) expect = 'any';
    else if (t.ns) o = { status: 400, code: 'KV_ERR_KEY_INVALID' };
    else if (known !== undefined) {
      const v = holds(p, known);
      if (v === undefined) o = { status: 404, code: 'KV_ERR_NOT_FOUND' };
      else {
        expect = 'any';
        o = { status: 200 };
      }
    } else expect = 'any';
    const method = d.method;
    if (known !== undefined) inspect = (res) => [...leakProblems(p, res), ...readProblems(p, known, res, method)];
  } else if (kind === 'write') {
    const del = rng.chance(0.3);
    if (p === 'A' && rng.chance(0.5)) {
      // Tenant A writes its own keys: they may exist afterwards.
      const key = `${A_WRITE}${id}-${rng.int(3)}`;
      aWritten.add(key);
      d = draft(del ? 'DELETE' : 'PUT', KV + encodeURIComponent(key), del ? undefined : `a-written-${id}`);
      d.headers.push(...cr.headers);
      if (!exact) maybes(rng, d, 1);
      expect = 'any';
    } else {
      const hostile = rng.chance(2 / 9);
      const raw = hostile
        ? pathKey(rng, `fzr${id}`)
        : rng.weighted<() => string>([
            [3, () => rng.pick(SEED_KEYS)],
            [2, () => rng.pick(B_ONLY)],
            [2, () => namespacePath(rng)],
          ])();
      d = draft(del ? 'DELETE' : 'PUT', KV + raw, del ? undefined : rng.bytes(rng.int(100)));
      d.headers.push(...cr.headers);
      if (p === 'anon' && !raw.includes('%EF%BF%B')) tryPath(raw);
      if (p !== undefined || !exact) {
        maybes(rng, d, exact ? 0 : 2);
        // A caller that may write gets a sure refusal; a namespace path is one by itself.
        if (!raw.includes('%EF%BF%B') || p === undefined) rng.pick(del ? SURE_DEL_REFUSALS : SURE_PUT_REFUSALS)(d, rng);
        else if (exact) o = { status: 400, code: 'KV_ERR_KEY_INVALID' };
      } else if (!hostile) o = refused401();
    }
  } else {
    // POST /v1/kv/_batch.
    const n = rng.range(1, 6);
    const ops: BatchOp[] = [];
    const how = rng.weighted<'reads' | 'a-writes' | 'namespace' | 'preconditions' | 'invalid'>([
      [3, 'reads'],
      [p === 'A' ? 3 : 0, 'a-writes'],
      [2, 'namespace'],
      [p !== undefined ? 2 : 0, 'preconditions'],
      [2, 'invalid'],
    ]);
    const seeded = () => rng.pick([...SEED_KEYS, ...B_ONLY]);
    for (let i = 0; i < n; i++) {
      if (how === 'reads') ops.push({ op: 'get', key: seeded() });
      else if (how === 'a-writes') {
        const key = `${A_WRITE}${id}-${i}`;
        const kindOf = rng.pick(['get', 'put', 'put', 'del', 'seed']);
        if (kindOf === 'seed') ops.push({ op: 'get', key: seeded() });
        else {
          aWritten.add(key);
          ops.push(kindOf === 'put' ? { op: 'put', key, value: `a-written-${id}` } : { op: kindOf, key });
        }
      } else if (how === 'preconditions') {
        // Writes of seeded keys (or fresh ones) that run, each meeting a version that is not its own.
        const key = rng.chance(0.7) ? seeded() : `fzr${id}-${i}`;
        ops.push(rng.chance(0.6) ? { op: 'put', key, value: 'x', ifMatch: rng.pick<Json>([7, '"7"']) } : { op: 'del', key, ifMatch: 7 });
      } else ops.push(rng.chance(0.5) ? { op: 'get', key: seeded() } : { op: 'put', key: rng.chance(0.5) ? seeded() : `fzr${id}-${i}`, value: 'x' });
    }
    if (how === 'namespace') {
      const ns = rng.pick(['\uffff', '\ufffe']);
      ops[rng.int(ops.length)]!['key'] = rng.pick([`${ns}${TB}${ns}${rng.pick(SEED_KEYS)}`, `${ns}${TA}${ns}${rng.pick(SEED_KEYS)}`, `k${ns}`, ns]);
    }
    if (how === 'invalid') rng.pick(OP_REFUSALS)(rng.pick(ops), rng);
    let text = JSON.stringify({ ops });
    // U+FFFF as a JSON escape, or as its UTF-8 bytes.
    if (rng.chance(0.5)) text = text.replace(/\uffff/g, '\\uffff').replace(/\ufffe/g, '\\ufffe');
    d = draft('POST', BATCH, text);
    setHeader(d, 'content-type', 'application/json');
    d.headers.push(...cr.headers);
    if (!exact) maybes(rng, d, 1);
    if (!p) {
      if (exact) o = refused401();
    } else if (how === 'namespace') {
      if (exact) o = { status: 400, code: 'KV_ERR_KEY_INVALID' };
    } else if (how === 'preconditions') expect = 'batch';
    else if (how !== 'invalid') expect = 'any';
    const sent = ops.map((x) => x['key']);
    inspect = (res) => {
      const problems = leakProblems(p, res);
      const results = (res.json as { results?: Array<{ key?: unknown; status?: number; value?: string; encoding?: string }> } | undefined)?.results;
      if (res.status !== 200 || !Array.isArray(results)) return problems;
      if (results.length !== sent.length) problems.push(`${results.length} results for ${sent.length} ops`);
      for (const [i, r] of results.entries()) {
        if (r.key !== sent[i]) problems.push(`result ${i} names ${JSON.stringify(r.key)}, the op ${JSON.stringify(sent[i])}`);
        const key = String(sent[i]);
        if (!SEED_KEYS.includes(key) && !B_ONLY.includes(key)) continue;
        const want = p === undefined ? undefined : holds(p, key);
        const got =
          r.status === 200 && typeof r.value === 'string' ? (r.encoding === 'base64' ? Buffer.from(r.value, 'base64').toString('utf8') : r.value) : undefined;
        if (ops[i]!['op'] === 'get' && (r.status === 200 ? got !== want : want !== undefined && r.status === 404))
          problems.push(`result ${i} (get ${key}): ${r.status} ${JSON.stringify(got)}, expected ${JSON.stringify(want ?? 'absent')}`);
      }
      return problems;
    };
  }
  if (!p) expect = 'refuse';
  return {
    name: `${routerName(port)} tenant ${kind} ${d.method} ${d.path.slice(0, 50)} with ${cr.label}${exact ? '' : ' (mutated)'}`,
    run: () => send(port, d, expect, { ...o, inspect }),
  };
};

interface ScanQuery {
  readonly raw: string | undefined;
  /** The prefix as the router reads it (a good one). */
  readonly value?: string;
  /** Refused with this, whoever asks. */
  readonly bad?: 'KV_ERR_KEY_INVALID' | 'KV_ERR_KEY_TOO_LONG' | 'KV_ERR_BAD_QUERY';
  /** Too long once a tenant's namespace is counted. */
  readonly long?: boolean;
}

function scanPrefix(rng: Rng): ScanQuery {
  const same = (raw: string | undefined, value = raw ?? '') => ({ raw, value });
  return rng.weighted<() => ScanQuery>([
    [6, () => same(undefined)],
    [8, () => same('seed-')],
    [2, () => same('seed-0')],
    [2, () => same('bonly-')],
    [2, () => same(A_WRITE)],
    [1, () => same('')],
    [1, () => same('gooda-')],
    [1, () => same('good-')],
    [1, () => same(rng.pick(['%FF', '%ED%A0%80', '%']))],
    [1, () => same('%C3%A9', '\u00e9')],
    [1, () => same('%F0%9F%98%80', '\u{1F600}')],
    [1, () => same('seed%2D', 'seed-')],
    [1, () => same('a+b', 'a b')],
    [1, () => same('__proto__')],
    [
      3,
      () => ({
        raw: rng.pick(['%EF%BF%BF', `%EF%BF%BF${TB}%EF%BF%BF`, `%EF%BF%BF${TA}%EF%BF%BFseed-`, '%EF%BF%BE', 'seed-%EF%BF%BF', `%EF%BF%BE${TB}`]),
        bad: 'KV_ERR_KEY_INVALID',
      }),
    ],
    [1, () => ({ raw: rng.pick(['a%01', '%00', 'seed-%0A', '%1B', 'a%7F']), bad: 'KV_ERR_KEY_INVALID' })],
    [1, () => ({ raw: 'x'.repeat(MAX_KEY + 1), bad: 'KV_ERR_KEY_TOO_LONG' })],
    [1, () => ({ raw: 'x'.repeat(MAX_KEY - 5), value: 'x'.repeat(MAX_KEY - 5), long: true })],
    [1, () => ({ raw: 'seed-&prefix=seed-', bad: 'KV_ERR_BAD_QUERY' })],
  ])();
}

function scanLimit(rng: Rng): { raw: string | undefined; value: number; bad?: boolean } {
  return rng.weighted<() => { raw: string | undefined; value: number; bad?: boolean }>([
    [5, () => ({ raw: undefined, value: 100 })],
    [
      8,
      () => {
        const n = rng.pick([1, 2, 3, 5, 7]);
        return { raw: String(n), value: n };
      },
    ],
    [1, () => ({ raw: '1000', value: 1000 })],
    [1, () => ({ raw: '00005', value: 5 })],
    [
      3,
      () => ({
        raw: rng.pick(['0', '-1', '1e9', 'x', '', '1.5', '+5', '%205', '99999', '1001', '0x5', '1e3', '100000', '5%00', 'Infinity', 'NaN', '9'.repeat(400)]),
        value: NaN,
        bad: true,
      }),
    ],
    [1, () => ({ raw: '5&limit=5', value: NaN, bad: true })],
  ])();
}

/** The keys `p` may hold. */
function mayHold(p: Reach, key: string): boolean {
  if (key.includes('\uffff') || key.includes('\ufffe')) return false;
  if (p === 'A') return SEED_KEYS.includes(key) || aWritten.has(key) || goodA.keys.has(key);
  if (p === 'B') return SEED_KEYS.includes(key) || B_ONLY.includes(key);
  return !/^(seed-|bonly-|fzw-|gooda-)/.test(key);
}

/** Everything wrong with a page of `p`'s scan of `prefix`, after `after` (a key of the page before). */
function pageProblems(p: Reach, res: RawResponse, prefix: string, limit: number, after?: string): string[] {
  const doc = res.json as { keys?: Array<{ key?: unknown; etag?: unknown }>; next?: unknown } | undefined;
  if (!doc || !Array.isArray(doc.keys) || !(doc.next === null || typeof doc.next === 'string')) return [`not a page: ${preview(doc)}`];
  const problems: string[] = [];
  const keys = doc.keys.map((k) => String(k.key));
  if (keys.length > limit) problems.push(`${keys.length} keys in a page of limit ${limit}`);
  for (const [i, k] of keys.entries()) {
    if (!k.startsWith(prefix)) problems.push(`lists ${JSON.stringify(k)}, outside the prefix ${JSON.stringify(prefix)}`);
    if (!mayHold(p, k)) problems.push(`lists ${JSON.stringify(k)}, which ${p} does not hold`);
    if (i > 0 && compareKeys(keys[i - 1]!, k) >= 0) problems.push(`lists ${JSON.stringify(k)} after ${JSON.stringify(keys[i - 1])}`);
    if (i === 0 && after !== undefined && compareKeys(after, k) >= 0)
      problems.push(`the next page starts with ${JSON.stringify(k)}, not after ${JSON.stringify(after)}`);
    if (typeof doc.keys[i]!.etag !== 'string' || !/^"\d+"$/.test(doc.keys[i]!.etag as string)) problems.push(`etag ${preview(doc.keys[i]!.etag)}`);
  }
  // Prefixes only the seeding wrote: the page is exactly the next seeded keys.
  if (p !== 'anon' && ['seed-', 'seed-0', 'bonly-'].includes(prefix)) {
    const all = [...SEED_KEYS, ...(p === 'B' ? B_ONLY : [])].filter((k) => k.startsWith(prefix) && (after === undefined || compareKeys(after, k) < 0));
    const want = all.slice(0, limit);
    if (JSON.stringify(keys) !== JSON.stringify(want)) problems.push(`listed ${JSON.stringify(keys)}, expected ${JSON.stringify(want)}`);
    if (doc.next === null && all.length > limit) problems.push(`no next page, though ${all.length - limit} keys remain`);
  }
  return problems.length > 0 ? [...problems.slice(0, 10), `the page: ${preview(doc)}`] : [];
}

/** Change a page token so that it names no cursor (a new token, or none). */
function tamper(rng: Rng, t: string): string {
  const at = rng.int(t.length);
  const swap = (ch: string) => (ch === 'A' ? 'B' : 'A');
  return rng.pick<() => string>([
    () => t.slice(0, at) + swap(t[at]!) + t.slice(at + 1),
    () => t.slice(0, -1),
    () => `${t}A`,
    () => `${t}${t}`,
    () => `x${t}`,
    () => '',
    () => `${t}%00`,
    () => `${t}%EF%BF%BF`,
    () => `cursor:${t}`,
    () => `..%2F${t}`,
    () => (t.toUpperCase() === t ? `${t}z` : t.toUpperCase()),
  ])();
}

/** GET /v1/kv: first pages with good and bad prefixes and limits, then its page token used well and badly. */
const tenantScan: Generator = (rng) => {
  const { port, cr, p } = tenantTarget(rng);
  const prefix = scanPrefix(rng);
  const limit = scanLimit(rng);
  const query = [...(prefix.raw !== undefined ? [`prefix=${prefix.raw}`] : []), ...(limit.raw !== undefined ? [`limit=${limit.raw}`] : [])];
  const extra = rng.weighted([
    [95, 'none'],
    [4, 'unknown'],
    [1, 'empty-page'],
  ] as const);
  if (extra === 'unknown') query.push(rng.pick([...UNKNOWN_PARAMS, 'cursor=x', 'Prefix=seed-', 'LIMIT=5']));
  if (extra === 'empty-page') query.push(rng.pick(['page=', 'page']));
  const d = draft(rng.pick(['GET', 'GET', 'GET', 'HEAD']), SCAN);
  d.query = query;
  d.headers.push(...cr.headers);
  // The router's checks in order: the query's names, the credentials, then the prefix and the limit.
  let want: HttpCheck;
  const repeated = prefix.bad === 'KV_ERR_BAD_QUERY' || limit.raw === '5&limit=5';
  if (extra === 'unknown') want = { status: 400, code: 'KV_ERR_BAD_QUERY' };
  else if (repeated) want = { status: 400, code: 'KV_ERR_BAD_QUERY' };
  else if (!p) want = cr.refusal ? { status: 401, code: cr.refusal } : {};
  else if (extra === 'empty-page') want = { status: 400, code: 'KV_ERR_BAD_PAGE_TOKEN' };
  else if (prefix.bad) want = { status: 400, code: prefix.bad };
  else if (prefix.long && p !== 'anon') want = { status: 400, code: 'KV_ERR_KEY_TOO_LONG' };
  else if (limit.bad) want = { status: 400, code: 'KV_ERR_BAD_QUERY' };
  else want = { status: 200 };
  const ok = want.status === 200;
  const abuse = ok && d.method === 'GET' ? rng.pick(['none', 'proper', 'twice', 'other', 'tampered', 'mismatch', 'same', 'repeated'] as const) : 'none';
  const other = abuse === 'other' ? tenantTarget(rng) : undefined;
  // The token is known only when the case runs: how it is tampered with is drawn now.
  const tamperRng = new Rng(rng.int(2 ** 32));
  const mismatch = rng.pick([
    `prefix=${prefix.value === 'seed-' ? 'seed-0' : 'seed-'}`,
    `limit=${limit.value === 3 ? 4 : 3}`,
    'limit=x',
    'limit=0',
    prefix.value === '' ? 'prefix=x' : 'prefix=',
  ]);
  return {
    name: `${routerName(port)} scan ${d.method} ?${query.join('&').slice(0, 60)} with ${cr.label}, then ${abuse}${other ? ` by ${other.cr.label}` : ''}`,
    run: async () => {
      let first: RawResponse | undefined;
      const problems = await send(port, d, ok ? 'any' : 'refuse', {
        ...want,
        inspect: (res) => {
          first = res;
          const more = leakProblems(p, res);
          if (res.status === 200 && p && d.method === 'GET') more.push(...pageProblems(p, res, prefix.value ?? '', limit.value));
          return more;
        },
      });
      const next = (first?.json as { next?: unknown } | undefined)?.next;
      if (problems.length > 0 || abuse === 'none' || typeof next !== 'string' || !p) return problems;
      const keys = ((first!.json as { keys: Array<{ key: string }> }).keys ?? []).map((k) => k.key);
      const last = keys[keys.length - 1];
      const page = (token: string, c2: Cred, extra: string[] = []) => {
        const pd = draft('GET', SCAN);
        pd.query = [`page=${token}`, ...extra];
        pd.headers.push(...c2.headers);
        return pd;
      };
      const good = (what: string, c2: Cred, p2: Reach, port2 = port) =>
        send(port2, page(next, c2), 'any', {
          status: 200,
          inspect: (res) => [...leakProblems(p2, res), ...pageProblems(p2, res, prefix.value ?? '', limit.value, last)],
        }).then((x) => x.map((m) => `${what}: ${m}`));
      const refused = (what: string, pd: Draft, o: HttpCheck, p2: Reach | undefined, port2 = port) =>
        send(port2, pd, 'refuse', { ...o, inspect: (res) => leakProblems(p2, res) }).then((x) => x.map((m) => `${what}: ${m}`));
      const badToken: HttpCheck = { status: 400, code: 'KV_ERR_BAD_PAGE_TOKEN' };
      switch (abuse) {
        case 'proper':
          return good('the next page', cr, p);
        case 'twice':
          return [...(await good('the next page', cr, p)), ...(await refused('the token again', page(next, cr), badToken, p))];
        case 'other': {
          const { cr: c2, p: p2, port: port2 } = other!;
          // The same caller (its session by cookie, say) may use it; anyone else is refused and leaves it as it was.
          if (p2 !== undefined && stateOf(c2, p2) === stateOf(cr, p)) return good(`the next page by ${c2.label}`, c2, p2, port2);
          const o = p2 === undefined ? (c2.refusal ? { status: 401, code: c2.refusal } : {}) : badToken;
          return [...(await refused(`the token used by ${c2.label}`, page(next, c2), o, p2, port2)), ...(await good('then its own caller', cr, p))];
        }
        case 'tampered': {
          const t = tamper(tamperRng, next);
          return [
            ...(await refused(`a tampered token ${JSON.stringify(t.slice(0, 60))}`, page(t, cr), badToken, p)),
            ...(await good('then the real one', cr, p)),
          ];
        }
        case 'mismatch':
          return [
            ...(await refused(`the token with ${mismatch}`, page(next, cr, [mismatch]), badToken, p)),
            ...(await refused('then the token alone (used up)', page(next, cr), badToken, p)),
          ];
        case 'same': {
          const pd = page(next, cr, [`prefix=${encodeURIComponent(prefix.value ?? '')}`, `limit=${limit.value}`]);
          return (
            await send(port, pd, 'any', {
              status: 200,
              inspect: (res) => [...leakProblems(p, res), ...pageProblems(p, res, prefix.value ?? '', limit.value, last)],
            })
          ).map((m) => `the token with the same prefix and limit: ${m}`);
        }
        case 'repeated':
          return [
            ...(await refused('page given twice', page(next, cr, [`page=${next}`]), { status: 400, code: 'KV_ERR_BAD_QUERY' }, p)),
            ...(await good('then the token alone', cr, p)),
          ];
        default:
          return problems;
      }
    },
  };
};

const SESSION_BODIES = ['{"tenant":"fzb"}', `{"tenant":"${TB}","keyId":"x"}`, '{"__proto__":{"tenant":"fzb"}}', 'null', '[', '', '{"ttl":1e9}', '\u0000\u00ff'];

/** POST /v1/sessions, GET, HEAD and DELETE /v1/sessions/current, and what is no session endpoint. */
const sessions: Generator = (rng, id) => {
  const port = rng.chance(0.85) ? tw.port : w.router;
  const what = rng.weighted([
    [4, 'login'],
    [3, 'current'],
    [2, 'logout'],
    [2, 'wrong'],
  ] as const);
  const queryDefect = rng.chance(0.08);
  const addQuery = (d: Draft) => {
    if (queryDefect) d.query.push(rng.pick(UNKNOWN_PARAMS));
  };
  const name = (d: Draft, label: string) => `${routerName(port)} session ${d.method} ${d.path} with ${label}`;
  if (what === 'login') {
    const cr = credential(rng);
    const huge = rng.chance(0.03);
    const d = draft('POST', '/v1/sessions', huge ? Buffer.alloc(MAX_BODY + 10, 0x61) : rng.chance(0.4) ? rng.pick(SESSION_BODIES) : undefined);
    if (d.body && rng.chance(0.7)) setHeader(d, 'content-type', 'application/json');
    d.headers.push(...cr.headers);
    addQuery(d);
    // Only an API key as a bearer logs in, and the session is its tenant's, whatever the body says.
    const loginOk = cr.who !== undefined && cr.as === 'key';
    const o: HttpCheck = queryDefect ? { status: 400 } : huge ? { status: 413 } : loginOk ? { status: 201 } : { status: 401 };
    const tenant = cr.who === 'A' ? TA : TB;
    const inspect = (res: RawResponse): string[] => {
      const problems = leakProblems(cr.who, res);
      if (res.status !== 201) return problems;
      const doc = res.json as { token?: unknown; tenant?: unknown } | undefined;
      if (typeof doc?.token !== 'string' || !/^kvs_[A-Za-z0-9_-]{43}$/.test(doc.token)) problems.push(`token ${preview(doc?.token)}`);
      if (doc?.tenant !== tenant) problems.push(`a session of ${preview(doc?.tenant)}, logged in with a key of ${tenant}`);
      const sc = res.headers['set-cookie'] ?? '';
      if (!sc.startsWith(`kv_session=${String(doc?.token)};`) || !/HttpOnly/.test(sc) || !/SameSite=Strict/.test(sc)) problems.push(`set-cookie ${sc}`);
      if (res.headers['cache-control'] !== 'no-store') problems.push(`cache-control ${String(res.headers['cache-control'])}`);
      return problems;
    };
    return { name: name(d, cr.label), run: () => send(port, d, loginOk && !queryDefect && !huge ? 'any' : 'refuse', { ...o, inspect }) };
  }
  if (what === 'current') {
    const cr = credential(rng);
    const d = draft(rng.pick(['GET', 'GET', 'HEAD']), '/v1/sessions/current');
    d.headers.push(...cr.headers);
    addQuery(d);
    const isSession = cr.who !== undefined && cr.as !== 'key';
    const o: HttpCheck = queryDefect ? { status: 400 } : isSession ? { status: 200 } : { status: 401 };
    const tenant = cr.who === 'A' ? TA : TB;
    const inspect = (res: RawResponse): string[] => {
      const problems = leakProblems(cr.who, res);
      if (res.status === 200 && d.method === 'GET' && (res.json as { tenant?: unknown } | undefined)?.tenant !== tenant)
        problems.push(`the session of ${cr.label} is ${preview(res.json)}`);
      return problems;
    };
    return { name: name(d, cr.label), run: () => send(port, d, isSession && !queryDefect ? 'any' : 'refuse', { ...o, inspect }) };
  }
  if (what === 'logout') {
    // The fuzz's own sessions must live: a session logs out only when it is made for the case.
    if (rng.chance(0.5)) {
      const who = rng.pick<Who>(['A', 'B']);
      const byCookie = rng.chance(0.5);
      const dataPort = rng.pick([tw.port, w.router]);
      return {
        name: `${routerName(port)} session logout of a new session of ${who}${byCookie ? ' by cookie' : ''}`,
        run: async () => {
          const token = await login(tw.url, tw[who].key);
          const h: Array<[string, string]> = [byCookie ? cookieH(`kv_session=${token}`) : authH(`Bearer ${token}`)];
          const d = draft('DELETE', '/v1/sessions/current');
          d.headers.push(...h);
          const problems = await send(port, d, 'any', {
            status: 204,
            inspect: (res) => (/^kv_session=;.*Max-Age=0/.test(res.headers['set-cookie'] ?? '') ? [] : [`set-cookie ${res.headers['set-cookie']}`]),
          });
          // Ended, on either router: for the session endpoints and for data.
          const after = draft('GET', '/v1/sessions/current');
          after.headers.push(...h);
          const data = draft('GET', `${KV}${SEED_KEYS[0]}`);
          data.headers.push(...h);
          problems.push(
            ...(await send(tw.port, after, 'refuse', { status: 401, code: 'KV_ERR_BAD_CREDENTIALS' })).map((m) => `afterwards: ${m}`),
            ...(await send(dataPort, data, 'refuse', { status: 401, code: 'KV_ERR_BAD_CREDENTIALS' })).map((m) => `data afterwards: ${m}`),
          );
          return problems;
        },
      };
    }
    let cr = credential(rng);
    for (let n = 0; n < 20 && cr.who !== undefined && cr.as !== 'key'; n++) cr = credential(rng);
    if (cr.who !== undefined && cr.as !== 'key') cr = { label: 'no credentials', headers: [], refusal: 'KV_ERR_AUTH_REQUIRED' };
    const d = draft('DELETE', '/v1/sessions/current', rng.chance(0.2) ? rng.pick(SESSION_BODIES) : undefined);
    d.headers.push(...cr.headers);
    addQuery(d);
    return { name: name(d, cr.label), run: () => send(port, d, 'refuse', { status: queryDefect ? 400 : 401, inspect: (res) => leakProblems(cr.who, res) }) };
  }
  const cr = credential(rng);
  const [method, path] = rng.pick<[string, string]>([
    ['GET', '/v1/sessions'],
    ['PUT', '/v1/sessions'],
    ['DELETE', '/v1/sessions'],
    ['PATCH', '/v1/sessions'],
    ['POST', '/v1/sessions/current'],
    ['PUT', '/v1/sessions/current'],
    ['PATCH', '/v1/sessions/current'],
    ['GET', '/v1/sessions/current/x'],
    ['DELETE', `/v1/sessions/${forgedSession(rng)}`],
    ['GET', '/v1/session'],
    ['POST', '/v1/sessions/'],
    ['GET', '/v1/sessions/__proto__'],
    ['OPTIONS', '/v1/sessions'],
  ]);
  const d = draft(method, path, rng.chance(0.3) ? rng.pick(SESSION_BODIES) : undefined);
  d.headers.push(...cr.headers);
  return { name: `${name(d, cr.label)} (${id})`, run: () => send(port, d, 'refuse', { inspect: (res) => leakProblems(cr.who, res) }) };
};

/** Tenant names the admin API refuses, as JSON. */
const BAD_TENANT_NAMES = [
  '"__proto__"',
  '"constructor"',
  '"toString"',
  '"FZA"',
  '"Fza"',
  `"${'a'.repeat(33)}"`,
  '"\\u00e9t\\u00e9"',
  '"\u00e9t\u00e9"',
  '"-abc"',
  '""',
  '" fza"',
  '"fza "',
  '"fz_a"',
  '"a/b"',
  '"\\u0000"',
  '"fza\\n"',
  '"\\ud800"',
  '"\\uffff"',
  '5',
  'null',
  '[]',
  '{}',
  'true',
];
const BAD_TENANT_PATHS = ['__proto__', 'constructor', 'FZA', '%C3%A9', 'a'.repeat(40), '%00', '-x', 'fz_a', '%EF%BF%BF', 'fza%20', '%20fza'];

/** /v1/admin/tenants and /v1/admin/keys: bad names, duplicates, missing tenants, unknown keys, forged tokens. */
const tenantAdmin: Generator = (rng, id) => {
  const port = rng.chance(0.5) ? tw.port : w.router;
  const authKind = rng.weighted([
    [6, 'admin'],
    [2, 'forged'],
    [1, 'tenant'],
  ] as const);
  const headers: Array<[string, string]> =
    authKind === 'admin' ? GOOD_AUTH : authKind === 'forged' ? rng.pick(BAD_AUTH) : [authH(`Bearer ${rng.pick([tw.A.key, tw.A.session, tw.B.key])}`)];
  const jsonBody = (d: Draft, body: string) => {
    d.body = Buffer.from(body);
    setHeader(d, 'content-type', 'application/json');
  };
  let d: Draft;
  let o: HttpCheck = {};
  let expect: HttpExpect = 'refuse';
  /** The route exists: without the admin token it is 401, whatever the rest. */
  let routed = true;
  /** Real key ids to check afterwards (a forged revocation must not have taken). */
  let stillWorks: string | undefined;
  switch (rng.pick(['list', 'create', 'create', 'key', 'revoke', 'revoke', 'wrong'] as const)) {
    case 'list':
      d = draft(rng.pick(['GET', 'HEAD']), '/v1/admin/tenants');
      if (rng.chance(0.2)) d.query.push(rng.pick(UNKNOWN_PARAMS));
      else {
        o = { status: 200 };
        expect = 'any';
      }
      break;
    case 'create': {
      d = draft('POST', '/v1/admin/tenants');
      const how = rng.pick(['bad-name', 'bad-name', 'duplicate', 'new', 'extra', 'proto', 'not-json', 'bad-json', 'empty'] as const);
      if (how === 'bad-name') {
        jsonBody(d, `{"name":${rng.pick(BAD_TENANT_NAMES)}}`);
        o = { status: 400, code: 'KV_ERR_BAD_TENANT' };
      } else if (how === 'duplicate') {
        jsonBody(d, `{"name":"${rng.pick([TA, TB])}"}`);
        o = { status: 409, code: 'KV_ERR_TENANT_EXISTS' };
      } else if (how === 'new') {
        jsonBody(d, `{"name":"fzt-${id}"}`);
        o = { status: 201 };
        expect = 'any';
      } else if (how === 'extra') {
        jsonBody(d, `{"name":"fzt-${id}","apiKeys":1}`);
        o = { status: 400, code: 'KV_ERR_BAD_REQUEST' };
      } else if (how === 'proto') {
        jsonBody(d, rng.pick([`{"__proto__":{"name":"fzt-${id}"}}`, `{"name":"fzt-${id}","__proto__":{}}`, '{"constructor":{"name":"x"}}']));
        o = { status: 400, code: 'KV_ERR_BAD_REQUEST' };
      } else if (how === 'not-json') {
        // Refused as not JSON (415), or as no media type at all (400).
        d.body = Buffer.from(`{"name":"fzt-${id}"}`);
        setHeader(d, 'content-type', rng.pick(NOT_JSON_TYPES));
      } else if (how === 'bad-json') {
        jsonBody(d, rng.pick(['{"name":', '[]', '"fza"', '{"name":"fza"}x', 'nul']));
        o = { status: 400, code: 'KV_ERR_BAD_JSON' };
      } else o = { status: 400, code: 'KV_ERR_BAD_TENANT' };
      break;
    }
    case 'key': {
      const how = rng.pick(['missing', 'bad-name', 'real', 'body'] as const);
      const name = how === 'missing' ? `nope-${id}` : how === 'bad-name' ? rng.pick(BAD_TENANT_PATHS) : rng.pick([TA, TB]);
      d = draft('POST', `/v1/admin/tenants/${name}/keys`);
      if (how === 'missing') o = { status: 404, code: 'KV_ERR_TENANT_NOT_FOUND' };
      else if (how === 'bad-name') o = { status: 400, code: 'KV_ERR_BAD_TENANT' };
      else if (how === 'real') {
        o = { status: 201 };
        expect = 'any';
      } else {
        jsonBody(d, rng.pick(['{"x":1}', `{"tenant":"${TB}"}`]));
        o = { status: 400, code: 'KV_ERR_BAD_REQUEST' };
      }
      break;
    }
    case 'revoke': {
      const how = rng.pick(['unknown', 'revoked', 'malformed', 'real'] as const);
      // A real key only with a token that is not the admin's: refused, and the key still works.
      const real = how === 'real' && authKind !== 'admin' ? rng.pick([tw.A.keyId, tw.B.keyId]) : undefined;
      const kid =
        real ??
        (how === 'revoked'
          ? tw.revokedKeyId
          : how === 'malformed'
            ? rng.pick(['__proto__', 'A'.repeat(12), 'x', 'x'.repeat(100), '%00', tw.A.keyId.toUpperCase(), `${tw.A.keyId}x`, tw.A.key, '%EF%BF%BF'])
            : Array.from({ length: 12 }, () => rng.pick(ALNUM)).join(''));
      stillWorks = real === tw.A.keyId ? tw.A.key : real === tw.B.keyId ? tw.B.key : undefined;
      d = draft('DELETE', `/v1/admin/keys/${kid}`);
      o = { status: 404, code: 'KV_ERR_KEY_NOT_FOUND' };
      break;
    }
    default:
      routed = false;
      d = draft(
        ...rng.pick<[string, string]>([
          ['PUT', '/v1/admin/tenants'],
          ['DELETE', '/v1/admin/tenants'],
          ['PATCH', '/v1/admin/tenants'],
          ['GET', `/v1/admin/tenants/${TA}/keys`],
          ['DELETE', `/v1/admin/tenants/${TA}`],
          ['GET', `/v1/admin/tenants/${TA}`],
          ['GET', '/v1/admin/keys/x'],
          ['POST', '/v1/admin/keys'],
          ['POST', `/v1/admin/tenants/${TA}/keys/x`],
          ['DELETE', '/v1/admin/keys/'],
        ]),
      );
      o = {};
  }
  for (const h of headers) d.headers.push(h);
  if (authKind !== 'admin') {
    expect = 'refuse';
    if (routed && d.query.length === 0) o = { status: 401, code: 'KV_ERR_UNAUTHORIZED' };
    else if (routed) o = {};
  }
  return {
    name: `${routerName(port)} tenant admin ${d.method} ${d.path.slice(0, 60)} (${authKind} token)`,
    run: async () => {
      const problems = await send(port, d, expect, { ...o, inspect: (res) => leakProblems(undefined, res) });
      if (stillWorks !== undefined) {
        const r = await request('GET', `${tw.url}${KV}${SEED_KEYS[0]}`, { headers: bearer(stillWorks) });
        if (r.status !== 200) problems.push(`the key whose revocation was refused answers ${r.status} ${r.text.slice(0, 100)}`);
      }
      return problems;
    },
  };
};

const GENERATORS: ReadonlyArray<readonly [number, string, Generator]> = [
  [10, 'kv-write', kvWrite],
  [5, 'kv-read', kvRead],
  [3, 'wrong-method', wrongMethod],
  [10, 'batch', batch],
  [8, 'admin', admin],
  [3, 'health', health],
  [2, 'unknown-path', unknownPath],
  [9, 'shard-http', shardHttp],
  [7, 'framing', framing],
  [7, 'syntax', syntax],
  [1, 'slow', slow],
  [12, 'data-ops', dataOps],
  [4, 'data-unauth', dataUnauth],
  [3, 'data-reads', dataReads],
  [12, 'tenant-kv', tenantKv],
  [8, 'tenant-scan', tenantScan],
  [4, 'sessions', sessions],
  [4, 'tenant-admin', tenantAdmin],
];

/** Case `i` of this run, the same whatever ran before it. */
function makeCase(i: number): Case & { kind: string } {
  const rng = new Rng(caseSeed(SEED, i));
  const [, kind, gen] = rng.weighted(GENERATORS.map(([wt, k, g]) => [wt, [wt, k, g] as const] as const));
  return { ...gen(rng, i), kind };
}

/** After the cases: both tenants hold their seeded values, list what they hold, and their credentials work (the spoilt ones do not). */
async function tenantProblems(): Promise<string[]> {
  const problems: string[] = [];
  const { A, B } = tw;
  const readAll = async (who: Who, token: string, keys: readonly string[]) => {
    const r = await request('POST', `${tw.url}${BATCH}`, {
      headers: { ...bearer(token), 'content-type': 'application/json' },
      body: JSON.stringify({ ops: keys.map((key) => ({ op: 'get', key })) }),
    });
    if (r.status !== 200) return problems.push(`${who} batch read: ${r.status} ${r.text.slice(0, 200)}`);
    for (const x of r.json<{ results: Array<{ key: string; status: number; value?: string }> }>().results)
      if (x.status !== 200 || x.value !== valueOf(who, x.key))
        problems.push(`${who}'s ${x.key}: ${x.status} ${JSON.stringify(x.value)}, expected ${valueOf(who, x.key)}`);
  };
  await readAll('A', A.session, SEED_KEYS);
  await readAll('B', B.key, [...SEED_KEYS, ...B_ONLY]);
  const walk = async (token: string): Promise<string[]> => {
    const keys: string[] = [];
    let next: string | null = null;
    for (let n = 0; n < 1000; n++) {
      const p = await scanPage(tw.url, bearer(token), next === null ? 'limit=7' : `page=${encodeURIComponent(next)}`);
      keys.push(...p.keys.map((k) => k.key));
      next = p.next;
      if (next === null) return keys;
    }
    throw new Error('the walk did not end within 1000 pages');
  };
  try {
    const b = await walk(B.session);
    const want = [...SEED_KEYS, ...B_ONLY].sort(compareKeys);
    if (JSON.stringify(b) !== JSON.stringify(want)) problems.push(`${TB} lists ${JSON.stringify(b).slice(0, 500)}, expected ${JSON.stringify(want)}`);
    const a = await walk(A.key);
    for (const k of SEED_KEYS) if (!a.includes(k)) problems.push(`${TA} does not list ${k}`);
    for (const k of a) if (!mayHold('A', k)) problems.push(`${TA} lists ${JSON.stringify(k)}`);
    if (new Set(a).size !== a.length) problems.push(`${TA}'s walk lists keys twice`);
  } catch (err) {
    problems.push(`scans afterwards: ${(err as Error).message}`);
  }
  for (const [what, token, status] of [
    [`${TA}'s session`, A.session, 200],
    [`${TA}'s other session`, A.other, 200],
    [`${TB}'s session`, B.session, 200],
    ['the ended session', tw.endedSession, 401],
    ['the expired session', tw.expiredSession, 401],
    ["the revoked key's session", tw.revokedSession, 401],
  ] as const) {
    const r = await request('GET', `${tw.url}/v1/sessions/current`, { headers: bearer(token) });
    if (r.status !== status) problems.push(`${what}: ${r.status} ${r.text.slice(0, 200)}, expected ${status}`);
  }
  const revoked = await request('GET', `${tw.url}${KV}${SEED_KEYS[0]}`, { headers: bearer(tw.revokedKey) });
  if (revoked.status !== 401) problems.push(`the revoked key: ${revoked.status}`);
  return problems;
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** Run named checks; each returns its problems. */
async function all(checks: ReadonlyArray<readonly [string, () => Promise<string[]>]>, limit = 4): Promise<string[]> {
  const out: string[] = [];
  await forEachLimit(checks, limit, async ([name, f]) => {
    const problems = await withTimeout(f(), CASE_TIMEOUT_MS, name).catch((err: Error) => [`failed: ${err.message}`]);
    for (const p of problems) out.push(`${name}: ${p}`);
  });
  return out;
}

/** GET a key on every shard's HTTP port; problems when any has it. */
async function absentOnShards(key: string): Promise<string[]> {
  const problems: string[] = [];
  for (const s of w.shards) {
    const r = await request('GET', `http://127.0.0.1:${s.http}/kv/${encodeURIComponent(key)}`, { headers: ADMIN_AUTH });
    if (r.status !== 404) problems.push(`${JSON.stringify(key)} on ${s.id}: ${r.status}`);
  }
  return problems;
}

const json = { 'content-type': 'application/json' };

// ---------------------------------------------------------------------------

describe(`hostile input (seed ${SEED})`, () => {
  it('data port: crafted imports (bad versions, ring points, UTF-8) are refused and write nothing', async () => {
    const s = w.shards[0]!;
    const checks: Array<readonly [string, () => Promise<string[]>]> = [];
    const variants: Array<[string, (key: string) => { rk: Buffer; rv: Buffer }]> = [
      ...[1e308, -1, 1.5, NaN, 0, Infinity].map(
        (v) =>
          [
            `version ${v}`,
            (key: string) => {
              const r = record(key);
              r.rv.writeDoubleLE(v, 5);
              return r;
            },
          ] as [string, (key: string) => { rk: Buffer; rv: Buffer }],
      ),
      ['a ring point that is not the key', (key) => record(key, {}, (keyPoint(key) + 1) % (POINT_MAX + 1))],
      [
        'invalid UTF-8 key bytes',
        (key) => {
          const r = record(key);
          return { rk: Buffer.concat([r.rk.subarray(0, 4), BAD_UTF8]), rv: r.rv };
        },
      ],
    ];
    for (const [n, [what, make]] of variants.entries()) {
      checks.push([
        `import with ${what}`,
        async () => {
          const good1 = keyOn(s.id, `named-import-${n}-a`);
          const good2 = keyOn(s.id, `named-import-${n}-b`);
          const bad = keyOn(s.id, `named-import-${n}-bad`);
          for (const k of [good1, good2, bad]) tryKey(k);
          const p = await WirePeer.authed(s.data);
          try {
            p.send([{ i: 1, o: 'import', e: w.epoch, me: w.epoch, packed: blob([record(good1), make(bad), record(good2)]) }]);
            const problems = wireRefusalProblems(await p.next(), 1, ['KV_ERR_BAD_FRAME']);
            for (const k of [good1, good2]) problems.push(...(await absentOnShards(k)));
            return problems;
          } finally {
            p.close();
          }
        },
      ]);
    }
    expect(await all(checks), REPLAY).toEqual([]);
  });

  it('data port: an unknown peer cannot put, scan or retire; wrong, replayed and missing handshakes are cut', async () => {
    const s = w.shards[1]!;
    const deniedAndClosed = async (p: WirePeer, withinMs = 2 * SLACK_MS): Promise<string[]> => {
      if ((await p.closedWithin(withinMs)) === 'open') return ['connection still open'];
      const frames = p.drain();
      const problems: string[] = [];
      if (frames.length === 0) problems.push('closed without saying why');
      for (const f of frames) {
        const d = f as { denied?: unknown; code?: unknown };
        if (d?.denied !== HANDSHAKE_VERSION || d.code !== 'KV_ERR_AUTH_FAILED') problems.push(`sent ${preview(f)}`);
      }
      return problems;
    };
    const checks: Array<readonly [string, () => Promise<string[]>]> = [
      ...['put', 'scan', 'retire', 'import'].map(
        (o) =>
          [
            `${o} from an unknown peer`,
            async () => {
              const p = await WirePeer.open(s.data);
              try {
                const req = dataRequest(new Rng(1), o, 1, s, `named-unknown-${o}`);
                p.send([req]);
                const problems = await deniedAndClosed(p);
                if (typeof req['k'] === 'string') problems.push(...(await absentOnShards(req['k'])));
                return problems;
              } finally {
                p.close();
              }
            },
          ] as const,
      ),
      [
        'a wrong secret',
        async () => {
          const p = await WirePeer.open(s.data);
          try {
            p.sendAuth('wrong-secret-0123456789abcdef');
            return await deniedAndClosed(p);
          } finally {
            p.close();
          }
        },
      ],
      [
        'a handshake replayed from another connection',
        async () => {
          const a = await WirePeer.authed(s.data);
          const b = await WirePeer.open(s.data);
          try {
            b.send(a.auth);
            const problems = await deniedAndClosed(b);
            // The connection it was recorded on still works.
            a.send([{ i: 7, o: 'ping', e: 0 }]);
            const pong = (await a.next()) as Array<{ i: number; r?: { id?: string } }>;
            if (pong[0]?.r?.id !== s.id) problems.push(`the original connection answered ${preview(pong)}`);
            return problems;
          } finally {
            a.close();
            b.close();
          }
        },
      ],
      [
        'no handshake at all',
        async () => {
          const p = await WirePeer.open(s.data);
          try {
            return await deniedAndClosed(p, HANDSHAKE_TIMEOUT_MS + 2 * SLACK_MS);
          } finally {
            p.close();
          }
        },
      ],
    ];
    expect(await all(checks), REPLAY).toEqual([]);
  });

  it('data port: [null], non-array frames, unknown ops, bad fields, epochs and ownership get coded refusals', async () => {
    const s = w.shards[2]!;
    const k = keyOn(s.id, 'named-wire');
    const notMine = keyOn(s.id, 'named-wire', false);
    for (const x of [k, notMine]) tryKey(x);
    const refused = (frame: unknown[], codes: string[]) => async () => {
      const p = await WirePeer.authed(s.data);
      try {
        p.send(frameBytes(frame));
        const problems = wireRefusalProblems(await p.next(), frame.length, codes);
        // The connection stays usable after a refusal.
        p.send([{ i: 99, o: 'ping', e: 0 }]);
        const pong = (await p.next()) as Array<{ i: number; r?: unknown }>;
        if (pong[0]?.i !== 99 || pong[0].r === undefined) problems.push(`ping afterwards answered ${preview(pong)}`);
        return problems;
      } finally {
        p.close();
      }
    };
    const closed = (bytes: Buffer) => async () => {
      const p = await WirePeer.authed(s.data);
      try {
        p.send(bytes);
        return (await p.closedWithin(2 * SLACK_MS)) === 'closed' ? [] : ['connection still open'];
      } finally {
        p.close();
      }
    };
    const e = w.epoch;
    const put = { i: 1, o: 'put', e, k, v: Buffer.from('x'), ct: 'text/plain', x: 0 };
    const huge = Buffer.alloc(8);
    huge.writeUInt32BE(0xfffffff0, 0);
    const checks: Array<readonly [string, () => Promise<string[]>]> = [
      ['[null]', refused([null], ['KV_ERR_BAD_FRAME'])],
      ['[5, "x", []]', refused([5, 'x', []], ['KV_ERR_BAD_FRAME'])],
      ['a map instead of a list', closed(encodeFrame({ i: 1, o: 'ping', e }))],
      ['null instead of a list', closed(encodeFrame(null))],
      ['a huge announced frame', closed(huge)],
      [
        'unknown ops',
        refused(
          [
            { i: 1, o: 'explode', e },
            { i: 2, o: '__proto__', e },
            { i: 3, o: 'toString', e },
            { i: 4, e },
          ],
          ['KV_ERR_UNKNOWN_OP'],
        ),
      ],
      [
        'ops that are no strings',
        refused(
          [
            { i: 1, o: 2n ** 64n - 1n, e },
            { i: 2, o: new Date(0), e },
            { i: 3, o: ['get'], e },
            { i: 4, o: null, e },
          ],
          ['KV_ERR_UNKNOWN_OP'],
        ),
      ],
      [
        'fields of other msgpack types',
        refused(
          [
            { ...put, i: 5, e: 2n ** 63n - 1n },
            { ...put, i: 6, k: 7n },
            { ...put, i: 7, x: new Date(0) },
            { i: 2n, o: 'ping', e },
          ],
          ['KV_ERR_BAD_FRAME', 'KV_ERR_KEY_INVALID'],
        ),
      ],
      ['a put without value bytes', refused([{ ...put, v: 'x' }], ['KV_ERR_BAD_FRAME'])],
      ['a get without a key', refused([{ i: 1, o: 'get', e }], ['KV_ERR_KEY_INVALID'])],
      ['a request without an id', refused([{ o: 'ping', e }], ['KV_ERR_BAD_FRAME'])],
      ['an unknown field', refused([withField(put, 'zz', 1), withField(put, '__proto__', { polluted: true })], ['KV_ERR_BAD_FRAME'])],
      ['a stale epoch', refused([{ ...put, e: e - 1 }], ['KV_ERR_STALE_EPOCH'])],
      ['a future epoch', refused([{ ...put, e: e + 1000 }], ['KV_ERR_STALE_EPOCH'])],
      [
        'a key the shard does not own',
        refused(
          [
            { ...put, k: notMine },
            { i: 2, o: 'get', e, k: notMine },
          ],
          ['KV_ERR_NOT_OWNER'],
        ),
      ],
      ['a put with invalid UTF-8 key bytes and a stale epoch', refused([{ ...put, k: BAD_UTF8_MARK, e: e - 1 }], ['KV_ERR_STALE_EPOCH'])],
      // Positional requests (core/protocol.ts TAGS) as a hostile peer writes them.
      [
        'positional requests cut short or too long',
        refused(
          [
            [1, 1, e],
            [1, 2, e, k, 'x'],
            [2, 3, e, k, Buffer.from('x')],
            [3, 4],
            [2, 5, e, k, Buffer.from('x'), 'text/plain', 0, null, null, null],
          ],
          ['KV_ERR_BAD_FRAME'],
        ),
      ],
      [
        'positional requests with a wrong type at each position',
        refused(
          [
            [2, 1, -1, k, Buffer.from('x'), 'text/plain', 0, null, null],
            [2, 2, 'e', k, Buffer.from('x'), 'text/plain', 0, null, null],
            [2, 3, e, 5, Buffer.from('x'), 'text/plain', 0, null, null],
            [2, 4, e, k, 'x', 'text/plain', 0, null, null],
            [2, 5, e, k, Buffer.from('x'), 7, 0, null, null],
            [2, 6, e, k, Buffer.from('x'), 'text/plain', '0', null, null],
            [2, 7, e, k, Buffer.from('x'), 'text/plain', 0, 'x', null],
            [2, 8, e, k, Buffer.from('x'), 'text/plain', 0, null, 'yes'],
            [2, 9, e, k, Buffer.from('x'), 'text/plain', 0, 5, true],
            [1, 10, e, null],
            [1, 11, e, Buffer.from('k')],
            [3, 12, e, k, []],
            [3, -1, e, k, null],
          ],
          ['KV_ERR_BAD_FRAME', 'KV_ERR_KEY_INVALID', 'KV_ERR_BAD_CONTENT_TYPE'],
        ),
      ],
      [
        'positional answers and unknown tags sent as requests',
        refused(
          [
            [17, 1, Buffer.from('x'), 'x/y', 1, 0, e],
            [19, 2, 5],
            [0, 3, e, k],
            [2n ** 64n - 1n, 4, e, k],
          ],
          ['KV_ERR_UNKNOWN_OP', 'KV_ERR_BAD_FRAME'],
        ),
      ],
      // [[1, 1, 0, <str32 of 0xffffffff bytes>]]: the key claims 4 GB inside a small frame.
      ['a positional key that claims 4 GB', closed(Buffer.from([0, 0, 0, 10, 0x91, 0x94, 0x01, 0x01, 0x00, 0xdb, 0xff, 0xff, 0xff, 0xff]))],
      // [[2, 1, 0, "k", <bin32 of 0xffffffff bytes>, ...]]: the value claims 4 GB.
      ['a positional value that claims 4 GB', closed(Buffer.from([0, 0, 0, 12, 0x91, 0x99, 0x02, 0x01, 0x00, 0xa1, 0x6b, 0xc6, 0xff, 0xff, 0xff, 0xff]))],
      ['retire of a shard in the ring', refused([{ i: 1, o: 'retire', e }], ['KV_ERR_BAD_TOPOLOGY'])],
      [
        'purge of ranges the shard owns',
        refused(
          [
            { i: 1, o: 'purge', e, ranges: [ownedRange(new Rng(2), s.id)] },
            { i: 2, o: 'purge', e, ranges: [{ lo: 0, hi: POINT_MAX }] },
          ],
          ['KV_ERR_BAD_TOPOLOGY'],
        ),
      ],
    ];
    const problems = await all(checks);
    problems.push(...(await absentOnShards(k)), ...(await absentOnShards(notMine)));
    expect(problems, REPLAY).toEqual([]);
  });

  it('?dryRun that is not a flag, or is misspelt, never runs the ring change', async () => {
    const variants = ['dryRun=yes', 'dryRun=abc', 'dryRun=%2B1', 'dryrun=1', 'DryRun=1', 'dryRun=0&dryRun=1'];
    const checks: Array<readonly [string, () => Promise<string[]>]> = [];
    for (const q of variants) {
      const remove = draft('DELETE', `/v1/admin/shards/s1`);
      remove.query.push(q);
      const weight = draft('PUT', `/v1/admin/shards/s2/weight`, '{"weight":3}');
      weight.query.push(q);
      const add = draft('POST', `/v1/admin/shards`, '{"id":"s3"}');
      add.query.push(q);
      for (const d of [remove, weight, add]) {
        d.headers.push(...GOOD_AUTH, ['content-type', 'application/json']);
        checks.push([`${d.method} ${d.path}?${q}`, () => send(w.router, d, 'refuse', { status: 400, code: 'KV_ERR_BAD_QUERY' })]);
      }
    }
    // A real dry run answers its plan and changes nothing either.
    const dry = draft('DELETE', '/v1/admin/shards/s1');
    dry.query.push('dryRun=1');
    dry.headers.push(...GOOD_AUTH);
    checks.push(['DELETE /v1/admin/shards/s1?dryRun=1', () => send(w.router, dry, 'any', { status: 200 })]);
    const problems = await all(checks, 2);
    expect(JSON.stringify(await c.store.get()), 'the topology changed').toBe(w.topology);
    expect(await new RebalanceStore(c.admin, c.prefix).get(), 'a rebalance job was created').toBeNull();
    expect(problems, REPLAY).toEqual([]);
  });

  it('framework-level errors carry a KV_ERR code, on the router and on every shard HTTP port', async () => {
    const checks: Array<readonly [string, () => Promise<string[]>]> = [];
    const ports = [
      { name: 'router', port: w.router, write: `${KV}named-framework` },
      ...w.shards.map((s) => ({ name: s.id, port: s.http, write: `/kv/${keyOn(s.id, 'named-framework')}` })),
    ];
    tryKey('named-framework');
    for (const s of w.shards) tryKey(keyOn(s.id, 'named-framework'));
    const l = (s: string) => [Buffer.from(s, 'latin1')];
    for (const t of ports) {
      const a = t.name === 'router' ? '' : `authorization: Bearer ${TOKEN}\r\n`;
      const cases: Array<[string, RawPiece[], number, string, number?]> = [
        ['a bad Content-Length', l(`PUT ${t.write} HTTP/1.1\r\nHost: x\r\n${a}Content-Length: abc\r\n\r\nx`), 400, 'KV_ERR_BAD_HTTP'],
        [
          'Content-Length and Transfer-Encoding',
          l(`PUT ${t.write} HTTP/1.1\r\nHost: x\r\n${a}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`),
          400,
          'KV_ERR_BAD_HTTP',
        ],
        ['a bad chunk size', l(`PUT ${t.write} HTTP/1.1\r\nHost: x\r\n${a}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`), 400, 'KV_ERR_BAD_HTTP'],
        ['bad header syntax', l(`GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n`), 400, 'KV_ERR_BAD_HTTP'],
        ['a bad HTTP version', l(`GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n`), 400, 'KV_ERR_BAD_HTTP'],
        ['garbage', [Buffer.from([0, 1, 2, 0x67, 0x61, 0x72, 0x62, 13, 10, 13, 10])], 400, 'KV_ERR_BAD_HTTP'],
        ['a 100 KB URL', l(`GET /${'a'.repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`), 431, 'KV_ERR_HEADERS_TOO_LARGE'],
        ['3,000 headers', l(`GET /healthz HTTP/1.1\r\nHost: x\r\n${'x-h: v\r\n'.repeat(3000)}\r\n`), 431, 'KV_ERR_HEADERS_TOO_LARGE'],
        ['a 1 MB header', l(`GET /healthz HTTP/1.1\r\nHost: x\r\nx-big: ${'a'.repeat(1 << 20)}\r\n\r\n`), 431, 'KV_ERR_HEADERS_TOO_LARGE'],
        [
          'If-Match after 2000 other headers',
          l(`PUT ${t.write} HTTP/1.1\r\nHost: x\r\n${a}${'x:\r\n'.repeat(2000)}If-Match: "3"\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx`),
          412,
          'KV_ERR_PRECONDITION_FAILED',
        ],
        ['Expect: foo', l(`GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: foo\r\n\r\n`), 417, 'KV_ERR_EXPECTATION_FAILED'],
        ['Expect: foo on HTTP/1.0', l(`PUT ${t.write} HTTP/1.0\r\n${a}Expect: foo\r\nContent-Length: 1\r\n\r\nx`), 417, 'KV_ERR_EXPECTATION_FAILED'],
        ['an HTTP/0.9-style line', l(`GET /healthz\r\n`), 408, 'KV_ERR_REQUEST_TIMEOUT', HEADERS_TIMEOUT_MS + SLACK_MS],
        ['an HTTP/0.9 request', l(`GET /healthz\r\n\r\n`), 400, 'KV_ERR_BAD_HTTP'],
        ['an HTTP/0.9 write', l(`PUT ${t.write}\r\n\r\n`), 400, 'KV_ERR_BAD_HTTP'],
        ['no Host', l(`GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n`), 400, 'KV_ERR_BAD_HTTP'],
        ['CONNECT', l(`CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n`), 400, 'KV_ERR_BAD_HTTP'],
      ];
      for (const [what, pieces, status, code, withinMs] of cases) {
        checks.push([`${t.name}: ${what}`, () => httpCase(t.port, pieces, 'refuse', { status, code, ...(withinMs ? { withinMs } : {}) })]);
      }
    }
    expect(await all(checks), REPLAY).toEqual([]);
  });

  it('HEAD of every GET endpoint answers (the event stream too), and the connection goes on', async () => {
    const a = `authorization: Bearer ${TOKEN}\r\n`;
    const next = 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    const targets = [
      ...[
        '/healthz',
        '/readyz',
        '/metrics',
        '/v1/topology',
        '/v1/ring',
        '/v1/stats',
        '/dashboard',
        '/dashboard/app.js',
        '/v1/admin/shards',
        '/v1/admin/rebalance',
        '/v1/admin/rebalance/history',
        '/v1/admin/rebalance/events',
        `${KV}named-head`,
      ].map((path) => ({ port: w.router, path })),
      ...w.shards.flatMap((s) => ['/healthz', '/stats', '/metrics', `/kv/named-head`].map((path) => ({ port: s.http, path }))),
    ];
    const problems = await all(
      targets.map(
        (t) =>
          [
            `HEAD ${t.path} on port ${t.port}`,
            async () => {
              const r = await rawHttp(t.port, [`HEAD ${t.path} HTTP/1.1\r\nHost: x\r\n${a}\r\n${next}`], { timeoutMs: 2 * SLACK_MS, methods: ['HEAD', 'GET'] });
              const got = r.responses.map((x) => x.status);
              return got.length === 2 && got[1] === 200 && got[0]! < 500 ? [] : [`answered ${JSON.stringify(got)} (closed: ${r.closed})`];
            },
          ] as const,
      ),
    );
    expect(problems, REPLAY).toEqual([]);
  });

  it('an absolute-form request target names the same key as its path', async () => {
    const key = `named-absolute-${SEED}`;
    legit.add(key);
    const owner = w.shards.find((s) => s.id === w.ring.ownerOf(key))!;
    const l = (s: string) => [Buffer.from(s, 'latin1')];
    const problems = await all(
      [
        [
          'PUT http://host/v1/kv/<key>',
          () =>
            httpCase(w.router, l(`PUT http://127.0.0.1${KV}${key} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabs`), 'any', {
              status: 204,
            }),
        ],
      ],
      1,
    );
    const got = await request('GET', `${c.url}${KV}${key}`);
    if (got.status !== 200 || got.text !== 'abs') problems.push(`origin-form GET answered ${got.status} ${got.text}`);
    const onShard = await request('GET', `http://127.0.0.1:${owner.http}/kv/${key}`, { headers: ADMIN_AUTH });
    if (onShard.status !== 200) problems.push(`the owner ${owner.id} does not hold it: ${onShard.status}`);
    problems.push(...(await absentOnShards(`127.0.0.1${KV}${key}`)));
    problems.push(
      ...(await all([
        [
          'GET http://host/kv/<key> on the shard',
          () =>
            httpCase(
              owner.http,
              l(`GET HTTP://127.0.0.1/kv/${key} HTTP/1.1\r\nHost: x\r\nauthorization: Bearer ${TOKEN}\r\nConnection: close\r\n\r\n`),
              'any',
              { status: 200 },
            ),
        ],
      ])),
    );
    expect(problems, REPLAY).toEqual([]);
  });

  it("a shard's HTTP /kv/* honours If-Match and refuses bad x-kv-ttl and keys it does not own", async () => {
    const s = w.shards[0]!;
    const key = keyOn(s.id, `named-shard-http-${SEED}`);
    legit.add(key);
    const url = (k: string) => `http://127.0.0.1:${s.http}/kv/${encodeURIComponent(k)}`;
    expect((await request('PUT', `${c.url}${KV}${key}`, { body: 'one' })).status).toBe(204);
    const etag = String((await request('GET', `${c.url}${KV}${key}`)).headers['etag']);
    const ver = Number(etag.replace(/"/g, ''));
    const absent = keyOn(s.id, `named-shard-http-absent-${SEED}`);
    const notMine = keyOn(s.id, `named-shard-http-other-${SEED}`, false);
    for (const k of [absent, notMine]) tryKey(k);
    const problems: string[] = [];
    const want = async (what: string, p: Promise<HttpResult>, status: number, code?: string) => {
      const r = await p;
      let body: unknown;
      try {
        body = r.json();
      } catch {
        body = undefined;
      }
      const got = (body as { code?: unknown } | undefined)?.code;
      if (r.status !== status || (code !== undefined && got !== code)) problems.push(`${what}: ${r.status} ${String(got)}, expected ${status} ${code ?? ''}`);
      if (code !== undefined) problems.push(...httpProblems({ status: r.status, headers: r.headers, json: body }, 'refuse').map((x) => `${what}: ${x}`));
    };
    await want(
      'PUT with a stale If-Match',
      request('PUT', url(key), { body: 'two', headers: { ...ADMIN_AUTH, 'if-match': `"${ver + 1}"` } }),
      412,
      'KV_ERR_PRECONDITION_FAILED',
    );
    await want(
      'DELETE with a stale If-Match',
      request('DELETE', url(key), { headers: { ...ADMIN_AUTH, 'if-match': `"${ver + 1}"` } }),
      412,
      'KV_ERR_PRECONDITION_FAILED',
    );
    await want(
      'PUT If-Match of an absent key',
      request('PUT', url(absent), { body: 'x', headers: { ...ADMIN_AUTH, 'if-match': '"5"' } }),
      412,
      'KV_ERR_PRECONDITION_FAILED',
    );
    await want(
      'PUT If-Match: * of an absent key',
      request('PUT', url(absent), { body: 'x', headers: { ...ADMIN_AUTH, 'if-match': '*' } }),
      412,
      'KV_ERR_PRECONDITION_FAILED',
    );
    await want(
      'PUT If-None-Match: * of a present key',
      request('PUT', url(key), { body: 'x', headers: { ...ADMIN_AUTH, 'if-none-match': '*' } }),
      412,
      'KV_ERR_PRECONDITION_FAILED',
    );
    for (const ttl of ['-1', 'abc', '1.5', '0']) {
      await want(
        `x-kv-ttl: ${JSON.stringify(ttl)}`,
        request('PUT', url(absent), { body: 'x', headers: { ...ADMIN_AUTH, 'x-kv-ttl': ttl } }),
        400,
        'KV_ERR_BAD_TTL',
      );
    }
    await want(
      '?ttl=100 and x-kv-ttl: abc',
      request('PUT', `${url(absent)}?ttl=100`, { body: 'x', headers: { ...ADMIN_AUTH, 'x-kv-ttl': 'abc' } }),
      400,
      'KV_ERR_BAD_TTL',
    );
    await want('a key it does not own', request('PUT', url(notMine), { body: 'x', headers: ADMIN_AUTH }), 409, 'KV_ERR_NOT_OWNER');
    await want('DELETE of a key it does not own', request('DELETE', url(notMine), { headers: ADMIN_AUTH }), 409, 'KV_ERR_NOT_OWNER');
    await want('no token', request('PUT', url(absent), { body: 'x' }), 401, 'KV_ERR_UNAUTHORIZED');
    const still = await request('GET', `${c.url}${KV}${key}`);
    if (still.text !== 'one' || still.headers['etag'] !== etag)
      problems.push(`the refused writes changed the key: ${still.status} ${still.text} ${String(still.headers['etag'])}`);
    // And the right version is taken.
    await want('PUT with the current If-Match', request('PUT', url(key), { body: 'two', headers: { ...ADMIN_AUTH, 'if-match': etag } }), 204);
    const after = await request('GET', `${c.url}${KV}${key}`);
    if (after.text !== 'two') problems.push(`the conditional write did not land: ${after.status} ${after.text}`);
    problems.push(...(await absentOnShards(absent)), ...(await absentOnShards(notMine)));
    expect(problems, REPLAY).toEqual([]);
  });

  it('_batch: non-JSON media types, content-encodings, string ttls, ttl parameters and lone surrogates are refused', async () => {
    const key = `named-batch-${SEED}`;
    tryKey(key);
    const ops = (op: Record<string, unknown>) => JSON.stringify({ ops: [{ op: 'put', key, value: 'x', ...op }] });
    const want = async (
      what: string,
      method: string,
      path: string,
      headers: Record<string, string>,
      body: string,
      status: number,
      code: string,
    ): Promise<string[]> => {
      const r = await request(method, `${c.url}${path}`, { headers, body });
      let parsed: unknown;
      try {
        parsed = r.json();
      } catch {
        parsed = undefined;
      }
      const got = (parsed as { code?: unknown } | undefined)?.code;
      const problems = httpProblems({ status: r.status, headers: r.headers, json: parsed }, 'refuse').map((p) => `${what}: ${p}`);
      if (r.status !== status || got !== code) problems.push(`${what}: ${r.status} ${String(got)}, expected ${status} ${code}`);
      return problems;
    };
    const B = '/v1/kv/_batch';
    const problems = [
      ...(await want('text/plain', 'POST', B, { 'content-type': 'text/plain' }, ops({}), 415, 'KV_ERR_UNSUPPORTED_MEDIA_TYPE')),
      ...(await want('no content type', 'POST', B, {}, ops({}), 415, 'KV_ERR_UNSUPPORTED_MEDIA_TYPE')),
      ...(await want('form', 'POST', B, { 'content-type': 'application/x-www-form-urlencoded' }, ops({}), 415, 'KV_ERR_UNSUPPORTED_MEDIA_TYPE')),
      ...(await want('gzip', 'POST', B, { ...json, 'content-encoding': 'gzip' }, ops({}), 415, 'KV_ERR_UNSUPPORTED_MEDIA_TYPE')),
      ...(await want('br', 'POST', B, { ...json, 'content-encoding': 'br' }, ops({}), 415, 'KV_ERR_UNSUPPORTED_MEDIA_TYPE')),
      ...(await want('"ttl": "10"', 'POST', B, json, ops({ ttl: '10' }), 400, 'KV_ERR_BAD_TTL')),
      ...(await want('a lone surrogate value', 'POST', B, json, ops({ value: '\ud800' }), 400, 'KV_ERR_BAD_BATCH')),
      ...(await want('?ttl= on the batch', 'POST', `${B}?ttl=`, json, ops({}), 400, 'KV_ERR_BAD_QUERY')),
      ...(await want('?ttl=100 with x-kv-ttl: abc', 'PUT', `${KV}${key}?ttl=100`, { 'x-kv-ttl': 'abc' }, 'x', 400, 'KV_ERR_BAD_TTL')),
      ...(await want('?ttl=', 'PUT', `${KV}${key}?ttl=`, {}, 'x', 400, 'KV_ERR_BAD_TTL')),
      ...(await want('?ttl=1.5', 'PUT', `${KV}${key}?ttl=1.5`, {}, 'x', 400, 'KV_ERR_BAD_TTL')),
      ...(await want('?ttl=5&ttl=5', 'PUT', `${KV}${key}?ttl=5&ttl=5`, {}, 'x', 400, 'KV_ERR_BAD_QUERY')),
      ...(await want('?TTL=5', 'PUT', `${KV}${key}?TTL=5`, {}, 'x', 400, 'KV_ERR_BAD_QUERY')),
    ];
    problems.push(...(await absentOnShards(key)));
    expect(problems, REPLAY).toEqual([]);
  });

  it(`random cases (seed ${SEED}, ${ITERATIONS} of them)`, async () => {
    const ids = Array.from({ length: ITERATIONS }, (_, i) => i).filter((i) => ONLY.size === 0 || ONLY.has(i));
    const cases = ids.map((i) => ({ i, ...makeCase(i) }));
    const failures: string[] = [];
    const kinds = new Map<string, { n: number; ms: number }>();
    const started = performance.now();
    await forEachLimit(cases, CONCURRENCY, async (k) => {
      const t0 = performance.now();
      const problems = await withTimeout(k.run(), CASE_TIMEOUT_MS, 'the case').catch((err: Error) => [`failed: ${err.message}`]);
      const stat = kinds.get(k.kind) ?? { n: 0, ms: 0 };
      stat.n++;
      stat.ms += performance.now() - t0;
      kinds.set(k.kind, stat);
      for (const p of problems) if (failures.length < 200) failures.push(`case ${k.i} (${k.name}): ${p}`);
    });
    const summary = [...kinds].map(([kind, s]) => `${kind} ${s.n} (${Math.round(s.ms / s.n)} ms)`).join(', ');
    console.log(`fuzz seed ${SEED}: ${cases.length} cases in ${Math.round((performance.now() - started) / 1000)} s: ${summary}`);
    expect(failures, `seed ${SEED}; repeat with ${REPLAY} (KV_FUZZ_CASES=<n,...> for single cases)`).toEqual([]);
  }, 600_000);

  it('afterwards: every process runs, nothing was written, the topology is unchanged, and the well-behaved client saw no error', async () => {
    await Promise.all([good.stop(), goodA.stop()]);
    const problems: string[] = [];
    // Processes: both routers and the same workers, every shard.
    if (!c.router.alive) problems.push('the router exited');
    if (!tw.router.alive) problems.push(`the second router exited:\n${tw.router.tail}`);
    for (const pid of [...workerPids, ...tw.workerPids]) {
      try {
        process.kill(pid, 0);
      } catch {
        problems.push(`router worker ${pid} is gone (crashed and respawned?)`);
      }
    }
    for (const s of c.shards) if (!s.alive) problems.push(`shard ${s.id} exited:\n${s.tail}`);
    // Topology and jobs.
    if (JSON.stringify(await c.store.get()) !== w.topology) problems.push(`the topology changed: ${JSON.stringify(await c.store.get())}`);
    const jobs = new RebalanceStore(c.admin, c.prefix);
    const job = await jobs.get();
    if (job) problems.push(`a rebalance job exists: ${job.kind} ${job.shardId} ${job.state}`);
    if ((await jobs.history()).length > 0) problems.push('the rebalance history is not empty');
    // Every record on every shard is the well-behaved clients', a named case's, a seeded one or one tenant A's cases may write.
    const tenantKeys = new Set([
      ...[...SEED_KEYS, ...aWritten, ...goodA.keys].map((k) => storedKey(TA, k)),
      ...[...SEED_KEYS, ...B_ONLY].map((k) => storedKey(TB, k)),
    ]);
    for (const s of w.shards) {
      const p = await WirePeer.authed(s.data);
      try {
        let after: [number, string] | undefined;
        for (let n = 1; ; n++) {
          p.send([{ i: n, o: 'scan', e: 0, ranges: [{ lo: 0, hi: POINT_MAX }], limit: 10_000, maxBytes: 16 * 1024 * 1024, ...(after ? { after } : {}) }]);
          const [res] = (await p.next(30_000)) as Array<{ r?: { packed: Uint8Array; next?: [number, string] }; err?: unknown }>;
          if (!res?.r) throw new Error(`scan of ${s.id} failed: ${preview(res)}`);
          for (const m of readMoved(res.r.packed, MAX_KEY)) {
            const k = m.key.toString('utf8', 4);
            if (!good.keys.has(k) && !legit.has(k) && !tenantKeys.has(k) && problems.length < 200)
              problems.push(`${s.id} holds ${JSON.stringify(k)}, which no case may have written`);
          }
          if (!res.r.next) break;
          after = res.r.next;
        }
      } finally {
        p.close();
      }
    }
    // Every key a case tried: absent on every shard's HTTP port and through the router.
    const keys = [...tried].filter((k) => !legit.has(k));
    const agent = keepAliveAgent(8);
    try {
      await forEachLimit(keys, 8, async (key) => {
        for (const s of w.shards) {
          const r = await request('GET', `http://127.0.0.1:${s.http}/kv/${encodeURIComponent(key)}`, { headers: ADMIN_AUTH, agent });
          if (r.status !== 404 && problems.length < 200) problems.push(`${JSON.stringify(key)} on ${s.id}: ${r.status}`);
        }
      });
      const batches = Array.from({ length: Math.ceil(keys.length / MAX_BATCH) }, (_, n) => keys.slice(n * MAX_BATCH, (n + 1) * MAX_BATCH));
      await forEachLimit(batches, 4, async (b) => {
        const r = await request('POST', `${c.url}/v1/kv/_batch`, { headers: json, body: JSON.stringify({ ops: b.map((key) => ({ op: 'get', key })) }), agent });
        if (r.status !== 200) {
          problems.push(`batch read: ${r.status} ${r.text.slice(0, 200)}`);
          return;
        }
        for (const res of r.json<{ results: Array<{ key: string; status: number }> }>().results)
          if (res.status !== 404 && problems.length < 200) problems.push(`${JSON.stringify(res.key)} through the router: ${res.status}`);
      });
    } finally {
      await agent.close();
    }
    problems.push(...(await tenantProblems()));
    // The clients that behaved.
    problems.push(...good.errors.map((e) => `well-behaved client: ${e}`));
    problems.push(...goodA.errors.map((e) => `tenant ${TA}'s well-behaved client: ${e}`));
    if (goodA.ops < 20) problems.push(`tenant ${TA}'s well-behaved client made only ${goodA.ops} requests`);
    if (good.ops < 20) problems.push(`the well-behaved client made only ${good.ops} requests`);
    if (good.workers.size < 2) problems.push(`the well-behaved client reached only workers ${[...good.workers].join(', ')}`);
    console.log(
      `fuzz seed ${SEED}: ${tried.size} keys tried, ${good.ops} well-behaved requests over workers ${[...good.workers].sort().join(', ')}, ` +
        `${goodA.ops} of tenant ${TA}'s, ${aWritten.size} keys tenant ${TA}'s cases may have written`,
    );
    expect(problems, `seed ${SEED}; repeat with ${REPLAY}`).toEqual([]);
  }, 300_000);
});
