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
