// Redis itself as the reference of a single-node in-memory store: its own
// load generator, redis-benchmark, against a private redis-server (not the
// topology's), GET and SET of 100-byte values over random keys, 64 clients,
// no pipelining (-P 1), the CPU of redis-server per request read from /proc.
import { spawn, spawnSync } from 'node:child_process';
import { startRedis } from '../src/local/redis-server.js';
import type { Cleanup } from './topology.js';
import { US_PER_TICK, readStat } from './proc.js';

export function findRedisBenchmark(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v redis-benchmark'], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p ? p : undefined;
}

export interface RedisBenchResult {
  readonly requests: number;
  readonly durationS: number;
  readonly reqPerSec: number;
  readonly latencyMs: { p50: number; p99: number; p999: number | null; max: number };
  /** redis-server's CPU over the run, and redis-benchmark's (the load generator). */
  readonly serverCpuUs: number;
  readonly loadgenCpuUs: number;
  readonly command: string;
}

export interface RedisPeer {
  readonly pid: number;
  readonly version: string;
  run(test: 'get' | 'set', requests: number): Promise<RedisBenchResult>;
}

/** Seconds from one `times` line field, e.g. 0m1.230000s. */
const secs = (f: string) => {
  const m = /^(\d+)m([\d.]+)s$/.exec(f);
  return m ? Number(m[1]) * 60 + Number(m[2]) : 0;
};

export async function startRedisPeer(bin: string, o: { connections: number; valueBytes: number; keys: number }, cleanup: Cleanup): Promise<RedisPeer> {
  const redis = await startRedis({ detached: true });
  cleanup.track(redis.process);
  cleanup.add('redis (redis-benchmark row)', () => redis.stop());
  const pid = redis.process.pid!;
  const version = spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout.trim();
  return {
    pid,
    version,
    async run(test, requests) {
      const args = [
        '-h',
        '127.0.0.1',
        '-p',
        String(redis.port),
        '-c',
        String(o.connections),
        '-P',
        '1',
        '-d',
        String(o.valueBytes),
        '-r',
        String(o.keys),
        '-n',
        String(requests),
        '-t',
        test,
        '--csv',
      ];
      const command = `redis-benchmark ${args.join(' ')}`;
      const before = readStat(pid);
      const t0 = process.hrtime.bigint();
      // `times` after the run prints the CPU of the shell's finished children: redis-benchmark's own.
      const out = await new Promise<string>((resolve, reject) => {
        const sh = spawn('sh', ['-c', `"$0" "$@" && times`, bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
        let text = '';
        let err = '';
        sh.stdout.on('data', (d: Buffer) => (text += d.toString('utf8')));
        sh.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
        sh.once('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`${command}: exit ${code}: ${err.slice(0, 300)}`))));
      });
      const durationS = Number(process.hrtime.bigint() - t0) / 1e9;
      const after = readStat(pid);
      const lines = out.trim().split('\n');
      // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
      const row = lines.find((l) => /^"(GET|SET)"/.test(l));
      if (!row) throw new Error(`${command}: no result line in ${JSON.stringify(out.slice(0, 300))}`);
      const f = row.split(',').map((x) => Number(x.replace(/"/g, '')));
      const children = (lines.at(-1) ?? '').trim().split(/\s+/);
      return {
        requests,
        durationS,
        reqPerSec: Math.round(f[1]!),
        latencyMs: { p50: f[4]!, p99: f[6]!, p999: null, max: f[7]! },
        serverCpuUs: before && after ? (after.ticks - before.ticks) * US_PER_TICK : 0,
        loadgenCpuUs: (secs(children[0] ?? '') + secs(children[1] ?? '')) * 1e6,
        command,
      };
    },
  };
}
