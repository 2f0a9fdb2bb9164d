// What the benchmarks share for their output: medians over rounds, a
// Markdown table (aligned, so it reads in a terminal too) and the results
// files, one JSON and one Markdown of the same run.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { RESULTS_DIR } from './settings.js';

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export const round1 = (x: number) => Math.round(x * 10) / 10;
export const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** What every measured run of a benchmark reports. */
export interface MeasuredRun {
  readonly reqPerSec: number;
  readonly latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly statusCodes: Record<string, number>;
  readonly cpuUsPerReq: Record<string, number>;
  readonly sysUsPerReq: Record<string, number>;
  readonly machineBusyPct: number;
  readonly otherBusyPct: number;
}

/**
 * The rounds of one row: each figure's median (CPU per tier, for the tiers
 * every round measured), errors, timeouts, non2xx and status codes summed.
 */
export function summarizeRuns(rs: readonly MeasuredRun[], tierNames: readonly string[]) {
  const med = (f: (r: MeasuredRun) => number) => median(rs.map(f));
  const perTier = (f: (r: MeasuredRun) => Record<string, number>) => {
    const out: Record<string, number> = {};
    for (const t of tierNames) if (rs.every((r) => f(r)[t] !== undefined)) out[t] = round1(med((r) => f(r)[t]!));
    return out;
  };
  const sum = (f: (r: MeasuredRun) => number) => rs.reduce((a, r) => a + f(r), 0);
  const statusCodes: Record<string, number> = {};
  for (const r of rs) for (const [c, n] of Object.entries(r.statusCodes)) statusCodes[c] = (statusCodes[c] ?? 0) + n;
  return {
    rounds: rs.length,
    reqPerSec: Math.round(med((r) => r.reqPerSec)),
    latencyMs: {
      p50: med((r) => r.latencyMs.p50),
      p90: med((r) => r.latencyMs.p90),
      p99: med((r) => r.latencyMs.p99),
      max: med((r) => r.latencyMs.max),
      mean: med((r) => r.latencyMs.mean),
    },
    errors: sum((r) => r.errors),
    timeouts: sum((r) => r.timeouts),
    non2xx: sum((r) => r.non2xx),
    statusCodes,
    cpuUsPerReq: perTier((r) => r.cpuUsPerReq),
    sysUsPerReq: perTier((r) => r.sysUsPerReq),
    machineBusyPct: round1(med((r) => r.machineBusyPct)),
    otherBusyPct: round1(med((r) => r.otherBusyPct)),
  };
}

/** A GitHub-flavoured Markdown table; the first `textColumns` columns left-aligned, the others (figures) right. */
export function markdownTable(head: readonly string[], rows: ReadonlyArray<readonly string[]>, textColumns = 1): string {
  const widths = head.map((h, i) => Math.max(3, h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (row: readonly string[]) => `| ${row.map((c, i) => (i < textColumns ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  const rule = `|${widths.map((w, i) => (i < textColumns ? ` ${'-'.repeat(w)} ` : ` ${'-'.repeat(w - 1)}: `)).join('|')}|`;
  return [fmt(head), rule, ...rows.map(fmt)].join('\n');
}

/** Write `<name>-<time>.json` and `.md` into the results directory; returns the JSON file's path. */
export function writeResults(name: string, startedAt: Date, json: unknown, markdown: string): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const base = path.join(RESULTS_DIR, `${name}-${startedAt.toISOString().replace(/[:.]/g, '-')}`);
  writeFileSync(`${base}.json`, JSON.stringify(json, null, 2) + '\n');
  writeFileSync(`${base}.md`, markdown.endsWith('\n') ? markdown : markdown + '\n');
  return `${base}.json`;
}
