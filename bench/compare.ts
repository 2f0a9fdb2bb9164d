// Before/after comparison of two builds: router GET (by default) of build A
// and build B measured in one run, alternating them over several rounds so
// that drift of a shared machine hits both alike.
//
//   BENCH_COMPARE_A=../old/dist/src/cli/kv.js BENCH_COMPARE_B=dist/cli/kv.js BENCH_ROUNDS=5 npx tsx bench/compare.ts
//
// Method: each round runs bench/http.ts (this checkout's) once per build, in
// alternating order (A B, then B A, ...), as a child process with
// BENCH_KV_BIN set to that build's kv.js, BENCH_TARGETS as given (default
// router-get) and its results in a temporary BENCH_RESULTS_DIR. From each
// run's results file it takes req/s, p99 and CPU µs/request of the router
// workers and of the shards (summed), then prints the median (and min/max)
// per build and the ratio B/A of the medians, and writes a summary with the
// machine info to bench/results/compare-<time>.json (BENCH_RESULTS_DIR to put
// it elsewhere). A build is only a path to its kv.js: an older checkout's may
// live elsewhere (e.g. dist/src/cli/kv.js). Both builds must accept the CLI
// and the Redis topology that this checkout's bench/topology.ts uses. The
// router's dataAuth=false (and the bench's tenantRateLimitPerSec) reach it as
// environment variables (ROUTER_DATA_AUTH, ROUTER_TENANT_RATE_LIMIT_PER_SEC),
// not `--set`: a build older than tenants ignores variables it does not know,
// while it refuses an unknown `--set` key. The rows with credentials
// (router-*-apikey, -session, -cookie) need builds that have tenants; the
// default router-get runs on any.
//
// Settings (env): BENCH_COMPARE_A, BENCH_COMPARE_B (required), BENCH_ROUNDS
// (5), BENCH_TARGETS (router-get; any of bench/http.ts's targets, comma
// separated), BENCH_VERBOSE (0: echo only warnings and errors of the runs).
// Everything else is passed on to bench/http.ts as it is (BENCH_DURATION_S,
// BENCH_WARMUP_S, BENCH_KEYS, BENCH_CONNECTIONS, ROUTER_WORKERS, ...). A run
// of bench/http.ts takes its start-up and preload plus (warm-up + duration)
// per target, so five rounds at the defaults take about five minutes.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Child } from '../src/local/child.js';
import { Cleanup, runBench } from './topology.js';
import { envInt, envBool, machineInfo, RESULTS_DIR } from './settings.js';

const BUILDS = ['A', 'B'] as const;
type Build = (typeof BUILDS)[number];

const HTTP_BENCH = fileURLToPath(new URL('./http.ts', import.meta.url));

/** A build's kv.js: the path as given, and resolved. */
function kvBin(build: Build): { given: string; file: string } {
  const name = `BENCH_COMPARE_${build}`;
  const given = process.env[name];
  if (!given) throw new Error(`${name} must be the path of a build's kv.js (e.g. dist/cli/kv.js)`);
  const file = path.resolve(given);
  if (!existsSync(file)) throw new Error(`${name}: no such file: ${given}`);
  return { given, file };
}

const settings = {
  rounds: envInt('BENCH_ROUNDS', 5, 1),
  targets: process.env['BENCH_TARGETS'] || 'router-get',
  kvBin: { A: kvBin('A'), B: kvBin('B') } as Record<Build, { given: string; file: string }>,
};
const verbose = envBool('BENCH_VERBOSE');
const log = (msg: string) => process.stderr.write(`[compare] ${msg}\n`);

/** The figures taken from one target of one run. */
interface Figures {
  readonly reqPerSec: number;
  readonly p99Ms: number;
  readonly routerWorkersUsPerReq: number;
  /** All shards summed. */
  readonly shardsUsPerReq: number;
  /** Busy time of the machine no process of the benchmark accounts for. */
  readonly otherBusyPct: number;
  /** Errors, timeouts and non-2xx answers. */
  readonly failed: number;
}

const METRICS: ReadonlyArray<{ key: keyof Figures; label: string; digits: number }> = [
  { key: 'reqPerSec', label: 'req/s', digits: 0 },
  { key: 'p99Ms', label: 'p99 ms', digits: 1 },
  { key: 'routerWorkersUsPerReq', label: 'router workers µs/req', digits: 1 },
  { key: 'shardsUsPerReq', label: 'shards µs/req', digits: 1 },
  { key: 'otherBusyPct', label: 'other busy %', digits: 1 },
];

/** The parts of bench/http.ts's results file that are read here. */
interface HttpResults {
  readonly startedAt: string;
  readonly machine: { loadAvgAtStart?: number[] };
  readonly settings: Record<string, unknown>;
  readonly topology: { shards: string[] };
  readonly results: ReadonlyArray<{
    target: string;
    reqPerSec: number;
    latencyMs: { p99: number };
    cpuUsPerReq: Record<string, number>;
    otherBusyPct: number;
    errors: number;
    timeouts: number;
    non2xx: number;
  }>;
}

interface Run {
  readonly round: number;
  readonly build: Build;
  readonly startedAt: string;
  readonly loadAvgAtStart: number[] | undefined;
  readonly figures: Record<string, Figures>;
  /** bench/http.ts's own result entries, as written. */
  readonly results: HttpResults['results'];
  readonly benchSettings: Record<string, unknown>;
}

let current: Child | undefined;
let aborted = false;

function figuresOf(r: HttpResults): Record<string, Figures> {
  const out: Record<string, Figures> = {};
  for (const t of r.results) {
    out[t.target] = {
      reqPerSec: t.reqPerSec,
      p99Ms: t.latencyMs.p99,
      routerWorkersUsPerReq: t.cpuUsPerReq['router-workers'] ?? 0,
      shardsUsPerReq: Math.round(r.topology.shards.reduce((n, s) => n + (t.cpuUsPerReq[s] ?? 0), 0) * 10) / 10,
      otherBusyPct: t.otherBusyPct,
      failed: t.errors + t.timeouts + t.non2xx,
    };
  }
  return out;
}

/** One run of bench/http.ts against one build; resolves with what its results file says. */
async function runOnce(build: Build, round: number, tmp: string): Promise<Run> {
  const resultsDir = path.join(tmp, `round${round}-${build}`);
  mkdirSync(resultsDir, { recursive: true });
  const tag = `[${build} r${round}]`;
  const child = new Child(HTTP_BENCH, [], {
    nodeArgs: ['--import', import.meta.resolve('tsx')],
    // One round per run: the alternation over builds is this script's; BENCH_ROUNDS is its own round count.
    env: { ...process.env, BENCH_KV_BIN: settings.kvBin[build].file, BENCH_TARGETS: settings.targets, BENCH_RESULTS_DIR: resultsDir, BENCH_ROUNDS: '1' },
    // Own process group: a Ctrl-C reaches only this process, which then stops the run in order.
    detached: true,
    onLine: (line) => {
      if (verbose || /error|warn|fail/i.test(line)) process.stderr.write(`${tag} ${line}\n`);
    },
  });
  current = child;
  const status = await child.exited();
  current = undefined;
  if (status.code !== 0) {
    throw new Error(`${tag} bench/http.ts exited (code ${status.code}, signal ${status.signal}); its last output:\n${child.tail}`);
  }
  const files = readdirSync(resultsDir).filter((f) => /^http-.*\.json$/.test(f));
  if (files.length !== 1) throw new Error(`${tag} expected one results file in ${resultsDir}, found ${files.length}`);
  const r = JSON.parse(readFileSync(path.join(resultsDir, files[0]!), 'utf8')) as HttpResults;
  return {
    round,
    build,
    startedAt: r.startedAt,
    loadAvgAtStart: r.machine.loadAvgAtStart,
    figures: figuresOf(r),
    results: r.results,
    benchSettings: r.settings,
  };
}

interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

function spread(xs: readonly number[]): Spread {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]!, n: s.length };
}

type Summary = Record<string, Record<string, { A: Spread; B: Spread; ratioBA: number | null }>>;

function summarize(runs: readonly Run[]): Summary {
  const out: Summary = {};
  const targets = [...new Set(runs.flatMap((r) => Object.keys(r.figures)))];
  for (const target of targets) {
    const perMetric: Summary[string] = {};
    for (const m of [...METRICS.map((x) => x.key), 'failed' as const]) {
      const of = (b: Build) => spread(runs.filter((r) => r.build === b && r.figures[target]).map((r) => r.figures[target]![m]));
      const A = of('A');
      const B = of('B');
      perMetric[m] = { A, B, ratioBA: A.median !== 0 ? Math.round((B.median / A.median) * 1000) / 1000 : null };
    }
    out[target] = perMetric;
  }
  return out;
}

function fmtTable(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (row: string[]) => row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [fmt(head), fmt(widths.map((w) => '-'.repeat(w))), ...rows.map(fmt)].join('\n');
}

function printSummary(summary: Summary): void {
  for (const [target, perMetric] of Object.entries(summary)) {
    const n = perMetric['reqPerSec']!;
    const failed = perMetric['failed']!;
    console.log(
      `\n${target}: median (min–max) over ${n.A.n} runs of A and ${n.B.n} of B; most failed requests in one run: A ${failed.A.max}, B ${failed.B.max}\n`,
    );
    const cell = (s: Spread, d: number) => `${s.median.toFixed(d)} (${s.min.toFixed(d)}–${s.max.toFixed(d)})`;
    console.log(
      fmtTable(
        ['metric', 'A', 'B', 'B/A'],
        METRICS.map((m) => {
          const x = perMetric[m.key]!;
          return [m.label, cell(x.A, m.digits), cell(x.B, m.digits), x.ratioBA === null ? '-' : x.ratioBA.toFixed(3)];
        }),
      ),
    );
  }
}

/** The build as given, and the commit of the checkout it lives in (if it is one). */
function buildInfo(bin: { given: string; file: string }): { kvBin: string; checkoutCommit: string | undefined; uncommittedChanges: boolean | undefined } {
  const cwd = path.dirname(bin.file);
  const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', cwd });
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', cwd });
  return {
    kvBin: bin.given,
    checkoutCommit: git.status === 0 ? git.stdout.trim() : undefined,
    uncommittedChanges: dirty.status === 0 ? dirty.stdout.trim() !== '' : undefined,
  };
}

async function main(cleanup: Cleanup): Promise<void> {
  const startedAt = new Date();
  const machine = machineInfo();
  const builds = { A: buildInfo(settings.kvBin.A), B: buildInfo(settings.kvBin.B) };
  for (const b of BUILDS) {
    const i = builds[b];
    log(`${b}: ${i.kvBin}${i.checkoutCommit ? ` (checkout at ${i.checkoutCommit}${i.uncommittedChanges ? ', with uncommitted changes' : ''})` : ''}`);
  }
  if (settings.kvBin.A.file === settings.kvBin.B.file) log('A and B are the same build: the ratios show the noise of this machine');
  log(`${String(machine['cpuCount'])} x ${String(machine['cpuModel'])}, node ${process.version}; targets ${settings.targets}, rounds: ${settings.rounds}`);

  const tmp = mkdtempSync(path.join(os.tmpdir(), 'shardkv-compare-'));
  cleanup.add('run results', () => rmSync(tmp, { recursive: true, force: true }));
  // On a signal: one SIGTERM, and the run stops its own processes in order.
  cleanup.add('benchmark run', () => current?.stop(120_000));
  // Last resort (process 'exit'): ask the run to stop rather than kill it, so
  // that it can still stop the processes it started.
  cleanup.track({ kill: () => current?.kill('SIGTERM') });

  const runs: Run[] = [];
  for (let round = 1; round <= settings.rounds; round++) {
    const order: Build[] = round % 2 === 1 ? ['A', 'B'] : ['B', 'A'];
    for (const build of order) {
      if (aborted) throw new Error('aborted');
      log(`round ${round}/${settings.rounds}: ${build}`);
      const run = await runOnce(build, round, tmp);
      runs.push(run);
      for (const [target, f] of Object.entries(run.figures)) {
        log(
          `  ${target}: ${f.reqPerSec} req/s, p99 ${f.p99Ms} ms, router workers ${f.routerWorkersUsPerReq} µs/req, shards ${f.shardsUsPerReq} µs/req, other busy ${f.otherBusyPct}%${f.failed ? `, ${f.failed} failed` : ''}`,
        );
      }
    }
  }

  const summary = summarize(runs);
  console.log(`\nA: ${builds.A.kvBin}\nB: ${builds.B.kvBin}`);
  printSummary(summary);

  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `compare-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      {
        benchmark: 'compare',
        startedAt: startedAt.toISOString(),
        finishedAt: new Date().toISOString(),
        machine,
        settings: { rounds: settings.rounds, targets: settings.targets, order: 'A B in odd rounds, B A in even rounds' },
        builds,
        /** bench/http.ts's settings, from its first run (the same for every run). */
        benchSettings: runs[0]?.benchSettings,
        method:
          'Each round runs bench/http.ts once per build, in alternating order, each run with its own topology. Figures per run come from its results file; the summary gives the median, min and max over the runs of each build and the ratio B/A of the medians. shardsUsPerReq sums the CPU µs per request of all shards.',
        summary,
        runs: runs.map(({ benchSettings: _settings, ...r }) => r),
      },
      null,
      2,
    ) + '\n',
  );
  console.log(`\nresults: ${path.relative(process.cwd(), file) || file}`);
}

runBench(
  main,
  () => {
    aborted = true;
  },
  log,
);
