// The suite's load generator: autocannon in a process of its own, so its CPU
// is a tier of its own and never shares an event loop with what it measures.
// bench/suite.ts forks it and sends {type:'spec', spec} over IPC (a key list
// can be far larger than an environment variable may be); it builds its key
// sequence, says {type:'ready'}, then answers every {type:'run', durationS}
// with {type:'done', result}.
//
// Keys: `count` keys named <prefix><6 digits>, drawn uniformly or from a
// zipfian distribution (s = 0.99, as YCSB's default), its ranks scrambled over
// the key space so the hot keys do not all sit on one shard. The draws are
// made once into a ring of 2^20 indices, so a request costs an array read and
// a string concatenation, not a sample.
import autocannon from 'autocannon';

export interface LoadSpec {
  readonly url: string;
  readonly connections: number;
  readonly headers: Record<string, string>;
  /** Path of a key: pathPrefix + encodeURIComponent(key). */
  readonly pathPrefix: string;
  readonly keyPrefix: string;
  readonly keys: number;
  /** Only these key indices (e.g. the keys one shard owns): index i of the draw is keyIndices[i], keys = its length. */
  readonly keyIndices?: readonly number[];
  readonly distribution: 'uniform' | 'zipf';
  /** get, put, mix (one put in every `writeEvery`), batch (POST of `batchKeys` gets to batchPath). */
  readonly op: 'get' | 'put' | 'mix' | 'batch';
  readonly valueBytes: number;
  readonly writeEvery?: number;
  /** Writes carry `x-kv-ttl: <s>` (the session workload); a header, not ?ttl=, since nginx hashes the whole $request_uri. */
  readonly ttlS?: number;
  readonly batchKeys?: number;
  readonly batchPath?: string;
}

const SEQ = 1 << 20;
const ZIPF_S = 0.99;

/** Key indices in request order: uniform or zipfian (scrambled). */
export function keySequence(n: number, dist: 'uniform' | 'zipf', random: () => number = Math.random): Int32Array {
  const seq = new Int32Array(SEQ);
  if (dist === 'uniform') {
    for (let i = 0; i < SEQ; i++) seq[i] = Math.floor(random() * n);
    return seq;
  }
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let k = 0; k < n; k++) cdf[k] = sum += 1 / Math.pow(k + 1, ZIPF_S);
  // A multiplier coprime to n spreads rank k over the key space.
  let mul = 2_654_435_761 % n || 1;
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  while (gcd(mul, n) !== 1) mul++;
  for (let i = 0; i < SEQ; i++) {
    const u = random() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    // lo and mul are below n (at most a few million): the product is exact in a double.
    seq[i] = (lo * mul) % n;
  }
  return seq;
}

export const keyName = (prefix: string, i: number) => `${prefix}${String(i).padStart(6, '0')}`;

/** The value bytes every writer in the suite uses: printable ASCII, so the same bytes work as a JSON string. */
export function benchValue(bytes: number): Buffer {
  return Buffer.from(Array.from({ length: bytes }, (_, i) => 0x21 + ((i * 7) % 94)).map((c) => (c === 0x22 || c === 0x5c ? 0x2e : c)));
}

function requestSpec(spec: LoadSpec): autocannon.RequestSpec {
  const seq = keySequence(spec.keyIndices?.length ?? spec.keys, spec.distribution);
  const value = benchValue(spec.valueBytes);
  const writeEvery = spec.writeEvery ?? 10;
  const idx = spec.keyIndices;
  const nameOf = (i: number) => keyName(spec.keyPrefix, idx ? idx[i]! : i);
  const pathOf = (i: number) => `${spec.pathPrefix}${encodeURIComponent(nameOf(i))}`;
  const putHeaders = { ...spec.headers, 'content-type': 'application/octet-stream', ...(spec.ttlS ? { 'x-kv-ttl': String(spec.ttlS) } : {}) };
  const jsonHeaders = { ...spec.headers, 'content-type': 'application/json' };
  const EMPTY = Buffer.alloc(0);
  let n = 0;
  const next = () => seq[n++ & (SEQ - 1)]!;
  return {
    method: 'GET',
    headers: spec.headers,
    setupRequest: (req) => {
      const count = n;
      if (spec.op === 'batch') {
        const ops = Array.from({ length: spec.batchKeys ?? 16 }, () => ({ op: 'get', key: nameOf(next()) }));
        return { ...req, method: 'POST', path: spec.batchPath!, headers: jsonHeaders, body: JSON.stringify({ ops }) };
      }
      const i = next();
      const write = spec.op === 'put' || (spec.op === 'mix' && count % writeEvery === 0);
      if (write) return { ...req, method: 'PUT', path: pathOf(i), headers: putHeaders, body: value };
      return { ...req, method: 'GET', path: pathOf(i), headers: spec.headers, body: EMPTY };
    },
  };
}

function main(): void {
  let spec: LoadSpec | undefined;
  let request: autocannon.RequestSpec | undefined;
  const send = (m: unknown) => process.send!(m);
  let current: autocannon.Instance | undefined;
  process.on('message', (m: { type: string; durationS?: number; spec?: LoadSpec }) => {
    if (m.type === 'spec') {
      spec = m.spec!;
      request = requestSpec(spec);
      send({ type: 'ready', pid: process.pid });
      return;
    }
    if (m.type === 'stop') {
      current?.stop();
      return;
    }
    if (m.type !== 'run' || !spec || !request) return;
    current = autocannon({ url: spec.url, connections: spec.connections, duration: m.durationS!, timeout: 10, requests: [request] });
    current.then(
      (r) => {
        const statusCodes: Record<string, number> = {};
        for (const [code, s] of Object.entries(r.statusCodeStats ?? {})) statusCodes[code] = s.count;
        send({
          type: 'done',
          result: {
            requests: r.requests.total,
            durationS: r.duration,
            errors: r.errors,
            timeouts: r.timeouts,
            non2xx: r.non2xx,
            statusCodes,
            latencyMs: {
              p50: r.latency.p50,
              p90: r.latency.p90,
              p99: r.latency.p99,
              p999: r.latency['p99_9'] ?? r.latency.max,
              max: r.latency.max,
              mean: r.latency.mean,
            },
          },
        });
      },
      (err: Error) => send({ type: 'failed', message: err.message }),
    );
  });
  process.on('disconnect', () => process.exit(0));
}

if (process.send) main();
