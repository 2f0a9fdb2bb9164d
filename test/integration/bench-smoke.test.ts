// A smoke run of the benchmark suite (bench/suite.ts, BENCH_QUICK=1): a few
// rows, about two seconds each, into a temporary results directory. It checks
// that the suite starts every tier, drives it, stops it and writes its JSON,
// Markdown and SVG with sane fields. No figure is compared with a threshold:
// performance is measured by the benchmarks themselves, not by npm test.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { findNginx } from '../../bench/nginx.js';
import { findHaproxy } from '../../bench/haproxy.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dir = mkdtempSync(path.join(os.tmpdir(), 'shardkv-bench-smoke-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// The proxies only where they are installed: the suite must not need them.
const systems = ['router', 'hello', 'shard', ...(findNginx() ? ['nginx'] : []), ...(findHaproxy() ? ['haproxy'] : [])];

interface Row {
  workload: string;
  system: string;
  reqPerSec: number;
  errors: number;
  non2xx: number;
  cpuUsPerReq: Record<string, number>;
  serverUsPerReq: number;
  latencyMs: { p50: number; p99: number };
}

function runSuite(): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench/suite.ts')], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: {
        ...process.env,
        BENCH_QUICK: '1',
        BENCH_DURATION_S: '1',
        BENCH_WARMUP_S: '1',
        BENCH_KEYS: '500',
        BENCH_WORKLOADS: 'get-10k-uniform',
        BENCH_SYSTEMS: systems.join(','),
        BENCH_RESULTS_DIR: dir,
      },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.once('exit', (code) => resolve({ code, stderr }));
  });
}

describe('benchmark suite, quick mode', () => {
  it('runs its rows and writes JSON, Markdown and SVG results', { timeout: 90_000 }, async () => {
    const { code, stderr } = await runSuite();
    expect(code, stderr.slice(-3000)).toBe(0);
    const files = readdirSync(dir);
    const base = files.find((f) => /^suite-.*\.json$/.test(f))?.replace(/\.json$/, '');
    expect(base, files.join(', ')).toBeDefined();
    expect(files).toContain(`${base!}.md`);
    expect(files).toContain(`${base!}.svg`);

    const json = JSON.parse(readFileSync(path.join(dir, `${base!}.json`), 'utf8')) as {
      machine: { cpuCount: number; commit?: string };
      method: string;
      results: Row[];
      targets: Array<{ target: string; status: string }>;
    };
    expect(json.machine.cpuCount).toBeGreaterThan(0);
    expect(json.method).toMatch(/proc/);
    expect(json.results.map((r) => r.system).sort()).toEqual([...systems].sort());
    for (const r of json.results) {
      expect(r.workload).toBe('get-10k-uniform');
      expect(r.reqPerSec, r.system).toBeGreaterThan(0);
      expect(r.errors + r.non2xx, r.system).toBe(0);
      expect(r.cpuUsPerReq['loadgen'], r.system).toBeGreaterThan(0);
      expect(r.serverUsPerReq, r.system).toBeGreaterThan(0);
    }
    const router = json.results.find((r) => r.system === 'router')!;
    expect(Object.keys(router.cpuUsPerReq)).toEqual(expect.arrayContaining(['router', 'rt-pri', 'shards', 'redis', 'loadgen']));
    expect(json.results.find((r) => r.system === 'hello')!.cpuUsPerReq['peer']).toBeGreaterThan(0);
    // Every target is in the table, met or not (or n/a when a peer is missing).
    expect(json.targets.length).toBeGreaterThanOrEqual(6);
    for (const t of json.targets) expect(['met', 'not met', 'n/a']).toContain(t.status);

    const md = readFileSync(path.join(dir, `${base!}.md`), 'utf8');
    expect(md).toContain('## Targets');
    expect(md).toContain('## get-10k-uniform');
    const svg = readFileSync(path.join(dir, `${base!}.svg`), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    for (const s of systems) expect(svg).toContain(`>${s}</text>`);
  });
});
