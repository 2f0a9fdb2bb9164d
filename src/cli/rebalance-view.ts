// What `kv shards` and `kv rebalance` print: the plan of a change, the shard
// list, and a rebalance followed live with one progress bar per stream.
import { setTimeout as sleep } from 'node:timers/promises';
import cliProgress from 'cli-progress';
import type { AdminShards, JobPacing, RouterClient, StatusView } from './router-client.js';

const mb = (n: number) => (n / 1024 / 1024).toFixed(1);
export const fmtSecs = (s: number | null) =>
  s === null ? '?' : s < 10 ? `${s.toFixed(1)}s` : s < 60 ? `${s.toFixed(0)}s` : `${Math.floor(s / 60)}m${Math.round(s % 60)}s`;

/** The pacing of a job in a few words: "adaptive 45000 keys/s (increase), fg p99 3.1 ms / baseline 2.0 ms = 1.55x". */
export function fmtPacing(p: JobPacing | undefined): string {
  if (!p) return '';
  const limit = p.keysPerSec === null ? 'no limit' : `${Math.round(p.keysPerSec)} keys/s`;
  if (p.mode === 'fixed') return `pace: fixed, ${limit}`;
  const fg =
    p.fgP99Ms === null
      ? 'no foreground'
      : `fg p99 ${p.fgP99Ms.toFixed(1)} ms / baseline ${p.baselineP99Ms === null ? '?' : `${p.baselineP99Ms.toFixed(1)} ms`}`;
  return `pace: adaptive, ${limit}${p.phase ? ` (${p.phase})` : ''}, ${fg}${p.ratio !== null ? ` = ${p.ratio.toFixed(2)}x` : ''}`;
}

export function printPlan(plan: Record<string, unknown>): void {
  const p = plan as {
    kind: string;
    shard: string;
    sharesBefore: Record<string, number>;
    sharesAfter: Record<string, number>;
    streams: Array<{ source: string; target: string; arcs: number; keys: number; bytes: number }>;
    keysToMove: number;
    bytesToMove: number;
  };
  console.log(`plan: ${p.kind} ${p.shard}`);
  const ids = [...new Set([...Object.keys(p.sharesBefore), ...Object.keys(p.sharesAfter)])].sort();
  for (const id of ids) {
    const b = ((p.sharesBefore[id] ?? 0) * 100).toFixed(1);
    const a = ((p.sharesAfter[id] ?? 0) * 100).toFixed(1);
    console.log(`  ${id.padEnd(10)} ring share ${b.padStart(5)}% -> ${a.padStart(5)}%`);
  }
  for (const s of p.streams) console.log(`  stream ${s.source} -> ${s.target}: ${s.arcs} arcs, ~${s.keys} keys, ~${mb(s.bytes)} MB`);
  console.log(`  total: ~${p.keysToMove} keys, ~${mb(p.bytesToMove)} MB to move`);
}

/** Follow the active job until it ends; returns the final status. */
export async function watch(client: RouterClient, opts: { intervalMs?: number; quiet?: boolean } = {}): Promise<StatusView> {
  const tty = process.stderr.isTTY === true && !opts.quiet;
  const bars = new cliProgress.MultiBar(
    {
      format: ' {stream} |{bar}| {percentage}% {value}/{total} keys | {mb} MB | {rate} keys/s | ETA {left} | {pace} {note}',
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      noTTYOutput: !tty && !opts.quiet,
      notTTYSchedule: 2000,
      stream: process.stderr,
    },
    cliProgress.Presets.shades_classic,
  );
  const byStream = new Map<string, cliProgress.SingleBar>();
  let last: StatusView;
  let lastState = '';
  const started = Date.now();
  try {
    for (;;) {
      last = await client.status();
      const job = last.job;
      if (!job) break;
      if (job.state !== lastState) {
        if (!opts.quiet) bars.log(`job ${job.id.slice(0, 8)} (${job.kind} ${job.shardId}${job.direction === 'reverse' ? ', cancelling' : ''}): ${job.state}\n`);
        lastState = job.state;
      }
      if (job.direction === 'reverse' && [...byStream.keys()].some((k) => !k.startsWith('rev:'))) {
        for (const b of byStream.values()) bars.remove(b);
        byStream.clear();
      }
      for (const s of job.streams) {
        const key = `${job.direction === 'reverse' ? 'rev:' : ''}${s.source}->${s.target}`;
        let bar = byStream.get(key);
        const rate = last.progress?.keysPerSec ?? 0;
        const eta = s.done ? '0s' : rate > 0 ? fmtSecs(Math.max(0, s.keysTotal - s.keysDone) / rate) : '?';
        const payload = {
          stream: `${s.source} -> ${s.target}`.padEnd(12),
          mb: mb(s.bytesDone),
          rate: '0',
          left: eta,
          pace: fmtPacing(job.pacing),
          note: s.lastError
            ? `(retrying: ${s.lastError.slice(0, 60)})`
            : job.state === 'purging' || s.purged
              ? `purged ${s.keysPurged ?? 0}${s.purged ? ' (done)' : ''}`
              : '',
        };
        if (!bar && !opts.quiet) {
          bar = bars.create(Math.max(1, s.keysTotal), s.keysDone, payload);
          byStream.set(key, bar);
        }
        if (bar) {
          const secs = s.done ? 1 : Math.max(0.001, (Date.now() - started) / 1000);
          const total = Math.max(1, s.keysTotal, s.keysDone);
          bar.setTotal(total);
          // A finished stream shows full even when it had nothing to move.
          bar.update(s.done ? total : s.keysDone, { ...payload, rate: s.done ? '-' : String(Math.round(rate || s.keysDone / secs)) });
        }
      }
      if (['done', 'cancelled', 'failed'].includes(job.state)) break;
      await sleep(opts.intervalMs ?? 250);
    }
  } finally {
    bars.stop();
  }
  const job = last.job;
  if (job && !opts.quiet) {
    const p = last.progress!;
    const secs = job.startedAt ? ((job.finishedAt ?? Date.now()) - job.startedAt) / 1000 : 0;
    console.log(
      `${job.state}: ${job.kind} ${job.shardId}; moved ${p.keysDone} keys (${mb(p.bytesDone)} MB) in ${fmtSecs(secs)}, ` +
        `${Math.round(p.keysPerSec)} keys/s; purged ${p.keysPurged ?? 0} records from the sources; foreground errors (5xx) during the job: ${last.foregroundErrors ?? 0}${job.pacing ? `; last ${fmtPacing(job.pacing)}` : ''}${job.error ? `; error: ${job.error}` : ''}`,
    );
  }
  return last;
}

export async function listShards(client: RouterClient): Promise<void> {
  const { body } = await client.call<AdminShards>('GET', '/v1/admin/shards');
  console.log(`epoch ${body.epoch}${body.migration ? ` (migration ${body.migration.jobId.slice(0, 8)} running)` : ''}`);
  console.log(
    `  ${'id'.padEnd(10)} ${'state'.padEnd(10)} ${'weight'.padEnd(7)} ${'share'.padStart(7)} ${'records'.padStart(10)} ${'MB'.padStart(8)}  data address`,
  );
  for (const s of body.shards) {
    console.log(
      `  ${s.id.padEnd(10)} ${s.state.padEnd(10)} ${String(s.weight ?? '-').padEnd(7)} ${(s.share * 100).toFixed(1).padStart(6)}% ${String(s.keys ?? '?').padStart(10)} ${(s.bytes === null ? '?' : mb(s.bytes)).padStart(8)}  ${s.dataAddr}${s.registered ? '' : '  (not registered: down?)'}`,
    );
  }
}
