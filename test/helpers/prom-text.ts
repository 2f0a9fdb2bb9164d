// A strict reader of the Prometheus text format (version 0.0.4) for the
// tests: every line is a # HELP, a # TYPE or a sample of the family the last
// TYPE named (with _bucket, _sum and _count for a histogram); label values
// are unescaped; anything else throws. parse-prometheus-text-format folds
// the series of a labelled histogram into one, so it cannot check the
// router's histograms.
export interface PromSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface PromFamily {
  readonly name: string;
  readonly type: string;
  readonly help: string;
  readonly samples: PromSample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/;
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)/y;

function parseLabels(s: string, line: string): Record<string, string> {
  const out: Record<string, string> = {};
  LABEL.lastIndex = 0;
  while (LABEL.lastIndex < s.length) {
    const m = LABEL.exec(s);
    if (!m) throw new Error(`bad labels in line: ${line}`);
    if (m[1]! in out) throw new Error(`label ${m[1]} twice in line: ${line}`);
    out[m[1]!] = m[2]!.replace(/\\(.)/g, (_x, c: string) => (c === 'n' ? '\n' : c));
  }
  return out;
}

/** As Prometheus reads a value (Go's ParseFloat: Inf and NaN in any case; prom-client writes "Nan"). */
function parseValue(v: string, line: string): number {
  if (/^\+?inf$/i.test(v)) return Infinity;
  if (/^-inf$/i.test(v)) return -Infinity;
  if (/^nan$/i.test(v)) return NaN;
  const n = Number(v);
  if (v === '' || Number.isNaN(n)) throw new Error(`bad value in line: ${line}`);
  return n;
}

export function parsePromText(text: string): Map<string, PromFamily> {
  const families = new Map<string, PromFamily>();
  const help = new Map<string, string>();
  let current: PromFamily | undefined;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# HELP ')) {
      const [name, ...rest] = line.slice(7).split(' ');
      if (!NAME.test(name!)) throw new Error(`bad HELP line: ${line}`);
      help.set(name!, rest.join(' '));
      continue;
    }
    if (line.startsWith('# TYPE ')) {
      const [name, type] = line.slice(7).split(' ');
      if (!NAME.test(name!) || !['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(type!)) throw new Error(`bad TYPE line: ${line}`);
      if (families.has(name!)) throw new Error(`family ${name} twice`);
      current = { name: name!, type: type!, help: help.get(name!) ?? '', samples: [] };
      families.set(name!, current);
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`bad sample line: ${line}`);
    const name = m[1]!;
    if (!current) throw new Error(`sample before any TYPE: ${line}`);
    const allowed = current.type === 'histogram' ? [`${current.name}_bucket`, `${current.name}_sum`, `${current.name}_count`] : [current.name];
    if (!allowed.includes(name)) throw new Error(`sample ${name} in family ${current.name}`);
    current.samples.push({ name, labels: parseLabels(m[3] ?? '', line), value: parseValue(m[4]!, line) });
  }
  return families;
}

/** The sum of the samples named `name` whose labels include `match`. */
export function sumOf(families: Map<string, PromFamily>, name: string, match: Record<string, string> = {}): number {
  const family = families.get(name.replace(/_(bucket|sum|count)$/, '')) ?? families.get(name);
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
