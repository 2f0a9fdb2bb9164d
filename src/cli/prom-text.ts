// A small, strict reader of the Prometheus text exposition format (version
// 0.0.4, what prom-client writes), and the arithmetic `kv top` does on two
// scrapes of it: counter increases, rates and histogram quantiles.
// https://prometheus.io/docs/instrumenting/exposition_formats/
// A malformed line is an error that names the line, never a silent guess.

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Scrape {
  readonly samples: readonly Sample[];
  /** Metric family name -> its # TYPE (counter, gauge, histogram, summary, untyped). */
  readonly types: ReadonlyMap<string, string>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** A sample value as Prometheus reads it (Go's ParseFloat: Inf and NaN in any case; prom-client writes "Nan"). */
export function parseValue(s: string, where: string): number {
  if (/^\+?inf$/i.test(s)) return Infinity;
  if (/^-inf$/i.test(s)) return -Infinity;
  if (/^nan$/i.test(s)) return NaN;
  // Number('') is 0 and Number('0x1') is 1: accept only decimal floats.
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) throw new Error(`${where}: not a number: ${JSON.stringify(s)}`);
  return Number(s);
}

/** The `{a="x",b="y"}` part starting at `s[0] === '{'`: the labels and the rest of the line. */
function parseLabels(s: string, where: string): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 1;
  for (;;) {
    while (s[i] === ' ') i++;
    if (s[i] === '}') return { labels, rest: s.slice(i + 1) };
    const m = LABEL_NAME.exec(s.slice(i));
    if (!m) throw new Error(`${where}: bad label name at column ${i + 1}`);
    const name = m[0];
    i += name.length;
    while (s[i] === ' ') i++;
    if (s[i] !== '=' || s[i + 1] !== '"') throw new Error(`${where}: label ${name} needs ="value"`);
    i += 2;
    let value = '';
    for (;;) {
      const c = s[i];
      if (c === undefined) throw new Error(`${where}: unterminated value of label ${name}`);
      if (c === '"') break;
      if (c === '\\') {
        const e = s[i + 1];
        if (e === 'n') value += '\n';
        else if (e === '\\' || e === '"') value += e;
        else throw new Error(`${where}: bad escape \\${e ?? ''} in label ${name}`);
        i += 2;
      } else {
        value += c;
        i++;
      }
    }
    i++;
    if (Object.hasOwn(labels, name)) throw new Error(`${where}: label ${name} given twice`);
    labels[name] = value;
    while (s[i] === ' ') i++;
    if (s[i] === ',') i++;
    else if (s[i] !== '}') throw new Error(`${where}: expected , or } after label ${name}`);
  }
}

export function parsePromText(text: string): Scrape {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.replace(/\r$/, '');
    const where = `line ${n + 1}`;
    if (line.trim() === '') continue;
    if (line.startsWith('#')) {
      const m = /^#\s*(HELP|TYPE)\s+(\S+)(?:\s+(.*))?$/.exec(line);
      if (!m) continue; // a plain comment
      const name = m[2]!;
      if (!NAME.test(name) || NAME.exec(name)![0] !== name) throw new Error(`${where}: bad metric name ${JSON.stringify(name)}`);
      if (m[1] === 'TYPE') {
        const type = (m[3] ?? '').trim();
        if (!TYPES.has(type)) throw new Error(`${where}: unknown type ${JSON.stringify(type)} of ${name}`);
        if (types.has(name)) throw new Error(`${where}: second TYPE line for ${name}`);
        types.set(name, type);
      }
      continue;
    }
    const nm = NAME.exec(line);
    if (!nm) throw new Error(`${where}: does not start with a metric name`);
    const name = nm[0];
    let rest = line.slice(name.length);
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest, where));
    const fields = rest.trim().split(/\s+/);
    if (!/^\s/.test(rest) || fields.length < 1 || fields.length > 2 || fields[0] === '')
      throw new Error(`${where}: expected "<name>{labels} <value> [timestamp]"`);
    if (fields[1] !== undefined && !/^-?\d+$/.test(fields[1])) throw new Error(`${where}: bad timestamp ${JSON.stringify(fields[1])}`);
    samples.push({ name, labels, value: parseValue(fields[0]!, where) });
  }
  return { samples, types };
}

type LabelFilter = (labels: Readonly<Record<string, string>>) => boolean;
const all: LabelFilter = () => true;

/** A family is present when the scrape declares its TYPE or has a sample of it (a labelled counter never incremented has only the TYPE). */
export function hasFamily(s: Scrape, family: string): boolean {
  return s.types.has(family) || s.samples.some((x) => x.name === family || x.name.startsWith(`${family}_`));
}

const seriesKey = (x: Sample) =>
  `${x.name}{${Object.keys(x.labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(x.labels[k])}`)
    .join(',')}}`;

/** The sum of the samples named `name` that pass `filter`; null when the family `family` is absent. */
export function gaugeSum(s: Scrape, name: string, filter: LabelFilter = all, family = name): number | null {
  if (!hasFamily(s, family)) return null;
  let sum = 0;
  for (const x of s.samples) if (x.name === name && filter(x.labels)) sum += x.value;
  return sum;
}

/**
 * Each counter series' increase from `prev` to `cur`. A series that went down
 * was reset (a worker restarted): its increase is its new value, as
 * Prometheus' increase() counts it. A series new in `cur` started at 0.
 */
function increases(prev: Scrape, cur: Scrape, name: string, filter: LabelFilter): Array<{ labels: Readonly<Record<string, string>>; inc: number }> {
  const before = new Map<string, number>();
  for (const x of prev.samples) if (x.name === name) before.set(seriesKey(x), x.value);
  const out: Array<{ labels: Readonly<Record<string, string>>; inc: number }> = [];
  for (const x of cur.samples) {
    if (x.name !== name || !filter(x.labels)) continue;
    const b = before.get(seriesKey(x)) ?? 0;
    out.push({ labels: x.labels, inc: x.value >= b ? x.value - b : x.value });
  }
  return out;
}

/** The summed increase of counter `name` over the series that pass `filter`; null when the family is absent from `cur`. */
export function counterIncrease(prev: Scrape, cur: Scrape, name: string, filter: LabelFilter = all, family = name.replace(/_total$/, '')): number | null {
  if (!hasFamily(cur, family) && !hasFamily(cur, name)) return null;
  return increases(prev, cur, name, filter).reduce((a, b) => a + b.inc, 0);
}

/** Per second over `seconds`; null stays null. */
export function perSecond(inc: number | null, seconds: number): number | null {
  if (inc === null || !(seconds > 0)) return null;
  return inc / seconds;
}

/** Cumulative bucket counts by upper bound, ascending, +Inf last. */
export type Buckets = ReadonlyArray<{ le: number; count: number }>;

/**
 * The increase of histogram `family`'s buckets from `prev` to `cur`, summed
 * over the series that pass `filter` (e.g. every route but /metrics), per
 * upper bound. Null when the histogram is absent from `cur`.
 */
export function histogramIncrease(prev: Scrape, cur: Scrape, family: string, filter: LabelFilter = all): Buckets | null {
  if (!hasFamily(cur, family)) return null;
  const byLe = new Map<number, number>();
  for (const { labels, inc } of increases(prev, cur, `${family}_bucket`, filter)) {
    const le = labels['le'];
    if (le === undefined) continue;
    const bound = parseValue(le, `${family}_bucket le`);
    byLe.set(bound, (byLe.get(bound) ?? 0) + inc);
  }
  return [...byLe.entries()].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
}

/** Add bucket increases of several sources (e.g. router hosts) with the same bounds. */
export function addBuckets(list: ReadonlyArray<Buckets | null>): Buckets | null {
  const present = list.filter((b): b is Buckets => b !== null);
  if (present.length === 0) return null;
  const byLe = new Map<number, number>();
  for (const b of present) for (const { le, count } of b) byLe.set(le, (byLe.get(le) ?? 0) + count);
  return [...byLe.entries()].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
}

/** Observations in the buckets (the +Inf bucket's count); null when absent. */
export function bucketTotal(b: Buckets | null): number | null {
  if (b === null) return null;
  return b.length === 0 ? 0 : b[b.length - 1]!.count;
}

/**
 * The q-quantile of the observations counted in cumulative buckets, by
 * linear interpolation inside the bucket that holds it, as Prometheus'
 * histogram_quantile() does: the lowest bucket starts at 0, and a rank in the
 * +Inf bucket answers the highest finite bound. Null without observations.
 */
export function histogramQuantile(q: number, b: Buckets | null): number | null {
  if (b === null || b.length === 0) return null;
  const total = b[b.length - 1]!.count;
  if (!(total > 0)) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (let i = 0; i < b.length; i++) {
    const { le, count } = b[i]!;
    if (count >= rank) {
      if (le === Infinity) return i > 0 ? b[i - 1]!.le : null;
      if (count === below) return le;
      return lower + (le - lower) * ((rank - below) / (count - below));
    }
    lower = le;
    below = count;
  }
  return null;
}
