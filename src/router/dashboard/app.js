// The shardkv dashboard: one module, no framework, no build step. It polls
// the router's public GET /v1/ring and GET /metrics, and, once the operator
// has typed the admin token, GET /v1/admin/shards and the rebalance event
// stream (read with fetch, so the token goes in a header, never in a URL).
// The token lives in a variable of this module only: never in storage, a
// cookie or a URL. The pure helpers (Prometheus text, rates, quantiles) are
// exported for the unit tests; the page starts only in a browser.

/** How often the page reads the ring, the shards and /metrics. */
const POLL_MS = 2000;
/** How much history the charts keep. */
const WINDOW_MS = 5 * 60 * 1000;
/** The charts' shortest time span (a page just opened). */
const MIN_SPAN_MS = 30 * 1000;
/** Pause before the event stream is opened again after it ended. */
const SSE_RETRY_MS = 2000;
/** Each fetch gives up after this long, so a hung router shows as such. */
const FETCH_TIMEOUT_MS = 5000;

const PALETTE = ['#2f6fd6', '#e07b1a', '#2a9d4b', '#c2304f', '#7b4bc4', '#138a8a', '#a67a00', '#d14fa0', '#5a6b7d', '#6a9a1f'];
const SERIES_COLOURS = ['#2f6fd6', '#e07b1a', '#2a9d4b', '#c2304f', '#7b4bc4', '#138a8a', '#a67a00', '#d14fa0'];
const DATA_ROUTES = new Set(['/v1/kv/:key', '/v1/kv', '/v1/kv?scan']);

// ---------------------------------------------------------------- pure part

/**
 * Parse the Prometheus text exposition format into samples
 * {name, labels, value}. Comments, HELP and TYPE lines are skipped; a line
 * that does not parse is skipped too (one odd line must not blank the page).
 */
export function parsePrometheus(text) {
  const out = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$/.exec(line);
    if (!m) continue;
    const labels = m[3] === undefined ? {} : parseLabels(m[3]);
    if (labels === undefined) continue;
    const value = parseValue(m[4]);
    if (value === undefined) continue;
    out.push({ name: m[1], labels, value });
  }
  return out;
}

function parseValue(s) {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  const v = Number(s);
  return Number.isNaN(v) ? undefined : v;
}

function parseLabels(s) {
  const labels = {};
  let i = 0;
  while (i < s.length) {
    const m = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"/.exec(s.slice(i));
    if (!m) return s.slice(i).trim() === '' || s.slice(i).trim() === ',' ? labels : undefined;
    i += m[0].length;
    let v = '';
    for (;;) {
      if (i >= s.length) return undefined;
      const c = s[i++];
      if (c === '"') break;
      if (c === '\\') {
        const e = s[i++];
        v += e === 'n' ? '\n' : e;
      } else v += c;
    }
    labels[m[1]] = v;
    const rest = /^\s*,?/.exec(s.slice(i));
    i += rest[0].length;
  }
  return labels;
}

const labelKey = (labels, drop = []) =>
  Object.keys(labels)
    .filter((k) => !drop.includes(k))
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');

/**
 * Per-second rates of the counter `name` between two scrapes, summed by the
 * labels in `by`: Map(groupKey -> {labels, rate}). A counter that went
 * down (a restarted process) gives no rate for that scrape.
 */
export function counterRates(prev, cur, name, by, seconds) {
  const out = new Map();
  if (!prev || seconds <= 0) return out;
  const before = new Map(prev.samples.filter((s) => s.name === name).map((s) => [labelKey(s.labels), s.value]));
  for (const s of cur.samples) {
    if (s.name !== name) continue;
    const was = before.get(labelKey(s.labels)) ?? 0;
    if (s.value < was) continue;
    const labels = Object.fromEntries(by.map((k) => [k, s.labels[k] ?? '']));
    const k = labelKey(labels);
    const g = out.get(k) ?? { labels, rate: 0 };
    g.rate += (s.value - was) / seconds;
    out.set(k, g);
  }
  return out;
}

/**
 * The histogram `name`'s bucket increases between two scrapes, summed by
 * the labels in `by`: Map(groupKey -> {labels, buckets: [[le, count]...]})
 * with cumulative counts in le order.
 */
export function histogramDeltas(prev, cur, name, by) {
  const bucket = `${name}_bucket`;
  const before = new Map((prev?.samples ?? []).filter((s) => s.name === bucket).map((s) => [labelKey(s.labels), s.value]));
  const groups = new Map();
  for (const s of cur.samples) {
    if (s.name !== bucket || s.labels.le === undefined) continue;
    const was = prev ? (before.get(labelKey(s.labels)) ?? 0) : s.value;
    const labels = Object.fromEntries(by.map((k) => [k, s.labels[k] ?? '']));
    const k = labelKey(labels);
    const g = groups.get(k) ?? { labels, byLe: new Map() };
    const le = parseValue(s.labels.le);
    g.byLe.set(le, (g.byLe.get(le) ?? 0) + Math.max(0, s.value - was));
    groups.set(k, g);
  }
  const out = new Map();
  for (const [k, g] of groups) out.set(k, { labels: g.labels, buckets: [...g.byLe.entries()].sort((a, b) => a[0] - b[0]) });
  return out;
}

/**
 * The q-quantile of cumulative buckets [[le, count]...] as Prometheus's
 * histogram_quantile computes it: linear within the bucket the rank falls
 * in; the highest finite bound when it falls in +Inf; null without data.
 */
export function histogramQuantile(q, buckets) {
  if (buckets.length === 0) return null;
  const total = buckets[buckets.length - 1][1];
  if (!(total > 0)) return null;
  const rank = q * total;
  let lowerLe = 0;
  let lowerCount = 0;
  for (const [le, count] of buckets) {
    if (count >= rank) {
      if (le === Infinity) return lowerLe;
      if (count === lowerCount) return le;
      return lowerLe + ((le - lowerLe) * (rank - lowerCount)) / (count - lowerCount);
    }
    lowerLe = le;
    lowerCount = count;
  }
  return lowerLe;
}

/** The ring points [lo, hi] as angles in radians, clockwise from the top. */
export function arcAngles(lo, hi) {
  const SPACE = 2 ** 32;
  return [(lo / SPACE) * 2 * Math.PI, ((hi + 1) / SPACE) * 2 * Math.PI];
}

export function fmtCount(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  if (a >= 100 || Number.isInteger(n)) return String(Math.round(n));
  return n.toFixed(1);
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '–';
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms)} ms`;
}

export function fmtSecs(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '?';
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 120) return `${Math.round(s)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

const pct = (x) => `${(x * 100).toFixed(1)}%`;

/** The smallest 1, 2 or 5 times a power of ten at or above x (a chart's top). */
export function niceCeil(x) {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 5, 10]) if (m * p >= x) return m * p;
  return 10 * p;
}

// ------------------------------------------------------------ browser part

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Everything the page knows; the only place the admin token is kept. */
const state = {
  token: '',
  tokenState: 'none',
  ring: null,
  shards: null,
  job: null,
  jobProgress: null,
  /** Per stream: the last samples of keysDone, for its rate. */
  streamSamples: new Map(),
  lastScrape: null,
  history: [],
  colours: new Map(),
  maxTtl: new Map(),
  sse: null,
  actionBusy: false,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function swatch(colour) {
  const s = svg('svg', { class: 'swatch', viewBox: '0 0 10 10', 'aria-hidden': 'true' });
  s.append(svg('rect', { width: 10, height: 10, rx: 2, fill: colour }));
  return s;
}

/** A stable colour per shard id, in the order the ids were first seen. */
function colourOf(id) {
  let c = state.colours.get(id);
  if (!c) {
    c = PALETTE[state.colours.size % PALETTE.length];
    state.colours.set(id, c);
  }
  return c;
}

/** How long an information (not an error) stays in the notice bar. */
const INFO_NOTICE_MS = 15_000;
let noticeTimer;

function notice(text, kind = 'info') {
  const n = $('notice');
  clearTimeout(noticeTimer);
  if (!text) {
    n.hidden = true;
    return;
  }
  n.hidden = false;
  n.dataset.kind = kind;
  n.textContent = text;
  if (kind === 'info') noticeTimer = setTimeout(() => (n.hidden = true), INFO_NOTICE_MS);
}

function authHeaders() {
  return state.token ? { authorization: `Bearer ${state.token}` } : {};
}

/** fetch with the token (when set) and a timeout; resolves {status, body, json}. */
async function call(method, path, body) {
  const headers = { ...authHeaders() };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
    credentials: 'omit',
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
  });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  return { status: res.status, text, json };
}

function errorText(r) {
  if (r.json && r.json.code) return `${r.status} ${r.json.code}: ${r.json.message}`;
  return `HTTP ${r.status}`;
}

function setTokenState(s) {
  state.tokenState = s;
  const t = $('token-state');
  t.dataset.state = s;
  t.textContent = s === 'set' ? 'admin' : s === 'refused' ? 'token refused' : 'read-only';
}

/** A 401 from the admin API: say so, and what to do. */
function refused(r, what, background = false) {
  if (r.status !== 401) return false;
  const had = state.token !== '';
  // A background read that raced the one that dropped the token has nothing new to say.
  if (background && !had) return true;
  notice(
    `${what} was refused by the server (${errorText(r)}). ${had ? 'The admin token was not accepted, so the page forgot it: check it and paste it again.' : 'Paste the admin token above: actions and the shard details need it.'}`,
    'error',
  );
  if (had) {
    // A wrong token is dropped at once, so the page does not go on sending it.
    state.token = '';
    state.shards = null;
    stopEvents();
    setTokenState('refused');
  }
  return true;
}

// ---------------------------------------------------------------- the ring

function drawRing() {
  const root = $('ring');
  root.replaceChildren();
  const view = state.ring;
  if (!view) return;
  const C = 120;
  const R = 104;
  const r = 70;
  /** The outer track: where arcs in flight are going. */
  const R2 = 116;
  const r2 = 108;
  const defs = svg('defs');
  root.append(defs);
  const ids = view.shards.map((s) => s.id);
  for (const id of ids) {
    const p = svg('pattern', { id: `stripes-${id}`, width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' });
    p.append(svg('rect', { width: 3, height: 6, fill: colourOf(id) }));
    defs.append(p);
  }
  const doneStreams = new Set((state.job?.streams ?? []).filter((s) => s.done).map((s) => `${s.source}>${s.target}`));
  const point = (a, rad) => [C + rad * Math.sin(a), C - rad * Math.cos(a)];
  const sector = (a0, a1, outer = R, inner = r) => {
    const large = a1 - a0 > Math.PI ? 1 : 0;
    const [x0, y0] = point(a0, outer);
    const [x1, y1] = point(a1, outer);
    const [x2, y2] = point(a1, inner);
    const [x3, y3] = point(a0, inner);
    return `M${x0.toFixed(2)},${y0.toFixed(2)}A${outer},${outer} 0 ${large} 1 ${x1.toFixed(2)},${y1.toFixed(2)}L${x2.toFixed(2)},${y2.toFixed(2)}A${inner},${inner} 0 ${large} 0 ${x3.toFixed(2)},${y3.toFixed(2)}Z`;
  };
  const whole = view.arcs.length === 1;
  for (const a of view.arcs) {
    let [a0, a1] = arcAngles(a.lo, a.hi);
    if (whole) a1 = a0 + 2 * Math.PI - 1e-6;
    const moving = a.from !== undefined && !doneStreams.has(`${a.from}>${a.owner}`);
    const base = moving ? a.from : a.owner;
    const d = sector(a0, a1);
    root.append(svg('path', { d, fill: colourOf(base), class: 'arc', 'data-owner': a.owner, ...(moving ? { 'data-from': a.from } : {}) }));
    if (moving) {
      // Changing hands: stripes of the new owner over the old one, and the new owner on the outer track.
      root.append(svg('path', { d, fill: `url(#stripes-${a.owner})`, class: 'arc-moving' }));
      root.append(svg('path', { d: sector(a0, a1, R2, r2), fill: colourOf(a.owner), class: 'arc-target' }));
    }
  }
  const moving = view.migration !== null;
  const p = state.jobProgress;
  root.append(
    svg(
      'text',
      { x: C, y: C - 4, 'text-anchor': 'middle', class: 'center-big' },
      moving && p && p.keysTotal > 0 ? pct(p.keysDone / p.keysTotal) : `${view.shards.length}`,
    ),
  );
  root.append(svg('text', { x: C, y: C + 14, 'text-anchor': 'middle', class: 'center-small' }, moving ? `moved · ${view.migration.phase} phase` : 'shards'));
  root.append(svg('text', { x: C, y: C + 28, 'text-anchor': 'middle', class: 'center-small' }, `epoch ${view.epoch}`));

  const legend = $('ring-legend');
  legend.replaceChildren();
  for (const s of view.shards) {
    const li = el('li', { 'data-shard': s.id, 'data-share': s.share.toFixed(6) });
    li.append(swatch(colourOf(s.id)));
    const share = s.shareBefore !== undefined && Math.abs(s.shareBefore - s.share) > 1e-9 ? `${pct(s.shareBefore)} → ${pct(s.share)}` : pct(s.share);
    li.append(el('span', {}, `${s.id} ${share}`));
    legend.append(li);
  }
}

// -------------------------------------------------------------- the shards

/** The rows of the table: the ring's shards, with the admin list's details when the token is set. */
function shardRows() {
  const byId = new Map();
  for (const s of state.ring?.shards ?? []) byId.set(s.id, { ...s, detail: null });
  for (const s of state.shards?.shards ?? []) {
    const row = byId.get(s.id) ?? { id: s.id, state: s.state, weight: s.weight, share: s.share };
    byId.set(s.id, { ...row, state: byId.has(s.id) ? row.state : s.state, detail: s });
  }
  return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Health as shown: the server's view, and "late" when the registry entry has run down by half (two heartbeats missed at the defaults). */
function healthOf(d) {
  if (!d) return null;
  if (d.health !== 'up') return d.health;
  if (d.heartbeatAgeMs != null && d.heartbeatTtlLeftMs !== null) return d.heartbeatAgeMs > d.heartbeatTtlLeftMs ? 'late' : 'up';
  // A shard of an older version tells no age: the entry's TTL against the largest seen.
  const max = state.maxTtl.get(d.id) ?? 0;
  if (d.heartbeatTtlLeftMs !== null && max > 0 && d.heartbeatTtlLeftMs < max / 2) return 'late';
  return 'up';
}

function heartbeatAge(d) {
  if (d?.heartbeatAgeMs != null) return fmtSecs(d.heartbeatAgeMs / 1000);
  if (!d || d.heartbeatTtlLeftMs === null) return d?.registered === false ? 'expired' : '–';
  const max = state.maxTtl.get(d.id) ?? d.heartbeatTtlLeftMs;
  return fmtSecs(Math.max(0, max - d.heartbeatTtlLeftMs) / 1000);
}

function drawShards() {
  const tbody = $('shards').tBodies[0];
  const rows = shardRows();
  const fwd = state.history.at(-1)?.forward ?? new Map();
  const have = new Map([...tbody.rows].map((tr) => [tr.dataset.shard, tr]));
  const noToken = !state.token;
  for (const [id, tr] of have) if (!rows.some((r) => r.id === id)) tr.remove();
  for (const row of rows) {
    let tr = have.get(row.id);
    if (!tr) {
      tr = el('tr', { 'data-shard': row.id });
      for (const col of ['id', 'state', 'weight', 'share', 'records', 'bytes', 'ops', 'p99', 'heartbeat', 'health']) {
        tr.append(el('td', { 'data-col': col, ...(['id', 'state', 'health'].includes(col) ? {} : { class: 'num' }) }));
      }
    }
    tbody.append(tr); // keeps the rows in order
    const d = row.detail;
    const cell = (col) => tr.querySelector(`td[data-col="${col}"]`);
    const idCell = cell('id');
    if (!idCell.firstChild) {
      idCell.append(swatch(colourOf(row.id)), document.createTextNode(` ${row.id}`));
    }
    cell('state').textContent = row.state;
    cell('state').dataset.state = row.state;
    cell('weight').textContent = row.weight === null || row.weight === undefined ? '–' : String(row.weight);
    cell('share').textContent =
      row.shareBefore !== undefined && Math.abs(row.shareBefore - row.share) > 1e-9 ? `${pct(row.shareBefore)} → ${pct(row.share)}` : pct(row.share ?? 0);
    cell('records').textContent = d ? (d.keys === null ? '?' : d.keys.toLocaleString('en-US')) : '–';
    cell('bytes').textContent = d ? (d.bytes === null ? '?' : fmtBytes(d.bytes)) : '–';
    const f = fwd.get(row.id);
    cell('ops').textContent = f ? fmtCount(f.rate) : '–';
    cell('p99').textContent = f && f.p99 !== null ? fmtMs(f.p99 * 1000) : '–';
    cell('heartbeat').textContent = heartbeatAge(d);
    const h = healthOf(d);
    const hc = cell('health');
    hc.dataset.health = h ?? 'unknown';
    hc.textContent = h === null ? (noToken ? 'token needed' : '–') : h === 'unreachable' ? 'no answer' : h;
    hc.title =
      h === 'unreachable'
        ? 'registered, but its data port did not answer: stopped or hung; its registry entry expires soon'
        : h === 'down'
          ? 'no registry entry: no heartbeat for the heartbeat TTL'
          : h === 'late'
            ? 'its registry entry is running down: heartbeats are late'
            : '';
    tr.dataset.health = h ?? 'unknown';
    tr.dataset.state = row.state;
  }
  // The action form's shard list: every shard we know of.
  const sel = $('act-shard');
  const keep = sel.value;
  const ids = rows.map((r) => `${r.id}|${r.state}`).join(',');
  if (sel.dataset.ids !== ids) {
    sel.replaceChildren(...rows.map((r) => el('option', { value: r.id }, `${r.id} (${r.state})`)));
    sel.dataset.ids = ids;
    if (rows.some((r) => r.id === keep)) sel.value = keep;
    else {
      const avail = rows.find((r) => r.state === 'available');
      if (avail) sel.value = avail.id;
    }
  }
}

// ---------------------------------------------------------------- the move

function streamKey(job, s) {
  return `${job.id}:${job.direction}:${s.source}->${s.target}`;
}

/** Keys/s of a stream over its samples of the last ~10 s. */
function streamRate(key) {
  const xs = state.streamSamples.get(key) ?? [];
  if (xs.length < 2) return null;
  const a = xs[0];
  const b = xs[xs.length - 1];
  const dt = (b.t - a.t) / 1000;
  return dt > 0 ? (b.keys - a.keys) / dt : null;
}

function onJob(msg) {
  const job = msg.job ?? null;
  const before = state.job;
  state.job = job;
  state.jobProgress = msg.progress ?? null;
  if (job) {
    const now = Date.now();
    for (const s of job.streams) {
      const k = streamKey(job, s);
      const xs = state.streamSamples.get(k) ?? [];
      xs.push({ t: now, keys: s.keysDone, bytes: s.bytesDone });
      while (xs.length > 2 && now - xs[0].t > 10_000) xs.shift();
      state.streamSamples.set(k, xs);
    }
  }
  drawMove();
  drawRing();
  // A state change moves the ring (a new epoch): read it now rather than at the next poll.
  if (!before || !job || before.state !== job.state || before.id !== job.id) void refreshRing();
}

function drawMove() {
  const panel = $('move-panel');
  const job = state.job;
  const list = $('streams');
  const cancel = $('act-cancel');
  if (!job) {
    panel.dataset.state = 'none';
    $('move-summary').textContent = state.token ? 'no move' : state.ring?.migration ? 'a move is running (the admin token shows its progress)' : 'no move';
    $('move-progress').hidden = true;
    $('move-pacing').textContent = '';
    list.replaceChildren();
    cancel.hidden = true;
    return;
  }
  panel.dataset.state = job.state;
  panel.dataset.job = job.id;
  const p = state.jobProgress;
  const final = ['done', 'cancelled', 'failed'].includes(job.state);
  const took = job.startedAt ? ((job.finishedAt ?? Date.now()) - job.startedAt) / 1000 : null;
  $('move-summary').textContent =
    `${job.kind} ${job.shardId}: ${job.state}${job.direction === 'reverse' ? ' (cancelling: moving back)' : ''}` +
    (p ? `, ${fmtCount(p.keysDone)} / ${fmtCount(p.keysTotal)} keys` : '') +
    (final && took !== null ? `, in ${fmtSecs(took)}` : '') +
    (job.error ? `: ${job.error}` : '');
  const bar = $('move-progress');
  bar.hidden = false;
  bar.value = p && p.keysTotal > 0 ? p.keysDone / p.keysTotal : final && job.state === 'done' ? 1 : 0;
  const pace = job.pacing;
  $('move-pacing').textContent = pace
    ? `pacing ${pace.mode}: ${pace.keysPerSec === null ? 'no limit' : `${fmtCount(pace.keysPerSec)} keys/s`}${pace.phase ? ` (${pace.phase})` : ''}` +
      (pace.fgP99Ms !== null ? `; foreground p99 ${fmtMs(pace.fgP99Ms)}` : '') +
      (pace.baselineP99Ms !== null ? ` / baseline ${fmtMs(pace.baselineP99Ms)}` : '') +
      (pace.ratio !== null ? ` = ${pace.ratio.toFixed(2)}x` : '')
    : '';
  const items = job.streams.map((s) => {
    const k = streamKey(job, s);
    const total = Math.max(s.keysTotal, s.keysDone);
    const frac = s.done ? 1 : total > 0 ? s.keysDone / total : 0;
    const rate = s.done ? null : streamRate(k);
    const waiting = !s.done && s.keysDone === 0 && !rate;
    const eta = s.done ? 0 : rate && rate > 0 ? (total - s.keysDone) / rate : null;
    const li = el('li', { class: 'stream', 'data-stream': `${s.source}->${s.target}`, 'data-pct': Math.floor(frac * 100), 'data-done': s.done });
    const head = el('div', { class: 'stream-head' });
    const name = el('span');
    name.append(swatch(colourOf(s.source)), document.createTextNode(` ${s.source} → `), swatch(colourOf(s.target)), document.createTextNode(` ${s.target}`));
    head.append(name, el('span', { class: 'stream-pct' }, `${Math.floor(frac * 100)}%`));
    const pr = el('progress', { max: 1 });
    pr.value = frac;
    const stats = el(
      'div',
      { class: 'stream-stats' },
      `${fmtCount(s.keysDone)} / ${fmtCount(total)} keys · ${fmtBytes(s.bytesDone)} · ${s.done ? 'done' : waiting ? 'waiting for its turn' : `${rate === null ? '?' : fmtCount(rate)} keys/s · ETA ${fmtSecs(eta)}`}` +
        (s.lastError ? ` · retrying: ${s.lastError.slice(0, 80)}` : ''),
    );
    li.append(head, pr, stats);
    return li;
  });
  list.replaceChildren(...items);
  cancel.hidden = final;
}

/** The rebalance event stream, read with fetch so the token goes in a header. Runs while a token is set. */
function startEvents() {
  stopEvents();
  if (!state.token) return;
  const ctl = new AbortController();
  state.sse = ctl;
  const run = async () => {
    while (!ctl.signal.aborted) {
      try {
        const res = await fetch('/v1/admin/rebalance/events', {
          headers: { ...authHeaders(), accept: 'text/event-stream' },
          cache: 'no-store',
          credentials: 'omit',
          signal: ctl.signal,
        });
        if (res.status === 401) {
          refused({ status: 401, json: await res.json().catch(() => null) }, 'The move progress', true);
          return;
        }
        if (res.status !== 200 || !res.body) throw new Error(`HTTP ${res.status}`);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const data = block
              .split('\n')
              .filter((l) => l.startsWith('data: '))
              .map((l) => l.slice(6))
              .join('\n');
            if (data) onJob(JSON.parse(data));
          }
        }
      } catch (err) {
        if (ctl.signal.aborted) return;
        setStatus(`move events: ${err.message}; reconnecting`);
      }
      await new Promise((r) => setTimeout(r, SSE_RETRY_MS));
    }
  };
  void run();
}

function stopEvents() {
  state.sse?.abort();
  state.sse = null;
}

// ------------------------------------------------------------------ charts

/**
 * Draw series [{name, colour, points: [[t, v]...], axis}] over the last
 * WINDOW_MS, each axis ('left' or 'right') scaled to its own maximum.
 * Without any point: "no data" (the series does not exist on this router).
 */
function drawChart(key, series, units = {}) {
  const fig = document.querySelector(`.chart[data-chart="${key}"]`);
  const root = fig.querySelector('svg');
  const legend = fig.querySelector('.chart-legend');
  root.replaceChildren();
  legend.replaceChildren();
  const W = 360;
  const H = 130;
  const L = 14;
  const Rm = 14;
  const T = 8;
  const B = 16;
  const withData = series.filter((s) => s.points.some((p) => p[1] !== null && Number.isFinite(p[1])));
  fig.dataset.state = withData.length ? 'data' : 'nodata';
  for (let i = 0; i <= 3; i++) {
    const y = T + ((H - T - B) * i) / 3;
    root.append(svg('line', { x1: L, x2: W - Rm, y1: y, y2: y, class: 'grid' }));
  }
  const now = Date.now();
  // The span grows with the page's history up to WINDOW_MS, so the first
  // minutes after opening the page fill the chart instead of its right edge.
  let first = now;
  for (const s of withData) for (const [t] of s.points) if (t < first) first = t;
  const span = Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, now - first));
  const spanText = span >= 60_000 ? `−${Math.round(span / 60_000)} min` : `−${Math.round(span / 1000)} s`;
  root.append(svg('text', { x: L, y: H - 3 }, spanText), svg('text', { x: W - Rm, y: H - 3, 'text-anchor': 'end' }, 'now'));
  if (!withData.length) {
    root.append(svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'nodata' }, 'no data'));
    return;
  }
  const x = (t) => L + ((W - L - Rm) * (t - (now - span))) / span;
  for (const axis of ['left', 'right']) {
    const on = withData.filter((s) => (s.axis ?? 'left') === axis);
    if (!on.length) continue;
    let max = 0;
    for (const s of on) for (const [, v] of s.points) if (v !== null && Number.isFinite(v)) max = Math.max(max, v);
    max = niceCeil(max);
    const y = (v) => T + (H - T - B) * (1 - v / max);
    const unit = units[axis] ?? '';
    // The scale inside the plot's top corner, so long labels are not cut at the edge.
    const left = axis === 'left';
    root.append(
      svg('text', { x: left ? L + 2 : W - Rm - 2, y: T + 9, 'text-anchor': left ? 'start' : 'end' }, `${fmtCount(max)}${unit}`),
      svg('text', { x: left ? L - 3 : W - Rm + 3, y: H - B, 'text-anchor': left ? 'end' : 'start' }, '0'),
    );
    for (const s of on) {
      let d = '';
      let pen = false;
      for (const [t, v] of s.points) {
        if (v === null || !Number.isFinite(v) || t < now - WINDOW_MS) {
          pen = false;
          continue;
        }
        d += `${pen ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      }
      root.append(svg('path', { d, fill: 'none', stroke: s.colour, 'stroke-width': 1.5, ...(s.dashed ? { 'stroke-dasharray': '4 3' } : {}) }));
      // The latest value as a dot, so a series that has just begun shows too.
      const last = [...s.points].reverse().find(([t, v]) => v !== null && Number.isFinite(v) && t >= now - WINDOW_MS);
      if (last && !s.dashed) root.append(svg('circle', { cx: x(last[0]).toFixed(1), cy: y(last[1]).toFixed(1), r: 2, fill: s.colour }));
    }
  }
  for (const s of withData) {
    const last = [...s.points].reverse().find((p) => p[1] !== null && Number.isFinite(p[1]));
    const li = el('li', { 'data-series': s.name });
    li.append(swatch(s.colour), el('span', {}, `${s.name} ${last ? s.fmt(last[1]) : '–'}`));
    legend.append(li);
  }
}

/** One point per scrape: what the charts and the shard table show. */
function sample(prev, cur) {
  const dt = prev ? (cur.t - prev.t) / 1000 : 0;
  const point = { t: cur.t, routes: new Map(), latency: new Map(), statuses: new Map(), forward: new Map(), fgP99: null, moveRate: null, paceLimit: null };
  if (!prev) return point;
  for (const [, g] of counterRates(prev, cur, 'kv_router_requests_total', ['route'], dt)) point.routes.set(g.labels.route, g.rate);
  for (const [, g] of counterRates(prev, cur, 'kv_router_requests_total', ['status'], dt)) {
    if (Number(g.labels.status) >= 400) point.statuses.set(g.labels.status, g.rate);
  }
  const lat = histogramDeltas(prev, cur, 'kv_router_request_duration_seconds', ['route']);
  for (const [, g] of lat) {
    point.latency.set(g.labels.route, { p50: histogramQuantile(0.5, g.buckets), p99: histogramQuantile(0.99, g.buckets) });
  }
  // The foreground: the data routes together.
  const fg = new Map();
  for (const [, g] of lat) {
    if (!DATA_ROUTES.has(g.labels.route)) continue;
    for (const [le, c] of g.buckets) fg.set(le, (fg.get(le) ?? 0) + c);
  }
  const fgQ = histogramQuantile(
    0.99,
    [...fg.entries()].sort((a, b) => a[0] - b[0]),
  );
  const fwd = histogramDeltas(prev, cur, 'kv_router_forward_duration_seconds', ['shard']);
  for (const [, g] of fwd) {
    const total = g.buckets.at(-1)?.[1] ?? 0;
    point.forward.set(g.labels.shard, { rate: dt > 0 ? total / dt : null, p99: histogramQuantile(0.99, g.buckets) });
  }
  point.fgP99 = fgQ !== null ? fgQ * 1000 : state.job?.state === 'streaming' ? (state.job.pacing?.fgP99Ms ?? null) : null;
  // The move rate: the streams' rates from the job's progress events.
  const job = state.job;
  if (job && job.state === 'streaming') {
    point.moveRate = job.streams.reduce((n, s) => n + (s.done ? 0 : (streamRate(streamKey(job, s)) ?? 0)), 0);
    point.paceLimit = job.pacing?.keysPerSec ?? null;
  }
  return point;
}

function seriesOf(pick, names, fmt, axis = 'left') {
  return names.map((name, i) => ({
    name,
    colour: SERIES_COLOURS[i % SERIES_COLOURS.length],
    points: state.history.map((p) => [p.t, pick(p, name)]),
    fmt,
    axis,
  }));
}

function topKeys(pick, n) {
  const sum = new Map();
  for (const p of state.history) for (const [k, v] of pick(p)) sum.set(k, (sum.get(k) ?? 0) + (typeof v === 'number' ? v : 1));
  return [...sum.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map((e) => e[0]);
}

function drawCharts() {
  const perSec = (v) => `${fmtCount(v)}/s`;
  const ms = (v) => fmtMs(v);
  const routes = topKeys((p) => p.routes, 5);
  drawChart(
    'reqs',
    seriesOf((p, r) => p.routes.get(r) ?? (p.routes.size ? 0 : null), routes, perSec),
    { left: '/s' },
  );
  const latRoutes = topKeys((p) => p.latency, 3);
  const lat = [];
  latRoutes.forEach((r, i) => {
    const colour = SERIES_COLOURS[i % SERIES_COLOURS.length];
    const pts = (q) => state.history.map((p) => [p.t, p.latency.get(r)?.[q] == null ? null : p.latency.get(r)[q] * 1000]);
    lat.push({ name: `${r} p50`, colour, points: pts('p50'), fmt: ms, dashed: true }, { name: `${r} p99`, colour, points: pts('p99'), fmt: ms });
  });
  drawChart('latency', lat, { left: ' ms' });
  const statuses = topKeys((p) => p.statuses, 6).sort();
  drawChart(
    'errors',
    seriesOf((p, s) => p.statuses.get(s) ?? (p.routes.size ? 0 : null), statuses, perSec),
    { left: '/s' },
  );
  const shards = topKeys((p) => p.forward, 8).sort();
  drawChart(
    'forward',
    shards.map((id) => ({
      name: id,
      colour: colourOf(id),
      points: state.history.map((p) => [p.t, p.forward.get(id)?.p99 == null ? null : p.forward.get(id).p99 * 1000]),
      fmt: ms,
    })),
    { left: ' ms' },
  );
  drawChart(
    'move',
    [
      { name: 'move keys/s', colour: '#2f6fd6', points: state.history.map((p) => [p.t, p.moveRate]), fmt: perSec, axis: 'left' },
      { name: 'pace limit', colour: '#2f6fd6', points: state.history.map((p) => [p.t, p.paceLimit]), fmt: perSec, axis: 'left', dashed: true },
      { name: 'foreground p99', colour: '#c2304f', points: state.history.map((p) => [p.t, p.fgP99]), fmt: ms, axis: 'right' },
    ],
    { left: '/s', right: ' ms' },
  );
}

// ----------------------------------------------------------------- polling

function setStatus(text) {
  $('status').textContent = text;
}

async function refreshRing() {
  const r = await call('GET', '/v1/ring');
  if (r.status !== 200) throw new Error(`ring: ${errorText(r)}`);
  state.ring = r.json;
  $('epoch').textContent = `epoch ${r.json.epoch}`;
  drawRing();
  drawShards();
}

async function refreshShards() {
  if (!state.token) {
    state.shards = null;
    return;
  }
  const r = await call('GET', '/v1/admin/shards');
  if (refused(r, 'The shard list', true)) return;
  if (r.status !== 200) throw new Error(`shards: ${errorText(r)}`);
  if (state.tokenState !== 'set') setTokenState('set');
  state.shards = r.json;
  for (const s of r.json.shards) {
    if (s.heartbeatTtlLeftMs !== null) state.maxTtl.set(s.id, Math.max(state.maxTtl.get(s.id) ?? 0, s.heartbeatTtlLeftMs));
  }
}

async function refreshMetrics() {
  const r = await call('GET', '/metrics');
  if (r.status === 401) {
    setStatus('/metrics needs the admin token on this router (metricsAuth)');
    return;
  }
  if (r.status !== 200) throw new Error(`metrics: ${errorText(r)}`);
  const cur = { t: Date.now(), samples: parsePrometheus(r.text) };
  const point = sample(state.lastScrape, cur);
  state.lastScrape = cur;
  state.history.push(point);
  while (state.history.length && state.history[0].t < Date.now() - WINDOW_MS) state.history.shift();
  drawCharts();
}

async function tick() {
  const errors = [];
  await Promise.all([refreshRing(), refreshShards(), refreshMetrics()].map((p) => p.catch((err) => errors.push(err.message))));
  drawRing();
  drawShards();
  setStatus(errors.length ? `problem: ${errors.join('; ')}` : `updated ${new Date().toLocaleTimeString()}`);
  $('status').dataset.ok = String(errors.length === 0);
}

function loop() {
  void tick().finally(() => setTimeout(loop, POLL_MS));
}

// ----------------------------------------------------------------- actions

function planTable(plan) {
  const wrap = el('div');
  wrap.append(el('p', {}, `${plan.kind} ${plan.shard}: about ${fmtCount(plan.keysToMove)} keys (${fmtBytes(plan.bytesToMove)}) move.`));
  const t = el('table', { class: 'plan' });
  const head = el('tr');
  head.append(el('th', {}, 'shard'), el('th', { class: 'num' }, 'share now'), el('th', { class: 'num' }, 'share after'));
  t.append(head);
  const ids = [...new Set([...Object.keys(plan.sharesBefore), ...Object.keys(plan.sharesAfter)])].sort();
  for (const id of ids) {
    const tr = el('tr', { 'data-shard': id });
    tr.append(el('td', {}, id), el('td', { class: 'num' }, pct(plan.sharesBefore[id] ?? 0)), el('td', { class: 'num' }, pct(plan.sharesAfter[id] ?? 0)));
    t.append(tr);
  }
  wrap.append(t);
  const ul = el('ul');
  for (const s of plan.streams) ul.append(el('li', {}, `${s.source} → ${s.target}: ${s.arcs} arcs, ~${fmtCount(s.keys)} keys, ~${fmtBytes(s.bytes)}`));
  wrap.append(ul);
  return wrap;
}

/** Show `body` in the dialog; resolves true on Confirm. */
function confirmDialog(title, body) {
  const d = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-body').replaceChildren(body);
  d.showModal();
  return new Promise((resolve) => {
    const done = (ok) => {
      $('confirm-yes').removeEventListener('click', yes);
      $('confirm-no').removeEventListener('click', no);
      d.removeEventListener('cancel', no);
      d.close();
      resolve(ok);
    };
    const yes = () => done(true);
    const no = () => done(false);
    $('confirm-yes').addEventListener('click', yes);
    $('confirm-no').addEventListener('click', no);
    d.addEventListener('cancel', no);
  });
}

/** Dry run, show the plan, and on confirmation the real request. */
async function planned(label, method, path, body) {
  if (state.actionBusy) return;
  state.actionBusy = true;
  try {
    const dry = await call(method, `${path}?dryRun=true`, body);
    if (refused(dry, label)) return;
    if (dry.status !== 200) {
      notice(`${label}: ${errorText(dry)}`, 'error');
      return;
    }
    if (!(await confirmDialog(`${label}: the plan`, planTable(dry.json.plan)))) {
      notice(`${label}: not confirmed, nothing changed.`);
      return;
    }
    const r = await call(method, path, body);
    if (refused(r, label)) return;
    if (r.status !== 202) {
      notice(`${label}: ${errorText(r)}`, 'error');
      return;
    }
    notice(`${label}: started (job ${String(r.json.job.id).slice(0, 8)}).`);
    await refreshRing().catch(() => undefined);
  } catch (err) {
    notice(`${label}: ${err.message}`, 'error');
  } finally {
    state.actionBusy = false;
  }
}

function selected() {
  return $('act-shard').value;
}

function weightValue() {
  const w = Number($('act-weight').value);
  return Number.isFinite(w) ? w : undefined;
}

function wireActions() {
  $('act-add').addEventListener('click', () => {
    const id = selected();
    if (!id) return notice('Add: pick a registered shard first (available shards show once the admin token is set).', 'error');
    void planned(`Add ${id}`, 'POST', '/v1/admin/shards', { id, weight: weightValue() });
  });
  $('act-remove').addEventListener('click', () => {
    const id = selected();
    if (!id) return notice('Remove: pick a shard first.', 'error');
    void planned(`Remove ${id}`, 'DELETE', `/v1/admin/shards/${encodeURIComponent(id)}`);
  });
  $('act-weight-set').addEventListener('click', () => {
    const id = selected();
    if (!id) return notice('Set weight: pick a shard first.', 'error');
    void planned(`Weight of ${id} to ${$('act-weight').value}`, 'PUT', `/v1/admin/shards/${encodeURIComponent(id)}/weight`, { weight: weightValue() });
  });
  $('act-cancel').addEventListener('click', () => {
    void (async () => {
      const job = state.job;
      if (!job) return;
      const body = el(
        'p',
        {},
        `Cancel ${job.kind} ${job.shardId}? The streams run back to the old owners (writes made meanwhile are kept) and the ring returns to what it was.`,
      );
      if (!(await confirmDialog('Cancel the move', body))) return;
      const r = await call('POST', '/v1/admin/rebalance/cancel');
      if (refused(r, 'Cancel')) return;
      notice(r.status === 202 ? `Cancelling job ${String(r.json.cancelling).slice(0, 8)}.` : `Cancel: ${errorText(r)}`, r.status === 202 ? 'info' : 'error');
    })();
  });
  const useToken = () => {
    const input = $('token');
    state.token = input.value.trim();
    // The token stays in this module's variable only; the field is cleared.
    input.value = '';
    setTokenState(state.token ? 'set' : 'none');
    notice(state.token ? 'Admin token set for this page (kept in memory only; reloading the page forgets it).' : '');
    startEvents();
    void tick();
  };
  $('token-use').addEventListener('click', useToken);
  $('token').addEventListener('keydown', (e) => {
    if (e.key === 'Enter') useToken();
  });
  $('token-forget').addEventListener('click', () => {
    state.token = '';
    state.shards = null;
    state.job = null;
    stopEvents();
    setTokenState('none');
    notice('Admin token forgotten: the page is read-only.');
    drawMove();
    void tick();
  });
}

if (typeof document !== 'undefined') {
  wireActions();
  drawMove();
  loop();
}
