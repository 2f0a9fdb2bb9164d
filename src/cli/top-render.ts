// `kv top`'s snapshot as lines of text: the header, the shards, the router
// hosts and the running move. Each line carries a style that the live view
// turns into colour after cutting the line to the terminal's width; --once
// prints the text alone.
import { fmtPacing, fmtSecs } from './rebalance-view.js';
import type { TopSnapshot } from './top-model.js';

export type Style = 'plain' | 'title' | 'head' | 'error' | 'late' | 'down' | 'dim';
export interface Line {
  text: string;
  style: Style;
}

const DASH = '-';
const num = (v: number | null, digits = 0) => (v === null || !Number.isFinite(v) ? DASH : v.toFixed(digits));
/** A rate: whole numbers from 10 up, one decimal below. */
const rate = (v: number | null) => (v === null ? DASH : v >= 10 ? v.toFixed(0) : v.toFixed(1));
/** Milliseconds: two decimals below 10 ms, one below 100, none above. */
const msec = (v: number | null) => (v === null ? DASH : v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0));

export function fmtBytes(n: number | null): string {
  if (n === null) return DASH;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

const age = (ms: number | null) => (ms === null ? DASH : `${(ms / 1000).toFixed(1)}s`);

const pad = (s: string, w: number) => s.padEnd(w);
const lpad = (s: string, w: number) => s.padStart(w);

export function renderSnapshot(s: TopSnapshot, o: { live: boolean; intervalMs: number }): Line[] {
  const lines: Line[] = [];
  const time = s.at.replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  lines.push({
    text: `kv top  router ${s.router}  epoch ${s.epoch ?? DASH}  shards ${s.shardCount ?? DASH}  ${time}${o.live ? '  (q quits)' : ''}`,
    style: 'title',
  });
  for (const e of s.errors) lines.push({ text: `! ${e}${o.live ? `; retrying every ${(o.intervalMs / 1000).toFixed(1)} s` : ''}`, style: 'error' });
  lines.push({ text: '', style: 'plain' });

  const shardIdW = Math.max(8, ...s.shards.map((x) => x.id.length));
  lines.push({
    text: `${pad('shard', shardIdW)}  ${pad('state', 9)} ${lpad('weight', 6)} ${lpad('share', 6)} ${lpad('records', 10)} ${lpad('bytes', 10)} ${lpad('ops/s', 8)} ${lpad('p99 ms', 7)} ${lpad('hb age', 7)}  health`,
    style: 'head',
  });
  if (s.shards.length === 0) lines.push({ text: '(no shards listed)', style: 'dim' });
  for (const x of s.shards) {
    const healthText = x.health === 'ok' ? 'ok' : `${x.health.toUpperCase()}${x.healthNote ? ` (${x.healthNote})` : ''}`;
    lines.push({
      text: `${pad(x.id, shardIdW)}  ${pad(x.state, 9)} ${lpad(num(x.weight, x.weight !== null && !Number.isInteger(x.weight) ? 2 : 0), 6)} ${lpad(`${(x.share * 100).toFixed(1)}%`, 6)} ${lpad(num(x.records), 10)} ${lpad(fmtBytes(x.bytes), 10)} ${lpad(rate(x.opsPerSec), 8)} ${lpad(msec(x.p99Ms), 7)} ${lpad(age(x.heartbeatAgeMs), 7)}  ${healthText}`,
      style: x.health === 'down' ? 'down' : x.health === 'late' ? 'late' : 'plain',
    });
  }
  lines.push({ text: '', style: 'plain' });

  const urlW = Math.max(22, ...s.routers.map((r) => r.url.length));
  lines.push({
    text: `${pad('router', urlW)}  ${lpad('req/s', 8)} ${lpad('p50 ms', 7)} ${lpad('p99 ms', 7)} ${lpad('4xx/s', 7)} ${lpad('5xx/s', 7)} ${lpad('in-flight', 9)} ${lpad('workers', 7)}`,
    style: 'head',
  });
  for (const r of s.routers) {
    lines.push({
      text: `${pad(r.url, urlW)}  ${lpad(rate(r.reqPerSec), 8)} ${lpad(msec(r.p50Ms), 7)} ${lpad(msec(r.p99Ms), 7)} ${lpad(rate(r.err4xxPerSec), 7)} ${lpad(rate(r.err5xxPerSec), 7)} ${lpad(num(r.inFlight), 9)} ${lpad(num(r.workers), 7)}${r.error ? '  (no answer)' : ''}`,
      style: r.error ? 'down' : 'plain',
    });
  }
  lines.push({ text: '', style: 'plain' });

  const m = s.move;
  if (!m) lines.push({ text: 'move: none running', style: 'dim' });
  else {
    lines.push({
      text: `move ${m.jobId.slice(0, 8)}: ${m.kind} ${m.shardId}, ${m.state}, ${m.keysDone}/${m.keysTotal} keys ${m.percent.toFixed(1)}%, ${Math.round(m.keysPerSec)} keys/s, ETA ${fmtSecs(m.etaSeconds)}`,
      style: 'head',
    });
    if (m.pacing) lines.push({ text: `  ${fmtPacing(m.pacing)}`, style: 'plain' });
  }
  return lines;
}
