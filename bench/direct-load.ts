// A load driver for one benchmark row: KvClient against a running topology,
// in direct mode (straight to the shards) or, for comparison, through the
// routers. It keeps LOAD_CONCURRENCY requests in flight, each a GET or a PUT
// of a LOAD_VALUE_BYTES value on one of LOAD_KEYS keys picked at random, for
// a warm-up and then LOAD_DURATION_S measured seconds, and prints one JSON
// line on stdout at the end:
//
//   {"mode","op","concurrency","durationS","requests","errors","errorCodes",
//    "rps","p50","p99","p999","cpuUs","cpuUsPerReq"}
//
// Latencies are in ms (per request, measured from the call to its answer);
// requests and errors count the measured window only (errorCodes: errors by
// KV_ERR_* code); cpuUs is this process's user+system CPU in that window.
// The driver starts nothing itself: the caller brings up the topology.
//
//   npx tsx bench/direct-load.ts          # (after npm run build) with the env below
//
// Settings: either BENCH_DIRECT_SPEC, the benchmark suite's contract (JSON:
// {routerUrl, clusterSecret, op: "get"|"put", keyPrefix, keys, valueBytes,
// connections (requests in flight), durationS, warmupS}; other fields such
// as redisUrl and adminToken are ignored; the keys are taken as loaded
// already; the mode is direct), or these env variables:
//   KV_URLS             router URLs, comma-separated (required; direct mode reads the topology from them)
//   KV_CLUSTER_SECRET   the cluster secret (required in direct mode)
//   LOAD_MODE           direct (default) | router
//   LOAD_OP             get (default) | put
//   LOAD_CONCURRENCY    requests in flight (64)
//   LOAD_DURATION_S     measured seconds (10)
//   LOAD_WARMUP_S       seconds of load before measuring (1)
//   LOAD_KEYS           keys (10000), named <LOAD_KEY_PREFIX><n, 6 digits at least>
//   LOAD_KEY_PREFIX     key prefix (load-)
//   LOAD_VALUE_BYTES    value size (100)
//   LOAD_PRELOAD        1 (default): write every key once before a GET run; 0: the caller did
//   LOAD_CONNECTIONS    router connections per URL in router mode (LOAD_CONCURRENCY)
import { createHistogram } from 'node:perf_hooks';
import { KvClient, KvError } from '../src/index.js';

/** BENCH_DIRECT_SPEC as LOAD_* settings (the suite's names for the same things). */
function fromSpec(raw: string | undefined): Record<string, string> {
  if (raw === undefined || raw === '') return {};
  const spec = JSON.parse(raw) as Record<string, unknown>;
  const out: Record<string, string> = { LOAD_MODE: 'direct', LOAD_PRELOAD: '0' };
  const map: Record<string, string> = {
    routerUrl: 'KV_URLS',
    clusterSecret: 'KV_CLUSTER_SECRET',
    op: 'LOAD_OP',
    keyPrefix: 'LOAD_KEY_PREFIX',
    keys: 'LOAD_KEYS',
    valueBytes: 'LOAD_VALUE_BYTES',
    connections: 'LOAD_CONCURRENCY',
    durationS: 'LOAD_DURATION_S',
    warmupS: 'LOAD_WARMUP_S',
  };
  for (const [k, env] of Object.entries(map)) if (spec[k] !== undefined) out[env] = String(spec[k]);
  return out;
}
const spec = fromSpec(process.env['BENCH_DIRECT_SPEC']);

function setting(name: string, fallback: string): string {
  return spec[name] ?? (process.env[name] || fallback);
}
function whole(name: string, fallback: number, min: number): number {
  const v = Number(setting(name, String(fallback)));
  if (!Number.isInteger(v) || v < min) throw new Error(`${name} must be a whole number >= ${min}, got ${setting(name, '')}`);
  return v;
}

const urls = setting('KV_URLS', '')
  .split(',')
  .map((u) => u.trim())
  .filter(Boolean);
if (urls.length === 0) throw new Error('KV_URLS is required: the router URLs, comma-separated');
const mode = setting('LOAD_MODE', 'direct');
const op = setting('LOAD_OP', 'get');
if (mode !== 'direct' && mode !== 'router') throw new Error(`LOAD_MODE must be direct or router, got ${mode}`);
if (op !== 'get' && op !== 'put') throw new Error(`LOAD_OP must be get or put, got ${op}`);
const secret = setting('KV_CLUSTER_SECRET', '');
if (mode === 'direct' && secret === '') throw new Error('KV_CLUSTER_SECRET is required in direct mode');
const concurrency = whole('LOAD_CONCURRENCY', 64, 1);
const durationS = whole('LOAD_DURATION_S', 10, 1);
const warmupS = whole('LOAD_WARMUP_S', 1, 0);
const nKeys = whole('LOAD_KEYS', 10_000, 1);
const valueBytes = whole('LOAD_VALUE_BYTES', 100, 0);
const preload = setting('LOAD_PRELOAD', '1') !== '0';
const keyPrefix = setting('LOAD_KEY_PREFIX', 'load-');

const kv = new KvClient({
  urls,
  connections: whole('LOAD_CONNECTIONS', concurrency, 1),
  ...(mode === 'direct' ? { direct: { clusterSecret: secret } } : {}),
});
// The suite's key names: the prefix, then the index with 6 digits at least.
const keys = Array.from({ length: nKeys }, (_, i) => `${keyPrefix}${String(i).padStart(6, '0')}`);
const value = new Uint8Array(valueBytes).fill(0x61);

async function preloadKeys(): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(64, nKeys) }, async () => {
      for (let i = next++; i < nKeys; i = next++) await kv.put(keys[i]!, value);
    }),
  );
}

async function main(): Promise<void> {
  if (op === 'get' && preload) await preloadKeys();
  const hist = createHistogram();
  const codes: Record<string, number> = {};
  let measuring = false;
  let stop = false;
  let requests = 0;
  let errors = 0;
  const one = (): Promise<unknown> => {
    const key = keys[Math.floor(Math.random() * nKeys)]!;
    return op === 'get' ? kv.get(key) : kv.put(key, value);
  };
  const worker = async () => {
    while (!stop) {
      const t0 = process.hrtime.bigint();
      let code: string | undefined;
      try {
        await one();
      } catch (err) {
        code = err instanceof KvError ? err.code : 'untyped';
      }
      if (!measuring) continue;
      requests++;
      if (code !== undefined) {
        errors++;
        codes[code] = (codes[code] ?? 0) + 1;
      } else {
        hist.record(Math.max(1, Number(process.hrtime.bigint() - t0)));
      }
    }
  };
  const running = Promise.all(Array.from({ length: concurrency }, worker));
  await new Promise((r) => setTimeout(r, warmupS * 1000));
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  measuring = true;
  await new Promise((r) => setTimeout(r, durationS * 1000));
  measuring = false;
  const cpu = process.cpuUsage(cpu0);
  const elapsedS = (performance.now() - t0) / 1000;
  stop = true;
  await running;
  await kv.close();
  const ms = (p: number) => (hist.count === 0 ? null : Math.round(hist.percentile(p) / 1e3) / 1e3);
  const cpuUs = cpu.user + cpu.system;
  process.stdout.write(
    `${JSON.stringify({
      mode,
      op,
      concurrency,
      durationS,
      requests,
      errors,
      errorCodes: codes,
      rps: Math.round(requests / elapsedS),
      p50: ms(50),
      p99: ms(99),
      p999: ms(99.9),
      cpuUs,
      cpuUsPerReq: requests === 0 ? null : Math.round((cpuUs / requests) * 10) / 10,
    })}\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`direct-load: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exitCode = 1;
  void kv.close();
});
