// The router's and the shard's /metrics as families, for the tests: the
// strict reader of `kv top` (src/cli/prom-text.ts) does the lines, and this
// adds what an exposition must also get right as a whole: every sample
// belongs to a family its # TYPE declared (a histogram's as _bucket, _sum or
// _count) and a family's samples come together. parse-prometheus-text-format
// folds the series of a labelled histogram into one, so it cannot check the
// router's histograms.
import { parsePromText as readLines, parseValue } from '../../src/cli/prom-text.js';

export interface PromSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface PromFamily {
  readonly name: string;
  readonly type: string;
  readonly samples: PromSample[];
}

const HISTOGRAM_PART = /_(bucket|sum|count)$/;

export function parsePromText(text: string): Map<string, PromFamily> {
  const { samples, types } = readLines(text);
  const families = new Map<string, PromFamily>();
  for (const [name, type] of types) families.set(name, { name, type, samples: [] });
  let current: PromFamily | undefined;
  const done = new Set<string>();
  for (const s of samples) {
    const own = families.get(s.name);
    const histogram = families.get(s.name.replace(HISTOGRAM_PART, ''));
    const family = own && own.type !== 'histogram' ? own : histogram?.type === 'histogram' && histogram !== own ? histogram : undefined;
    if (!family) throw new Error(`sample ${s.name} of no family a # TYPE declared`);
    if (family !== current) {
      if (done.has(family.name)) throw new Error(`samples of ${family.name} are not together`);
      if (current) done.add(current.name);
      current = family;
    }
    family.samples.push(s);
  }
  return families;
}

/** The sum of the samples named `name` whose labels include `match`. */
export function sumOf(families: Map<string, PromFamily>, name: string, match: Record<string, string> = {}): number {
  const family = families.get(name.replace(HISTOGRAM_PART, '')) ?? families.get(name);
  let total = 0;
  for (const s of family?.samples ?? []) {
    if (s.name !== name) continue;
    if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) total += s.value;
  }
  return total;
}

/**
 * Every histogram's series are consistent: cumulative buckets that never
 * decrease, in increasing le order, and +Inf equal to _count. Returns what is wrong.
 */
export function histogramProblems(families: Map<string, PromFamily>): string[] {
  const problems: string[] = [];
  for (const f of families.values()) {
    if (f.type !== 'histogram') continue;
    const series = new Map<string, { buckets: Array<[number, number]>; count?: number }>();
    const keyOf = (labels: Readonly<Record<string, string>>) =>
      JSON.stringify(
        Object.entries(labels)
          .filter(([k]) => k !== 'le')
          .sort(),
      );
    for (const s of f.samples) {
      const k = keyOf(s.labels);
      const e = series.get(k) ?? { buckets: [] };
      series.set(k, e);
      if (s.name.endsWith('_bucket')) e.buckets.push([parseValue(s.labels['le'] ?? '', `le of ${f.name}`), s.value]);
      else if (s.name.endsWith('_count')) e.count = s.value;
    }
    for (const [k, e] of series) {
      for (let i = 1; i < e.buckets.length; i++) {
        if (!(e.buckets[i]![0] > e.buckets[i - 1]![0])) problems.push(`${f.name}${k}: le not increasing`);
        if (e.buckets[i]![1] < e.buckets[i - 1]![1]) problems.push(`${f.name}${k}: bucket le=${e.buckets[i]![0]} below the one before`);
      }
      const inf = e.buckets.at(-1);
      if (!inf || inf[0] !== Infinity) problems.push(`${f.name}${k}: no +Inf bucket`);
      else if (inf[1] !== e.count) problems.push(`${f.name}${k}: +Inf ${inf[1]} != _count ${e.count}`);
    }
  }
  return problems;
}
