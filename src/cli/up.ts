// `kv up` (npm start): the whole local system in one command. Redis from
// REDIS_URL, or a private redis-server under <data-dir>/redis; N shards with
// LMDB data under <data-dir>/<id> on fixed ports (so a restart keeps both
// data and addresses); the router cluster. Ctrl-C stops everything in order:
// router first (drains), then shards, then the private Redis.
import path from 'node:path';
import { writeFileSync, unlinkSync } from 'node:fs';
import { LOCAL_FILE } from './local-file.js';
import { fileURLToPath } from 'node:url';
import { Child } from '../local/child.js';
import { startRedis, findRedisServer, type LocalRedis } from '../local/redis-server.js';
import { loadOrCreateSecrets, readSecrets, saveApiKey } from '../local/secrets.js';
import { IdentityStore, sha256 } from '../infra/identity-store.js';

const DEV_TENANT = 'dev';
import { createRedis } from '../infra/redis.js';
import { TopologyStore, initTopology } from '../infra/topology-store.js';
import { defaultRedisPrefix } from '../core/config.js';

export interface UpOptions {
  dataDir: string;
  shards: number;
  port: number;
  workers: number | undefined;
  shardBasePort: number;
  /** No secrets (local development only): every role logs it loudly. */
  insecure: boolean;
}

const KV_BIN = fileURLToPath(new URL('./kv.js', import.meta.url));

/** A role starts in seconds; this bounds a start that hangs. */
const READY_TIMEOUT_MS = 60_000;
/** SIGKILL a role that has not stopped this long after SIGTERM (the router drains first). */
const ROUTER_STOP_MS = 20_000;
const SHARD_STOP_MS = 15_000;

/** A `kv` child in its own process group (the terminal's Ctrl-C reaches only `kv up`, which then stops the children in order), its lines prefixed with its name. */
function spawnKv(args: string[], name: string, env: NodeJS.ProcessEnv): Child {
  return new Child(KV_BIN, args, { env, detached: true, onLine: (line) => process.stderr.write(`[${name}] ${line}\n`) });
}

/** The tenant `dev` and an API key for it in secrets.json (again, if Redis lost the one there). */
async function ensureDevApiKey(identity: IdentityStore, dataDir: string): Promise<void> {
  const have = readSecrets(dataDir)?.apiKey;
  if (have && (await identity.apiKey(sha256(have)))) return;
  if (!(await identity.tenant(DEV_TENANT))) await identity.createTenant(DEV_TENANT);
  const k = await identity.createApiKey(DEV_TENANT);
  saveApiKey(dataDir, k.key);
  console.error(`[up] created an API key for the tenant "${DEV_TENANT}" in ${path.join(dataDir, 'secrets.json')} (apiKey)`);
}

export async function runUp(o: UpOptions): Promise<void> {
  const dataDir = path.resolve(o.dataDir);
  let redisUrl = process.env['REDIS_URL'];
  let localRedis: LocalRedis | undefined;
  if (!redisUrl) {
    if (!findRedisServer()) {
      throw new Error(
        'no Redis: set REDIS_URL to a running Redis, or install redis-server (e.g. `sudo apt-get install -y redis-server`, `brew install redis`) and run again',
      );
    }
    localRedis = await startRedis({ dir: path.join(dataDir, 'redis'), detached: true });
    redisUrl = localRedis.url;
    console.error(`[up] private redis-server on ${redisUrl} (append-only file in ${path.join(dataDir, 'redis')})`);
  } else {
    console.error(`[up] using Redis at ${redisUrl}`);
  }
  // Closed by default: the admin token and the cluster secret are generated
  // on the first start and reused later; every role gets them.
  let secretsNote: string;
  let env: NodeJS.ProcessEnv;
  if (o.insecure) {
    env = { ...process.env, REDIS_URL: redisUrl, KV_INSECURE: '1', KV_ADMIN_TOKEN: '', KV_CLUSTER_SECRET: '' };
    secretsNote = '  security OFF (--insecure): the admin API and the shard ports accept anyone on this machine';
    console.error('[up] WARNING: --insecure: no admin token and no cluster secret; for local development only');
  } else {
    const s = loadOrCreateSecrets(dataDir);
    if (s.created) console.error(`[up] generated an admin token and a cluster secret in ${s.file} (mode 0600)`);
    if (s.repaired) console.error(`[up] ${s.file} was readable by others (mode ${s.repaired}); it is private (0600) again`);
    env = { ...process.env, REDIS_URL: redisUrl, KV_ADMIN_TOKEN: s.secrets.adminToken, KV_CLUSTER_SECRET: s.secrets.clusterSecret };
    delete env['KV_INSECURE'];
    secretsNote = `  secrets  ${s.file} (admin token and cluster secret; \`kv\` commands run here use them)`;
  }

  const shards: Child[] = [];
  let router: Child | undefined;
  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    console.error('[up] stopping: router, then shards, then Redis');
    if (router) await router.stop(ROUTER_STOP_MS);
    await Promise.all(shards.map((c) => c.stop(SHARD_STOP_MS)));
    if (localRedis) await localRedis.stop();
    try {
      unlinkSync(path.join(dataDir, LOCAL_FILE));
    } catch {
      /* never written */
    }
    process.exit(code);
  };
  process.on('SIGINT', () => {
    void stopAll(0);
  });
  process.on('SIGTERM', () => {
    void stopAll(0);
  });

  const info: Record<string, unknown>[] = [];
  try {
    // First start: s1..sN. Later starts: whatever the ring holds now (shards
    // added or removed since keep their place).
    const redis = createRedis({ redisUrl, redisCommandTimeoutMs: 2000 });
    try {
      const store = new TopologyStore(redis, defaultRedisPrefix());
      const current = await store.get();
      const ids = current.shards.length > 0 ? current.shards.map((s) => s.id) : Array.from({ length: o.shards }, (_, i) => `s${i + 1}`);
      const started = ids.map((id) => {
        // sK keeps the fixed ports base+K and base+100+K; other ids take free ports.
        const n = /^s(\d{1,2})$/.exec(id);
        const ports = n ? ['--data-port', String(o.shardBasePort + Number(n[1])), '--admin-port', String(o.shardBasePort + 100 + Number(n[1]))] : [];
        const s = spawnKv(['shard', 'start', '--id', id, '--data-dir', path.join(dataDir, id), ...ports], id, env);
        shards.push(s);
        return s.ready(READY_TIMEOUT_MS);
      });
      info.push(...(await Promise.all(started)));
      const t = await initTopology(store, ids, { waitMs: 5000 });
      console.error(`[up] topology epoch ${t.epoch}: ${t.shards.map((s) => s.id).join(', ')}`);
      if (!o.insecure) await ensureDevApiKey(new IdentityStore(redis, defaultRedisPrefix()), dataDir);
    } finally {
      redis.disconnect();
    }

    router = spawnKv(['router', 'start', '--port', String(o.port), ...(o.workers ? ['--workers', String(o.workers)] : [])], 'router', env);
    const ready = await router.ready(READY_TIMEOUT_MS);
    for (const c of [...shards, router])
      void c.exited().then(({ code, signal }) => {
        if (!stopping) console.error(`[up] a process exited (code ${code}, signal ${signal})`);
      });

    const base = `http://127.0.0.1:${String(ready['port'])}`;
    const auth = o.insecure ? '' : ' -H "authorization: Bearer $KEY"';
    // Let other `kv` commands run from this directory find this system.
    writeFileSync(path.join(dataDir, LOCAL_FILE), JSON.stringify({ redisUrl, routerUrl: base, pid: process.pid }, null, 2) + '\n');
    console.log(`
shardkv is up.
  router   ${base}  (${(ready['workers'] as number[]).length} workers, primary pid ${router.pid})
  dashboard ${base}/dashboard  ${o.insecure ? '(its actions need no token: --insecure)' : '(for its actions, paste adminToken from secrets.json)'}
  shards   ${info.map((s) => `${String(s['id'])} http://${String(s['adminAddr'])}`).join('   ')}
  redis    ${redisUrl}
  data     ${dataDir}
${secretsNote}

Try it${o.insecure ? '' : ` (the data API takes the API key of the tenant "${DEV_TENANT}"; kv commands run here find it)`}:
${
  o.insecure
    ? ''
    : `  KEY=$(node -p "require('${path.join(dataDir, 'secrets.json')}').apiKey")
`
}  curl -X PUT --data-binary 'hello' -H 'content-type: text/plain'${auth} ${base}/v1/kv/greeting
  curl -i${auth} ${base}/v1/kv/greeting
  curl -X PUT --data-binary 'soon gone'${auth} '${base}/v1/kv/temp?ttl=30'
  curl${auth} '${base}/v1/kv?prefix=&limit=10'
  curl -X POST -H 'content-type: application/json'${auth} ${base}/v1/kv/_batch -d '{"ops":[{"op":"get","key":"greeting"}]}'
  npx kv put greeting hi && npx kv get greeting
  npx kv shards list          # the admin API: kv commands run here find the admin token
  curl -H "authorization: Bearer $(node -p "require('${path.join(dataDir, 'secrets.json')}').adminToken")" ${base}/v1/admin/shards
  kill -USR2 ${router.pid}    # rolling restart of the router workers, zero downtime

Ctrl-C stops everything; data stays in ${dataDir}.
`);
  } catch (err) {
    console.error(`[up] ${(err as Error).message}`);
    await stopAll(1);
  }
}
