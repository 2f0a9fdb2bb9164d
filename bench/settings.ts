// What every benchmark shares: settings from the environment, checked once,
// and a description of the machine for the results file.
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CLK_TCK } from './proc.js';

export function envInt(name: string, dflt: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`${name} must be a whole number >= ${min}, got ${JSON.stringify(raw)}`);
  return n;
}

/** Like envInt, but unset stays unset (the component's own default applies). */
export function envIntOptional(name: string, min: number): number | undefined {
  const raw = process.env[name];
  return raw === undefined || raw === '' ? undefined : envInt(name, 0, min);
}

export const envBool = (name: string) => /^(1|true|yes|on)$/i.test(process.env[name] ?? '');

export function machineInfo(): Record<string, unknown> {
  const cpus = os.cpus();
  const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', cwd: path.dirname(fileURLToPath(import.meta.url)) });
  // Changes to the benchmarks themselves do not change what is measured.
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no', '--', ':/', ':(exclude,top)bench'], {
    encoding: 'utf8',
    cwd: path.dirname(fileURLToPath(import.meta.url)),
  });
  return {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cpuCount: cpus.length,
    availableParallelism: os.availableParallelism(),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    totalMemMiB: Math.round(os.totalmem() / 2 ** 20),
    loadAvgAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
    clkTck: CLK_TCK,
    commit: git.status === 0 ? git.stdout.trim() : undefined,
    /** Uncommitted changes outside bench/ at the start of the run. */
    uncommittedChanges: dirty.status === 0 ? dirty.stdout.trim() !== '' : undefined,
  };
}

/** Where results files go: bench/results. */
export const RESULTS_DIR = process.env['BENCH_RESULTS_DIR'] || path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'results');
