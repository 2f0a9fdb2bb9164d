// Direct mode's options (validated with every other client option), what the
// package root loads (no Redis client, no HTTP server), and the topology
// source against scripted fake routers.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KvClient, KvError } from '../../src/index.js';
import { parseClientOptions } from '../../src/client/options.js';
import { Balancer } from '../../src/client/balancer.js';
import { RouterTopology } from '../../src/client/router-topology.js';
import { FakeRouter, type Handler } from '../helpers/fake-router.js';

const SECRET = 'direct-secret-0123456789abcdef';
const URL = 'http://127.0.0.1:1';

function configError(o: unknown): KvError {
  try {
    parseClientOptions(o as Parameters<typeof parseClientOptions>[0]);
  } catch (err) {
    expect(err).toBeInstanceOf(KvError);
    return err as KvError;
  }
  throw new Error(`accepted ${JSON.stringify(o)}`);
}

describe('direct-mode options', () => {
  it('parses and freezes them, with defaults', () => {
    const c = parseClientOptions({ urls: URL, direct: { clusterSecret: SECRET } });
    expect(c.direct).toEqual({ clusterSecret: SECRET, dataTls: false, tlsCaFile: '', topologyPollMs: 1000 });
    expect(Object.isFrozen(c.direct)).toBe(true);
    expect(parseClientOptions({ urls: URL }).direct).toBeUndefined();
    const t = parseClientOptions({ urls: URL, direct: { clusterSecret: SECRET, dataTls: true, tlsCaFile: 'ca.pem', topologyPollMs: 250 } });
    expect(t.direct).toMatchObject({ dataTls: true, tlsCaFile: 'ca.pem', topologyPollMs: 250 });
  });

  it('refuses a missing, short or placeholder secret, unknown keys and bad values with KV_ERR_CONFIG', () => {
    const cases: [unknown, RegExp][] = [
      [{ urls: URL, direct: {} }, /direct\.clusterSecret must be the cluster secret/],
      [{ urls: URL, direct: { clusterSecret: 'short' } }, /at least 16 characters/],
      [{ urls: URL, direct: { clusterSecret: 'change-me-0123456789abcdef' } }, /not a placeholder/],
      [{ urls: URL, direct: { clusterSecret: 42 } }, /direct\.clusterSecret/],
      [{ urls: URL, direct: true }, /direct must be an object/],
      [{ urls: URL, direct: { clusterSecret: SECRET, secret: 'x' } }, /unknown option "direct\.secret"/],
      [{ urls: URL, direct: { clusterSecret: SECRET, dataTls: 'yes' } }, /direct\.dataTls must be true or false/],
      [{ urls: URL, direct: { clusterSecret: SECRET, tlsCaFile: '' } }, /direct\.tlsCaFile/],
      [{ urls: URL, direct: { clusterSecret: SECRET, topologyPollMs: 5 } }, /"direct\.topologyPollMs" must be a whole number from 10/],
      [{ urls: URL, apiKey: 'kvk_abc', direct: { clusterSecret: SECRET } }, /cannot be combined with apiKey or sessionToken/],
      [{ urls: URL, sessionToken: 'kvs_abc', direct: { clusterSecret: SECRET } }, /cannot be combined/],
    ];
    for (const [o, msg] of cases) {
      const err = configError(o);
      expect(err.code).toBe('KV_ERR_CONFIG');
      expect(err.message).toMatch(msg);
    }
  });

  it('checks keys, values and preconditions before anything is sent, with the router codes', async () => {
    // Nothing listens on port 1: an error other than the input's would show a send.
    const c = new KvClient({ urls: URL, direct: { clusterSecret: SECRET }, retries: 0 });
    try {
      const code = (p: Promise<unknown>) =>
        p.then(
          () => 'ok',
          (e: KvError) => e.code,
        );
      expect(await code(c.get(''))).toBe('KV_ERR_KEY_EMPTY');
      expect(await code(c.get('a\u0001b'))).toBe('KV_ERR_KEY_INVALID');
      expect(await code(c.get('a\uffffb'))).toBe('KV_ERR_KEY_INVALID');
      expect(await code(c.get('k'.repeat(1025)))).toBe('KV_ERR_KEY_TOO_LONG');
      expect(await code(c.put('k', new Uint8Array(1024 * 1024 + 1)))).toBe('KV_ERR_VALUE_TOO_LARGE');
      expect(await code(c.put('k', 'v', { ttl: 0 }))).toBe('KV_ERR_BAD_TTL');
      expect(await code(c.put('k', 'v', { ttl: 1.5 }))).toBe('KV_ERR_BAD_TTL');
      expect(await code(c.put('k', 'v', { contentType: 'not a type' }))).toBe('KV_ERR_BAD_CONTENT_TYPE');
      expect(await code(c.put('k', 'v', { ifMatch: -1 }))).toBe('KV_ERR_BAD_PRECONDITION');
      expect(await code(c.delete('k', { ifMatch: 'x' }))).toBe('KV_ERR_BAD_PRECONDITION');
      expect(await code(c.batch([]))).toBe('KV_ERR_BAD_BATCH');
      expect(
        await code(
          c.batch([
            { op: 'get', key: 'a' },
            { op: 'get', key: '' },
          ]),
        ),
      ).toBe('KV_ERR_KEY_EMPTY');
      // With valid input, no router to ask for the topology: a coded 503, nothing sent.
      expect(await code(c.get('k'))).toBe('KV_ERR_ROUTER_UNAVAILABLE');
    } finally {
      await c.close();
    }
    expect(await new KvClient({ urls: URL, direct: { clusterSecret: SECRET } }).close()).toBeUndefined();
  });
});

describe('the package root', () => {
  /** Every module a file loads at run time (type-only imports are erased), followed through relative imports. */
  function runtimeImports(entry: string): Set<string> {
    const seen = new Set<string>();
    const bare = new Set<string>();
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const src = readFileSync(file, 'utf8');
      for (const m of src.matchAll(/^(?:import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?'([^']+)';/gms)) {
        if (m[1]) continue;
        const spec = m[2]!;
        if (spec.startsWith('.')) visit(path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')));
        else bare.add(spec);
      }
    };
    visit(entry);
    return bare;
  }

  it('loads neither ioredis nor fastify (direct mode included)', () => {
    const mods = runtimeImports(path.resolve(import.meta.dirname, '../../src/index.ts'));
    expect(mods.has('undici')).toBe(true); // the walk does see the client's dependencies
    expect(mods.has('msgpackr')).toBe(true); // and direct mode's
    expect([...mods].filter((m) => /ioredis|fastify|lmdb/.test(m))).toEqual([]);
    // The walk would see them: the router's app loads both.
    const app = runtimeImports(path.resolve(import.meta.dirname, '../../src/router/app.ts'));
    expect(app.has('fastify') && app.has('ioredis')).toBe(true);
  });
});

describe('the topology from the routers', () => {
  const fakes: FakeRouter[] = [];
  afterEach(async () => {
    await Promise.all(fakes.splice(0).map((f) => f.close()));
  });
  const topo = (epoch: number) => ({
    epoch,
    updatedAt: 1,
    shards: [{ id: 's1', dataAddr: '127.0.0.1:7001', adminAddr: '127.0.0.1:7101', weight: 1, state: 'active' }],
  });

  it('skips a router that is down or answers nonsense, never goes back an epoch, and keeps the newest when none answers', async () => {
    let epoch = 3;
    const good: Handler = (r) => (r.url === '/v1/topology' ? { status: 200, body: topo(epoch) } : { status: 200, body: { ready: true } });
    const bad: Handler = () => ({ status: 200, body: { epoch: 'x' } });
    const g = await FakeRouter.start(good);
    const b = await FakeRouter.start(bad);
    fakes.push(g, b);
    const balancer = new Balancer(['http://127.0.0.1:1', b.url, g.url], { connections: 2, connectTimeoutMs: 1000, readyProbeMs: 10_000, ca: undefined });
    const src = new RouterTopology(balancer, { pollMs: 10_000, timeoutMs: 2000 });
    const changes: number[] = [];
    src.on('change', (t) => changes.push(t.epoch));
    try {
      expect((await src.ready()).epoch).toBe(3);
      expect(balancer.stats().filter((s) => !s.healthy).length).toBeGreaterThanOrEqual(1);
      epoch = 2; // an older answer (a router that is behind) is ignored
      expect((await src.refresh()).epoch).toBe(3);
      epoch = 5;
      expect((await src.refresh()).epoch).toBe(5);
      await g.close();
      fakes.splice(fakes.indexOf(g), 1);
      expect((await src.refresh()).epoch).toBe(5);
      expect(changes).toEqual([3, 5]);
    } finally {
      src.close();
      await balancer.close();
    }
  });
});
