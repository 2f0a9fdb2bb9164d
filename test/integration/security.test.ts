// Secure by default and hardened: what a fresh `kv up` requires, refusals to
// start without secrets, peer authentication on the data port, the limits
// of every port while other clients are served, fairness under overload,
// a Redis outage, and TLS.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Child } from '../../src/local/child.js';
import { freePort, startRedis, type LocalRedis } from '../../src/local/redis-server.js';
import { waitUntil } from '../../src/local/wait.js';
import { HANDSHAKE_VERSION, isHello, newNonce, peerProof } from '../../src/core/handshake.js';
import { FrameDecoder, encodeFrame } from '../../src/core/protocol.js';
import { ringOf } from '../../src/core/topology.js';
import { KV_BIN, TestCluster } from '../helpers/procs.js';
import { get, put, request, type HttpResult } from '../helpers/http.js';
import { RawPeer } from '../helpers/data-port.js';
import { ADMIN_AUTH, TEST_CLUSTER_SECRET } from '../helpers/secrets.js';

const json = { 'content-type': 'application/json' };
/** The environment of a process that has no secrets of its own. */
// KV_DATA_DIR: an empty directory, so the secrets and URLs of a local `kv up`
// in the working directory (./data after `npm start`) are not picked up.
const EMPTY_DATA_DIR = mkdtempSync(path.join(os.tmpdir(), 'shardkv-nodata-'));
const NO_SECRETS: NodeJS.ProcessEnv = {
  ...process.env,
  KV_DATA_DIR: EMPTY_DATA_DIR,
  KV_ADMIN_TOKEN: '',
  KV_CLUSTER_SECRET: '',
  KV_INSECURE: '',
  ROUTER_ADMIN_TOKEN: '',
  SHARD_ADMIN_TOKEN: '',
};

const clusters: TestCluster[] = [];
async function cluster(o: Parameters<typeof TestCluster.start>[0]): Promise<TestCluster> {
  const c = await TestCluster.start(o);
  clusters.push(c);
  return c;
}
afterEach(async () => {
  await Promise.all(clusters.splice(0).map((c) => c.stop()));
});

/** Ports base+1 and base+101 free, for `kv up --shards 1 --shard-base-port base`. */
async function freeBase(): Promise<number> {
  const listens = (port: number) =>
    new Promise<boolean>((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 30_000);
    if ((await listens(base + 1)) && (await listens(base + 101))) return base;
  }
}

/** Write raw bytes, resolve with everything answered until the server closes (or `timeoutMs`). */
function raw(port: number, bytes: string | Buffer, timeoutMs = 5000): Promise<{ text: string; closedAfterMs: number | undefined }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    let text = '';
    s.on('data', (d) => (text += d.toString('latin1')));
    s.on('error', () => {});
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text, closedAfterMs: undefined });
    }, timeoutMs);
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text, closedAfterMs: Date.now() - t0 });
    });
  });
}

/** Status and JSON body of a raw HTTP answer. */
function parseRaw(text: string): { status: number; body: Record<string, unknown> } {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
  const i = text.indexOf('{');
  return { status, body: i >= 0 ? (JSON.parse(text.slice(i, text.lastIndexOf('}') + 1)) as Record<string, unknown>) : {} };
}

/** A client that keeps reading and writing its own keys until stopped; every failure is kept. */
function bystander(url: string, o: { pauseMs?: number; fresh?: boolean } = {}) {
  let stop = false;
  let ok = 0;
  const errors: string[] = [];
  const run = (async () => {
    for (let n = 0; !stop; n++) {
      const key = `bystander-${n % 50}`;
      try {
        const fresh = o.fresh === true && n % 5 === 0;
        const w = await put(`${url}/v1/kv/${key}`, `v${n}`, { fresh, timeoutMs: 10_000 });
        if (w.status !== 204) errors.push(`PUT ${key}: ${w.status} ${w.text}`);
        const r = await get(`${url}/v1/kv/${key}`, { timeoutMs: 10_000 });
        if (r.status !== 200 || r.text !== `v${n}`) errors.push(`GET ${key}: ${r.status} ${r.text}`);
        else ok++;
      } catch (err) {
        errors.push(`request failed: ${(err as Error).message}`);
      }
      if (o.pauseMs) await sleep(o.pauseMs);
    }
  })();
  return {
    get ok() {
      return ok;
    },
    async finish(): Promise<string[]> {
      stop = true;
      await run;
      return errors;
    },
  };
}

function expectCode(res: HttpResult, status: number, code: string): void {
  expect(res.status, res.text).toBe(status);
  expect(res.json()['code']).toBe(code);
  expect(typeof res.json()['requestId']).toBe('string');
}

describe('secure by default', () => {
  const dirs: string[] = [EMPTY_DATA_DIR];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('a fresh kv up generates the secrets (mode 0600), needs the token for admin routes and the secret on data ports, and reuses them', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'shardkv-up-'));
    dirs.push(dir);
    const base = await freeBase();
    const port = await freePort();
    const env = { ...NO_SECRETS, REDIS_URL: '' };
    const up = () => {
      const p = new Child(KV_BIN, ['up', '--data-dir', dir, '--shards', '1', '--workers', '1', '--port', String(port), '--shard-base-port', String(base)], {
        env,
      });
      return p;
    };
    const url = `http://127.0.0.1:${port}`;
    let p = up();
    try {
      await waitUntil(() => p.tail.includes('shardkv is up'), { timeoutMs: 60_000, what: 'kv up', giveUp: () => (p.alive ? undefined : p.tail) });
      const file = path.join(dir, 'secrets.json');
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const secrets = JSON.parse(readFileSync(file, 'utf8')) as { adminToken: string; clusterSecret: string };
      expect(secrets.adminToken.length).toBeGreaterThanOrEqual(32);
      expect(p.tail).toContain(file);
      // It prints where the dashboard is; the page is open, its admin calls are not.
      expect(p.tail).toContain(`dashboard ${url}/dashboard`);
      expect((await get(`${url}/dashboard`)).status).toBe(200);
      // The admin API and the shard's HTTP port need the token.
      expectCode(await get(`${url}/v1/admin/shards`), 401, 'KV_ERR_UNAUTHORIZED');
      expectCode(await get(`${url}/v1/admin/shards`, { headers: { authorization: 'Bearer wrong-token-of-some-length' } }), 401, 'KV_ERR_UNAUTHORIZED');
      const auth = { authorization: `Bearer ${secrets.adminToken}` };
      expect((await get(`${url}/v1/admin/shards`, { headers: auth })).status).toBe(200);
      expectCode(await get(`http://127.0.0.1:${base + 101}/stats`), 401, 'KV_ERR_UNAUTHORIZED');
      expect((await get(`http://127.0.0.1:${base + 101}/stats`, { headers: auth })).status).toBe(200);
      expect((await get(`http://127.0.0.1:${base + 101}/healthz`)).status).toBe(200);
      // The data port serves only peers that prove the secret.
      const stranger = await RawPeer.connect(base + 1, { secret: null });
      stranger.send([{ i: 1, o: 'put', e: 1, k: 'x', v: Buffer.from('y'), ct: 'text/plain', x: 0 }]);
      expect((await stranger.next()) as Record<string, unknown>).toMatchObject({ denied: HANDSHAKE_VERSION, code: 'KV_ERR_AUTH_FAILED' });
      expect(await stranger.closedWithin(2000)).toBe('closed');
      const member = await RawPeer.connect(base + 1, { secret: secrets.clusterSecret });
      member.send([{ i: 1, o: 'ping', e: 0 }]);
      expect(((await member.next()) as Array<{ r?: unknown }>)[0]?.r).toMatchObject({ id: 's1' });
      member.close();
      // The CLI run in that directory finds the token by itself.
      const list = new Child(KV_BIN, ['shards', 'list'], { env: { ...env, KV_DATA_DIR: dir, KV_URL: url } });
      expect((await list.exited()).code, list.tail).toBe(0);
      expect(list.tail).toMatch(/s1\s+active/);
      // A second start reuses the same secrets.
      await p.stop(30_000);
      p = up();
      await waitUntil(() => p.tail.includes('shardkv is up'), { timeoutMs: 60_000, what: 'kv up again', giveUp: () => (p.alive ? undefined : p.tail) });
      expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(secrets);
      expect((await get(`${url}/v1/admin/shards`, { headers: auth })).status).toBe(200);
    } finally {
      await p.stop(30_000);
    }
  }, 150_000);

  it('refuses to start on 0.0.0.0 without secrets, refuses insecure there, and allows insecure on loopback with a warning', async () => {
    const redis: LocalRedis = await startRedis();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'shardkv-sec-'));
    dirs.push(dir);
    const started: Child[] = [];
    const kv = (args: string[], extra: NodeJS.ProcessEnv = {}) => {
      const c = new Child(KV_BIN, args, { env: { ...NO_SECRETS, ...extra } });
      started.push(c);
      return c;
    };
    try {
      const shardArgs = (host: string, id: string) => [
        'shard',
        'start',
        '--id',
        id,
        '--data-dir',
        path.join(dir, id),
        '--host',
        host,
        '--redis-url',
        redis.url,
      ];
      const routerArgs = async (host: string) => [
        'router',
        'start',
        '--host',
        host,
        '--port',
        String(await freePort()),
        '--workers',
        '1',
        '--redis-url',
        redis.url,
      ];
      for (const c of [kv(shardArgs('0.0.0.0', 'a')), kv(await routerArgs('0.0.0.0'))]) {
        expect((await c.exited()).code).toBe(1);
        expect(c.tail).toMatch(/adminToken and clusterSecret are missing/);
        expect(c.tail).toMatch(/KV_ADMIN_TOKEN/);
      }
      // Short secrets count as missing.
      const short = kv(shardArgs('127.0.0.1', 'b'), { KV_ADMIN_TOKEN: 'short', KV_CLUSTER_SECRET: 'short' });
      expect((await short.exited()).code).toBe(1);
      expect(short.tail).toMatch(/shorter than 16/);
      const wide = kv(await routerArgs('0.0.0.0'), { KV_INSECURE: '1' });
      expect((await wide.exited()).code).toBe(1);
      expect(wide.tail).toMatch(/loopback address only/);
      const local = kv(shardArgs('127.0.0.1', 'c'), { KV_INSECURE: '1' });
      await local.ready(20_000);
      expect(local.tail).toMatch(/WARNING: shard c runs with insecure=true/);
      const localRouter = kv(await routerArgs('127.0.0.1'), { KV_INSECURE: '1' });
      const ready = await localRouter.ready(30_000);
      expect(localRouter.tail).toMatch(/WARNING: router runs with insecure=true/);
      // Opted out: the admin API is open.
      expect((await get(`http://127.0.0.1:${String(ready['port'])}/v1/admin/shards`)).status).toBe(200);
    } finally {
      await Promise.all(started.map((c) => c.stop(15_000)));
      await redis.stop();
    }
  }, 120_000);
});

describe('peers on the data port', () => {
  it('a wrong secret, a frame before the handshake, a replayed handshake and a silent peer are cut and counted', async () => {
    const c = await cluster({ shards: 1, workers: 1, shardSet: { handshakeTimeoutMs: 400 } });
    const s = c.shards[0]!;
    await expect(RawPeer.connect(s.dataPort, { secret: 'not-the-cluster-secret-at-all' })).rejects.toMatchObject({ answer: { code: 'KV_ERR_AUTH_FAILED' } });
    const early = await RawPeer.connect(s.dataPort, { secret: null });
    early.send([{ i: 1, o: 'retire', e: 0 }]);
    expect(await early.next()).toMatchObject({ code: 'KV_ERR_AUTH_FAILED' });
    expect(await early.closedWithin(2000)).toBe('closed');
    // A handshake recorded on one connection proves nothing on another.
    const recorder = net.connect(s.dataPort, '127.0.0.1');
    const dec = new FrameDecoder(1 << 20);
    const firstHello = await new Promise<unknown>((resolve) => recorder.once('data', (d: Buffer) => resolve(dec.push(d)[0])));
    if (!isHello(firstHello)) throw new Error('no hello');
    const nonce = newNonce();
    const recorded = encodeFrame({ auth: HANDSHAKE_VERSION, nonce, proof: peerProof(TEST_CLUSTER_SECRET, firstHello.id, firstHello.nonce, nonce) });
    const answer = await new Promise<unknown>((resolve) => {
      recorder.once('data', (d: Buffer) => resolve(dec.push(d)[0]));
      recorder.write(recorded);
    });
    expect(answer).toMatchObject({ ok: HANDSHAKE_VERSION });
    recorder.destroy();
    const replay = await RawPeer.connect(s.dataPort, { secret: null });
    replay.send(recorded);
    expect(await replay.next()).toMatchObject({ code: 'KV_ERR_AUTH_FAILED' });
    expect(await replay.closedWithin(2000)).toBe('closed');
    // A peer that never authenticates is cut after handshakeTimeoutMs.
    const silent = await RawPeer.connect(s.dataPort, { secret: null });
    expect(await silent.closedWithin(3000)).toBe('closed');
    const stats = (await get(`${s.adminUrl}/stats`, { headers: ADMIN_AUTH })).json<{ dataPort: { authFailures: number; authenticated: number } }>();
    expect(stats.dataPort.authFailures).toBeGreaterThanOrEqual(4);
    const metrics = (await get(`${s.adminUrl}/metrics`)).text;
    expect(metrics).toMatch(/^kv_shard_peer_auth_failures_total [4-9]\d*$/m);
    // The router's own connection authenticated and still works.
    expect((await put(`${c.url}/v1/kv/after-peers`, 'ok')).status).toBe(204);
  }, 60_000);

  it('idle connections are closed, connections above the limit are refused, frames over the buffer budget cut their peer; the router keeps serving', async () => {
    const c = await cluster({
      shards: 1,
      workers: 1,
      routerSet: { dataPingIntervalMs: 200, maxValueBytes: 65_536, maxFrameBytes: 262_144 },
      shardSet: { dataIdleTimeoutMs: 800, maxDataConnections: 20, maxValueBytes: 65_536, maxFrameBytes: 262_144, maxBufferedFrameBytes: 524_288 },
    });
    const s = c.shards[0]!;
    const b = bystander(c.url, { pauseMs: 30 });
    try {
      // Idle: an authenticated peer that sends nothing is closed; the router's pinged connection is not.
      const idle = await RawPeer.connect(s.dataPort);
      expect(await idle.closedWithin(3000)).toBe('closed');
      // Frames still arriving: two peers hold 200 KB each of a 250 KB frame; the third goes over 512 KiB.
      const partial = () => {
        const head = Buffer.alloc(4);
        head.writeUInt32BE(250_000, 0);
        return Buffer.concat([head, Buffer.alloc(200_000, 0x90)]);
      };
      const holders = [await RawPeer.connect(s.dataPort), await RawPeer.connect(s.dataPort)];
      for (const h of holders) h.send(partial());
      await sleep(200); // pacing: let both partial frames arrive before the third
      const third = await RawPeer.connect(s.dataPort);
      third.send(partial());
      expect(await third.closedWithin(3000)).toBe('closed');
      for (const h of holders) h.close();
      // A flood of connections: the ones above maxDataConnections are dropped at once.
      const flood = await Promise.all(Array.from({ length: 40 }, () => raw(s.dataPort, Buffer.alloc(0), 1500)));
      const dropped = flood.filter((f) => f.closedAfterMs !== undefined && f.closedAfterMs < 1000 && f.text === '').length;
      expect(dropped).toBeGreaterThan(0);
      const stats = (await get(`${s.adminUrl}/stats`, { headers: ADMIN_AUTH })).json<{ dataPort: Record<string, number> }>().dataPort;
      expect(stats['idleClosed']).toBeGreaterThanOrEqual(1);
      expect(stats['protocolErrors']).toBeGreaterThanOrEqual(1);
      expect(stats['connectionsRefused']).toBeGreaterThan(0);
      // Long enough for the router's connection to be idle for more than dataIdleTimeoutMs without its pings.
      await waitUntil(() => b.ok >= 20, { timeoutMs: 20_000, what: 'bystander requests' });
    } finally {
      expect(await b.finish()).toEqual([]);
    }
  }, 60_000);
});

describe('HTTP limits', () => {
  it('slow headers and a slow body are cut with 408 within their timeouts; a flood above maxConnections is refused; others are served', async () => {
    const c = await cluster({
      shards: 2,
      workers: 1,
      routerSet: { httpHeadersTimeoutMs: 800, httpRequestTimeoutMs: 1500, httpTimeoutCheckMs: 100, maxConnections: 60 },
    });
    const port = c.router.port;
    const b = bystander(c.url, { pauseMs: 20 });
    try {
      const slowHeaders = await raw(port, 'GET /healthz HTTP/1.1\r\nHost: x\r\n', 6000);
      expect(parseRaw(slowHeaders.text)).toMatchObject({ status: 408, body: { code: 'KV_ERR_REQUEST_TIMEOUT' } });
      expect(slowHeaders.closedAfterMs).toBeLessThan(3000);
      // content-length 100000, then one byte every 200 ms.
      const slowBody = await new Promise<{ text: string; ms: number }>((resolve) => {
        const t0 = Date.now();
        const sock = net.connect(port, '127.0.0.1', () => sock.write('PUT /v1/kv/slow-body HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n'));
        const drip = setInterval(() => sock.writable && sock.write('x'), 200);
        let text = '';
        sock.on('data', (d) => (text += d.toString()));
        sock.on('error', () => {});
        sock.on('close', () => {
          clearInterval(drip);
          resolve({ text, ms: Date.now() - t0 });
        });
      });
      expect(parseRaw(slowBody.text)).toMatchObject({ status: 408, body: { code: 'KV_ERR_REQUEST_TIMEOUT' } });
      expect(slowBody.ms).toBeLessThan(4000);
      expect((await get(`${c.url}/v1/kv/slow-body`)).status).toBe(404);
      // An HTTP/0.9-style line is answered within the headers timeout too, not after a minute.
      const old = await raw(port, 'GET /\r\n', 6000);
      expect([400, 408]).toContain(parseRaw(old.text).status);
      expect(old.closedAfterMs).toBeLessThan(3000);
      // A flood of idle connections: the worker closes those above maxConnections at once, without an answer
      // (the ones it keeps get the 408 of the headers timeout instead).
      const flood = await Promise.all(Array.from({ length: 150 }, () => raw(port, '', 3000)));
      const refused = flood.filter((f) => f.closedAfterMs !== undefined && f.text === '');
      expect(refused.length).toBeGreaterThan(50);
      expect(flood.filter((f) => f.text !== '').every((f) => parseRaw(f.text).status === 408)).toBe(true);
      await waitUntil(() => b.ok >= 30, { timeoutMs: 20_000, what: 'bystander requests' });
    } finally {
      expect(await b.finish()).toEqual([]);
    }
  }, 60_000);
});

describe('overload', () => {
  it('60 concurrent batches of 1000 gets: a bystander sees no error; the batches get 200, or 429/503 with Retry-After', async () => {
    const c = await cluster({ shards: 3, workers: 1, routerSet: { maxPendingOps: 8192 } });
    const b = bystander(c.url);
    try {
      await waitUntil(() => b.ok >= 5, { timeoutMs: 10_000, what: 'bystander start' });
      const body = (n: number) => JSON.stringify({ ops: Array.from({ length: 1000 }, (_, i) => ({ op: 'get', key: `b${n}-${i}` })) });
      const results = await Promise.all(
        Array.from({ length: 60 }, async (_, n) => {
          const a = new Agent({ connections: 1 }); // each batch client on its own connection
          try {
            return await request('POST', `${c.url}/v1/kv/_batch`, { body: body(n), headers: json, agent: a, timeoutMs: 60_000 });
          } finally {
            await a.close();
          }
        }),
      );
      const refused = results.filter((r) => r.status !== 200);
      for (const r of refused) {
        expect([429, 503]).toContain(r.status);
        expect(['KV_ERR_TOO_MANY_REQUESTS', 'KV_ERR_BUSY']).toContain(r.json()['code']);
        expect(r.headers['retry-after']).toBe('1');
      }
      for (const r of results.filter((x) => x.status === 200)) {
        const statuses = new Set(r.json<{ results: Array<{ status: number }> }>().results.map((x) => x.status));
        expect([...statuses]).toEqual([404]);
      }
      expect(results.filter((r) => r.status === 200).length).toBeGreaterThan(0);
    } finally {
      expect(await b.finish()).toEqual([]);
    }
  }, 120_000);
});

describe('Redis down', () => {
  it('what needs Redis fails fast with 503 and a code, the data path keeps serving, and everything recovers by itself', async () => {
    const c = await cluster({ shards: 2, workers: 2, persistentRedis: true });
    expect((await put(`${c.url}/v1/kv/before`, 'x')).status).toBe(204);
    const epoch = (await c.store.get()).epoch;
    await c.redis.stop();
    const t0 = Date.now();
    expectCode(await get(`${c.url}/v1/admin/shards`, { headers: ADMIN_AUTH }), 503, 'KV_ERR_REDIS_UNAVAILABLE');
    expect(Date.now() - t0).toBeLessThan(1500);
    expectCode(await get(`${c.url}/readyz`, { fresh: true }), 503, 'KV_ERR_REDIS_UNAVAILABLE');
    for (let i = 0; i < 6; i++) {
      expect((await put(`${c.url}/v1/kv/during-${i}`, `d${i}`, { fresh: true })).status).toBe(204);
      expect((await get(`${c.url}/v1/kv/during-${i}`, { fresh: true })).text).toBe(`d${i}`);
    }
    await c.restartRedis();
    await waitUntil(
      async () => (await get(`${c.url}/readyz`, { fresh: true })).status === 200 && (await get(`${c.url}/readyz`, { fresh: true })).status === 200,
      {
        timeoutMs: 20_000,
        what: 'both workers ready again',
      },
    );
    const shards = await get(`${c.url}/v1/admin/shards`, { headers: ADMIN_AUTH });
    expect(shards.status).toBe(200);
    expect(shards.json()['epoch']).toBe(epoch);
    expect((await get(`${c.url}/v1/kv/before`)).text).toBe('x');
  }, 90_000);
});

describe('TLS', () => {
  it('serves HTTPS and TLS data ports from certificate files; the router verifies the shards against the CA', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'shardkv-tls-'));
    try {
      const f = (n: string) => path.join(dir, n);
      const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
      ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '1', '-subj', '/CN=shardkv test CA');
      ssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('srv.key'), '-out', f('srv.csr'), '-subj', '/CN=127.0.0.1');
      writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
      ssl(
        'x509',
        '-req',
        '-in',
        f('srv.csr'),
        '-CA',
        f('ca.crt'),
        '-CAkey',
        f('ca.key'),
        '-CAcreateserial',
        '-out',
        f('srv.crt'),
        '-days',
        '1',
        '-extfile',
        f('ext.cnf'),
      );
      const tls = { tlsCertFile: f('srv.crt'), tlsKeyFile: f('srv.key') };
      const c = await cluster({ shards: 2, workers: 1, shardSet: tls, routerSet: { ...tls, dataTls: 'true', tlsCaFile: f('ca.crt') } });
      expect(c.url.startsWith('https://')).toBe(true);
      const agent = new Agent({ connect: { ca: readFileSync(f('ca.crt')) } });
      try {
        const ring = ringOf(await c.store.get());
        const keys = ['k1', 'k2', 'k3', 'k4', 'k5', 'k6'];
        for (const k of keys) expect((await put(`${c.url}/v1/kv/${k}`, `tls-${k}`, { agent })).status).toBe(204);
        for (const k of keys) expect((await get(`${c.url}/v1/kv/${k}`, { agent })).text).toBe(`tls-${k}`);
        // Both shards got keys: the router reached both data ports over TLS.
        expect(new Set(keys.map((k) => ring.ownerOf(k))).size).toBe(2);
        for (const s of c.shards) expect((await get(`${s.adminUrl}/healthz`, { agent })).status).toBe(200);
        // Plain TCP to a TLS data port gets no hello.
        await expect(RawPeer.connect(c.shards[0]!.dataPort)).rejects.toThrow();
        // And without the CA the certificate is not trusted.
        await expect(get(`${c.url}/healthz`)).rejects.toThrow();
      } finally {
        await agent.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
