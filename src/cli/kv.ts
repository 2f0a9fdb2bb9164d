#!/usr/bin/env node
// The `kv` command: run the local system, a shard, the router cluster, manage
// the topology, and talk to the API.
import cluster from 'node:cluster';
import { Command } from 'commander';
import { parseRouterConfig, parseShardConfig, configFromEnv, defaultRedisPrefix, securityProblem, ROUTER_DEFAULTS, SHARD_DEFAULTS } from '../core/config.js';
import { KvError, fromWire, kvError } from '../core/errors.js';
import { createRedis } from '../infra/redis.js';
import { TopologyStore, initTopology } from '../infra/topology-store.js';
import { ringOf } from '../core/topology.js';
import { runUp } from './up.js';
import { localAdminToken, localApiKey, localRedisUrl, localRouterUrl, localSecrets } from './local-file.js';
import { RouterClient } from './router-client.js';
import { listShards, printPlan, watch } from './rebalance-view.js';
import { snapshotText, topLive, topOnce, type TopConfig } from './top.js';

const program = new Command();
program.name('kv').description('shardkv: a sharded key-value service').showHelpAfterError();

function compact(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

/** Secrets not given otherwise come from a local `kv up`'s data directory. */
function withLocalSecrets(input: Record<string, unknown>): void {
  if (input['adminToken'] !== undefined && input['clusterSecret'] !== undefined) return;
  // Asked to run without secrets: do not pick up a local system's.
  if (input['insecure'] === true || /^(1|true|yes|on)$/i.test(String(input['insecure'] ?? ''))) return;
  const s = localSecrets();
  if (!s) return;
  input['adminToken'] ??= s.adminToken;
  input['clusterSecret'] ??= s.clusterSecret;
}

/** Refuse to start without secrets (unless explicitly insecure on loopback), and say loudly when security is off. */
function checkSecurity(name: string, cfg: Parameters<typeof securityProblem>[1]): void {
  const problem = securityProblem(name, cfg);
  if (problem) throw kvError('KV_ERR_CONFIG', problem);
  if (cfg.insecure) {
    console.error(
      `WARNING: ${name} runs with insecure=true: the admin API and the shard data and HTTP ports accept anyone who can reach ${cfg.host}. For local development only.`,
    );
  }
}

function fail(err: unknown): never {
  if (err instanceof KvError) console.error(`kv: ${err.code}: ${err.message}`);
  else console.error(`kv: ${(err as Error)?.message ?? String(err)}`);
  process.exit(1);
}

const shard = program.command('shard').description('run a shard process');
shard
  .command('start')
  .description('start one shard (LMDB store, data port, admin port) and register it in Redis')
  .option('--id <id>', 'stable shard id, e.g. s1 (env SHARD_ID)')
  .option('--data-dir <dir>', 'LMDB directory (env SHARD_DATA_DIR; default ./data/<id>)')
  .option('--host <host>', 'address to bind (env SHARD_HOST)')
  .option('--advertise-host <host>', 'host name routers use to reach this shard (env SHARD_ADVERTISE_HOST)')
  .option('--data-port <port>', 'binary data port, 0 = any (env SHARD_DATA_PORT)')
  .option('--admin-port <port>', 'HTTP admin port, 0 = any (env SHARD_ADMIN_PORT)')
  .option('--redis-url <url>', 'Redis for shared state (env REDIS_URL)')
  .option('--redis-prefix <prefix>', 'key prefix in Redis (env SHARD_REDIS_PREFIX)')
  .option('--set <key=value...>', 'any other shard option, e.g. --set maxValueBytes=2097152')
  .action(async (o: Record<string, string | string[] | undefined>) => {
    try {
      const input: Record<string, unknown> = {
        ...configFromEnv(SHARD_DEFAULTS, 'SHARD_'),
        ...compact({
          id: o['id'],
          dataDir: o['dataDir'],
          host: o['host'],
          advertiseHost: o['advertiseHost'],
          dataPort: o['dataPort'],
          adminPort: o['adminPort'],
          redisUrl: o['redisUrl'],
          redisPrefix: o['redisPrefix'],
        }),
        ...parseSets(o['set']),
      };
      if (!input['dataDir'] && typeof input['id'] === 'string') input['dataDir'] = `./data/${input['id']}`;
      if (input['redisUrl'] === undefined && localRedisUrl()) input['redisUrl'] = localRedisUrl();
      withLocalSecrets(input);
      const { startShardProcess } = await import('../shard/main.js');
      const config = parseShardConfig(input);
      checkSecurity(`shard ${config.id}`, config);
      await startShardProcess(config);
    } catch (err) {
      fail(err);
    }
  });

const router = program.command('router').description('run the router cluster');
router
  .command('start')
  .description('start the router primary and its workers (cluster module)')
  .option('--port <port>', 'HTTP port (env ROUTER_PORT)')
  .option('--host <host>', 'address to bind (env ROUTER_HOST)')
  .option('--workers <n>', 'worker processes (env ROUTER_WORKERS; default: CPUs)')
  .option('--redis-url <url>', 'Redis for shared state (env REDIS_URL)')
  .option('--redis-prefix <prefix>', 'key prefix in Redis (env ROUTER_REDIS_PREFIX)')
  .option('--set <key=value...>', 'any other router option, e.g. --set requestTimeoutMs=2000')
  .action(async (o: Record<string, string | string[] | undefined>) => {
    try {
      const local = localRedisUrl();
      const input: Record<string, unknown> = {
        ...(local ? { redisUrl: local } : {}),
        ...configFromEnv(ROUTER_DEFAULTS, 'ROUTER_'),
        ...compact({
          port: o['port'],
          host: o['host'],
          workers: o['workers'],
          redisUrl: o['redisUrl'],
          redisPrefix: o['redisPrefix'],
        }),
        ...parseSets(o['set']),
      };
      withLocalSecrets(input);
      const config = parseRouterConfig(input);
      if (cluster.isPrimary) {
        checkSecurity('router', config);
        if (!config.dataAuth && !config.insecure) {
          console.error('WARNING: router runs with dataAuth=false: /v1/kv takes requests without credentials (anonymous, keys not namespaced).');
        }
      }
      if (cluster.isPrimary) {
        const { runPrimary } = await import('../router/primary.js');
        await runPrimary(config);
      } else {
        const { runWorker } = await import('../router/worker.js');
        await runWorker(config);
      }
    } catch (err) {
      fail(err);
    }
  });

const topo = program.command('topology').description('inspect or bootstrap the topology');
topo
  .command('init')
  .description('put registered shards into an empty ring (first start only)')
  .argument('<ids...>', 'shard ids')
  .option('--wait-ms <ms>', 'wait this long for the shards to register', '10000')
  .option('--redis-url <url>', 'Redis (env REDIS_URL)')
  .option('--redis-prefix <prefix>', 'key prefix in Redis (env KV_REDIS_PREFIX)', defaultRedisPrefix())
  .action(async (ids: string[], o: Record<string, string>) => {
    const redis = createRedis({ redisUrl: o['redisUrl'] ?? localRedisUrl() ?? ROUTER_DEFAULTS.redisUrl, redisCommandTimeoutMs: 2000 });
    try {
      const store = new TopologyStore(redis, o['redisPrefix']!);
      const before = await store.get();
      const t = await initTopology(store, ids, { waitMs: Number(o['waitMs']) });
      if (before.shards.length > 0) console.error(`the ring is already set up (epoch ${t.epoch}: ${t.shards.map((s) => s.id).join(', ')}); nothing changed`);
      console.log(JSON.stringify(t, null, 2));
    } catch (err) {
      fail(err);
    } finally {
      redis.disconnect();
    }
  });
topo
  .command('show')
  .description("print the topology, its epoch and each shard's share of the ring")
  .option('--redis-url <url>', 'Redis (env REDIS_URL)')
  .option('--redis-prefix <prefix>', 'key prefix in Redis (env KV_REDIS_PREFIX)', defaultRedisPrefix())
  .action(async (o: Record<string, string>) => {
    const redis = createRedis({ redisUrl: o['redisUrl'] ?? localRedisUrl() ?? ROUTER_DEFAULTS.redisUrl, redisCommandTimeoutMs: 2000 });
    try {
      const store = new TopologyStore(redis, o['redisPrefix']!);
      const t = await store.get();
      const shares = ringOf(t).shares();
      const regs = await store.registrations();
      console.log(`epoch ${t.epoch}${t.migration ? ' (migration in progress)' : ''}`);
      for (const s of t.shards) {
        const up = regs.some((r) => r.id === s.id) ? 'registered' : 'NOT REGISTERED';
        console.log(
          `  ${s.id.padEnd(10)} ${s.state.padEnd(8)} weight ${String(s.weight).padEnd(4)} share ${((shares[s.id] ?? 0) * 100).toFixed(1).padStart(5)}%  data ${s.dataAddr}  admin ${s.adminAddr}  ${up}`,
        );
      }
      const extra = regs.filter((r) => !t.shards.some((s) => s.id === r.id));
      for (const r of extra) console.log(`  ${r.id.padEnd(10)} available (registered, not in the ring)  data ${r.dataAddr}`);
    } catch (err) {
      fail(err);
    } finally {
      redis.disconnect();
    }
  });

program
  .command('up')
  .description('start the whole local system: Redis, three shards and the router cluster')
  .option('--data-dir <dir>', 'where shard data (and a private Redis) live', './data')
  .option('--shards <n>', 'number of shards', '3')
  .option('--port <port>', 'router HTTP port', '8080')
  .option('--workers <n>', 'router workers (default: CPUs)')
  .option('--shard-base-port <port>', 'shard i uses data port base+i and admin port base+100+i', '7000')
  .option('--insecure', 'no admin token and no cluster secret (local development only; env KV_INSECURE=1)')
  .action(async (o: Record<string, string | boolean | undefined>) => {
    try {
      const insecure = o['insecure'] === true || /^(1|true|yes|on)$/i.test(process.env['KV_INSECURE'] ?? '');
      await runUp({
        dataDir: o['dataDir'] as string,
        shards: Number(o['shards']),
        port: Number(o['port']),
        workers: o['workers'] ? Number(o['workers']) : undefined,
        shardBasePort: Number(o['shardBasePort']),
        insecure,
      });
    } catch (err) {
      fail(err);
    }
  });

/** A refusal of the data API as its KV_ERR code and message. */
async function dataError(res: Response): Promise<Error> {
  const text = await res.text();
  try {
    return fromWire(JSON.parse(text) as Record<string, unknown>);
  } catch {
    return new Error(`${res.status} ${text.slice(0, 500)}`);
  }
}

const url = (o: Record<string, string>) => (o['url'] ?? localRouterUrl()).replace(/\/$/, '');
/** The data API's credentials: --api-key, KV_API_KEY, or the dev key of a local `kv up`. */
const apiAuth = (o: Record<string, string>): Record<string, string> => {
  const key = o['apiKey'] ?? localApiKey();
  return key ? { authorization: `Bearer ${key}` } : {};
};
program
  .command('get')
  .description('GET a key through the router')
  .argument('<key>')
  .option('--url <url>', 'router URL (env KV_URL)')
  .option('--api-key <key>', 'API key (env KV_API_KEY)')
  .action(async (key: string, o: Record<string, string>) => {
    const res = await fetch(`${url(o)}/v1/kv/${encodeURIComponent(key)}`, { headers: apiAuth(o) }).catch(fail);
    if (!res.ok) fail(await dataError(res));
    process.stdout.write(Buffer.from(await res.arrayBuffer()));
    if (process.stdout.isTTY) process.stdout.write('\n');
  });
program
  .command('put')
  .description('PUT a key through the router')
  .argument('<key>')
  .argument('<value>')
  .option('--url <url>', 'router URL (env KV_URL)')
  .option('--ttl <seconds>', 'expire after this many seconds')
  .option('--type <contentType>', 'content type', 'text/plain; charset=utf-8')
  .option('--api-key <key>', 'API key (env KV_API_KEY)')
  .action(async (key: string, value: string, o: Record<string, string>) => {
    const q = o['ttl'] ? `?ttl=${encodeURIComponent(o['ttl'])}` : '';
    const res = await fetch(`${url(o)}/v1/kv/${encodeURIComponent(key)}${q}`, {
      method: 'PUT',
      body: value,
      headers: { 'content-type': o['type']!, ...apiAuth(o) },
    }).catch(fail);
    if (!res.ok) fail(await dataError(res));
    console.log(`stored ${key} (version ${res.headers.get('etag')})`);
  });
program
  .command('del')
  .description('DELETE a key through the router')
  .argument('<key>')
  .option('--url <url>', 'router URL (env KV_URL)')
  .option('--api-key <key>', 'API key (env KV_API_KEY)')
  .action(async (key: string, o: Record<string, string>) => {
    const res = await fetch(`${url(o)}/v1/kv/${encodeURIComponent(key)}`, { method: 'DELETE', headers: apiAuth(o) }).catch(fail);
    if (!res.ok) fail(await dataError(res));
    console.log(`deleted ${key}`);
  });

const admin = (o: Record<string, unknown>) =>
  new RouterClient({ url: url(o as Record<string, string>), token: (o['token'] as string | undefined) ?? localAdminToken() });

async function change(o: Record<string, unknown>, method: string, path: string, body: unknown): Promise<void> {
  const c = admin(o);
  const dry = o['dryRun'] === true;
  const res = await c.call<{ plan: Record<string, unknown>; job?: { id: string } }>(method, `${path}${dry ? '?dryRun=1' : ''}`, body);
  printPlan(res.body.plan);
  if (dry) return;
  console.log(`job ${res.body.job!.id} started`);
  if (o['watch'] === false) return;
  const last = await watch(c);
  if (last.job?.state !== 'done') process.exitCode = 1;
}

const shards = program.command('shards').description('list shards and change the ring (rebalances live)');
const adminOpts = (cmd: Command) => cmd.option('--url <url>', 'router URL (env KV_URL)').option('--token <token>', 'admin token (env KV_ADMIN_TOKEN)');
adminOpts(shards.command('list').description('each shard: state, weight, share of the ring, records and size')).action(async (o: Record<string, unknown>) => {
  await listShards(admin(o)).catch(fail);
});
adminOpts(
  shards
    .command('add')
    .description('put a registered shard into the ring and move its share of keys to it')
    .argument('<id>')
    .option('--weight <w>', 'ring weight', '1')
    .option('--dry-run', 'only show the plan')
    .option('--no-watch', 'start the job and return'),
).action(async (id: string, o: Record<string, unknown>) => {
  await change(o, 'POST', '/v1/admin/shards', { id, weight: Number(o['weight']) }).catch(fail);
});
adminOpts(
  shards
    .command('remove')
    .description('move all keys off a shard and take it out of the ring')
    .argument('<id>')
    .option('--dry-run', 'only show the plan')
    .option('--no-watch', 'start the job and return'),
).action(async (id: string, o: Record<string, unknown>) => {
  await change(o, 'DELETE', `/v1/admin/shards/${encodeURIComponent(id)}`, undefined).catch(fail);
});
adminOpts(
  shards
    .command('forget')
    .description('drop a shard that is lost for good from the ring WITHOUT moving its keys (they are lost)')
    .argument('<id>')
    .option('--yes', "confirm that the shard's keys are lost"),
).action(async (id: string, o: Record<string, unknown>) => {
  if (o['yes'] !== true)
    fail(
      new Error(`forgetting ${id} loses every key it holds; use \`kv shards remove ${id}\` to drain a running shard, or pass --yes if ${id} is gone for good`),
    );
  const res = await admin(o)
    .call<{ epoch: number; shareLost: number; shards: string[] }>('DELETE', `/v1/admin/shards/${encodeURIComponent(id)}?lost=1`)
    .catch(fail);
  console.log(
    `forgot ${id} at epoch ${res.body.epoch}; its ${(res.body.shareLost * 100).toFixed(1)}% of the ring now belongs to ${res.body.shards.join(', ')} (those keys are gone)`,
  );
});
adminOpts(
  shards
    .command('weight')
    .description("change a shard's weight (moves keys to match)")
    .argument('<id>')
    .argument('<weight>')
    .option('--dry-run', 'only show the plan')
    .option('--no-watch', 'start the job and return'),
).action(async (id: string, w: string, o: Record<string, unknown>) => {
  if (!/^\d+(\.\d+)?$/.test(w)) fail(new Error(`weight must be a positive number, got ${JSON.stringify(w)}`));
  await change(o, 'PUT', `/v1/admin/shards/${encodeURIComponent(id)}/weight`, { weight: Number(w) }).catch(fail);
});

const tenants = program.command('tenants').description('tenants: each has its own key space and API keys');
adminOpts(tenants.command('create').description('create a tenant').argument('<name>', 'lowercase letters, digits and -, at most 32')).action(
  async (name: string, o: Record<string, unknown>) => {
    const res = await admin(o).call<{ name: string }>('POST', '/v1/admin/tenants', { name }).catch(fail);
    console.log(`tenant ${res.body.name} created; give it an API key with \`kv keys create ${res.body.name}\``);
  },
);
adminOpts(tenants.command('list').description('every tenant and how many API keys it has')).action(async (o: Record<string, unknown>) => {
  const res = await admin(o).call<{ tenants: Array<{ name: string; createdAt: number; apiKeys: number }> }>('GET', '/v1/admin/tenants').catch(fail);
  console.log(`  ${'tenant'.padEnd(34)} ${'API keys'.padStart(8)}  created`);
  for (const t of res.body.tenants) console.log(`  ${t.name.padEnd(34)} ${String(t.apiKeys).padStart(8)}  ${new Date(t.createdAt).toISOString()}`);
});
const keys = program.command('keys').description('API keys of tenants');
adminOpts(keys.command('create').description('a new API key for a tenant (shown once; only its hash is stored)').argument('<tenant>')).action(
  async (tenant: string, o: Record<string, unknown>) => {
    const res = await admin(o)
      .call<{ id: string; key: string }>('POST', `/v1/admin/tenants/${encodeURIComponent(tenant)}/keys`)
      .catch(fail);
    console.log(res.body.key);
    console.error(`key id ${res.body.id} for tenant ${tenant}: store the key now, it is not shown again; revoke it with \`kv keys revoke ${res.body.id}\``);
  },
);
adminOpts(keys.command('revoke').description('revoke an API key and end every session made with it').argument('<id>')).action(
  async (id: string, o: Record<string, unknown>) => {
    await admin(o)
      .call('DELETE', `/v1/admin/keys/${encodeURIComponent(id)}`)
      .catch(fail);
    console.log(`API key ${id} revoked; its sessions are ended`);
  },
);

const rebalance = program.command('rebalance').description('follow or cancel the running rebalance job');
adminOpts(rebalance.command('watch').description('live progress bars per stream until the job ends')).action(async (o: Record<string, unknown>) => {
  const c = admin(o);
  const s = await c.status().catch(fail);
  if (!s.job) {
    console.log('no rebalance job');
    return;
  }
  const last = await watch(c).catch(fail);
  if (last.job && last.job.state !== 'done' && last.job.state !== 'cancelled') process.exitCode = 1;
});
adminOpts(rebalance.command('status').description('the current (or last) job as JSON')).action(async (o: Record<string, unknown>) => {
  console.log(JSON.stringify(await admin(o).status().catch(fail), null, 2));
});
adminOpts(rebalance.command('cancel').description('stop the job and stream moved keys back to the original ring')).action(
  async (o: Record<string, unknown>) => {
    const c = admin(o);
    await c.call('POST', '/v1/admin/rebalance/cancel').catch(fail);
    console.log('cancel requested; keys already moved stream back to their original owners');
    const last = await watch(c).catch(fail);
    if (last.job?.state !== 'cancelled') process.exitCode = 1;
  },
);

/** A whole number of milliseconds for option `name`, within [min, max]. */
function msOption(name: string, v: string, min: number, max: number): number {
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max)
    fail(new Error(`${name} takes whole milliseconds from ${min} to ${max}, got ${JSON.stringify(v)}`));
  return Number(v);
}
/** Repeatable and comma-separated: --url a --url b,c */
const collectUrls = (v: string, prev: string[] | undefined) => [
  ...(prev ?? []),
  ...v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
];

program
  .command('top')
  .description('live view of the cluster: shards, router hosts and the running move, redrawn in place (q quits)')
  .option('--url <url>', 'router URL; repeat it or give a comma list for several router hosts (env KV_URL)', collectUrls)
  .option('--token <token>', 'admin token (env KV_ADMIN_TOKEN)')
  .option('--interval-ms <ms>', 'time between reads; rates and latencies cover this window', '1000')
  .option('--timeout-ms <ms>', 'give up on one request to a router after this long', '2000')
  .option('--late-ms <ms>', 'a shard whose last heartbeat is older than this shows as LATE (when the router reports heartbeat ages)', '3000')
  .option('--once', 'print one snapshot (two reads --interval-ms apart) without screen control codes, and exit')
  .option('--json', 'with --once (implied): print the snapshot as JSON')
  .addHelpText(
    'after',
    `
Columns (see docs/operations.md, "kv top"):
  shards:  state, ring weight, share of the ring, records, store bytes, ops/s (requests
           the routers forwarded to it and got answered), p99 of that forward latency,
           heartbeat age, health (DOWN: registration expired; LATE: stale heartbeat or
           no answer to the stats request)
  routers: req/s, p50/p99 latency, 4xx/s, 5xx/s (scrapes of /metrics left out),
           requests in flight, live workers, from two successive scrapes of /metrics
  move:    the running rebalance job: keys done/total, rate, ETA, pacing
A column whose metric the router does not publish shows "-".
Exit status: 0; 1 when a router could not be read (with --once) or an option is wrong.`,
  )
  .action(async (o: Record<string, unknown>) => {
    const fromFlag = o['token'] as string | undefined;
    const token = fromFlag ?? localAdminToken();
    const c: TopConfig = {
      urls: [...new Set(((o['url'] as string[] | undefined) ?? [localRouterUrl()]).map((u) => u.replace(/\/$/, '')))],
      token,
      tokenSource: fromFlag !== undefined ? '--token' : process.env['KV_ADMIN_TOKEN'] ? 'KV_ADMIN_TOKEN' : 'the local data dir',
      intervalMs: msOption('--interval-ms', String(o['intervalMs']), 100, 600_000),
      timeoutMs: msOption('--timeout-ms', String(o['timeoutMs']), 100, 600_000),
      lateMs: msOption('--late-ms', String(o['lateMs']), 0, 86_400_000),
    };
    try {
      if (o['once'] === true || o['json'] === true) {
        const snap = await topOnce(c);
        for (const e of snap.errors) console.error(`kv: ${e}`);
        if (o['json'] === true) process.stdout.write(`${JSON.stringify(snap, null, 2)}\n`);
        else if (snap.shardCount !== null) process.stdout.write(snapshotText(snap, c.intervalMs));
        if (snap.errors.length > 0) process.exitCode = 1;
        return;
      }
      if (!process.stdout.isTTY) fail(new Error('standard output is not a terminal: use `kv top --once` (or --once --json) in scripts'));
      await topLive(c);
    } catch (err) {
      fail(err);
    }
  });

function parseSets(v: string | string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of Array.isArray(v) ? v : v ? [v] : []) {
    const i = s.indexOf('=');
    if (i < 1) fail(new Error(`--set takes key=value, got ${JSON.stringify(s)}`));
    out[s.slice(0, i)] = s.slice(i + 1);
  }
  return out;
}

program.parseAsync(process.argv).catch(fail);
