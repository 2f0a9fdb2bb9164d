// CPU accounting from /proc (Linux): utime + stime of a process, in clock
// ticks, read before and after a run and divided by the requests served.
// A tick is 1/CLK_TCK s (usually 10 ms), so runs should last seconds, not
// milliseconds, for the per-request figures to mean anything.
import { readFileSync, readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

export const CLK_TCK: number = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return r.status === 0 && Number.isInteger(n) && n > 0 ? n : 100;
})();

export const US_PER_TICK = 1e6 / CLK_TCK;

interface ProcStat {
  readonly ppid: number;
  /** utime + stime in clock ticks. */
  readonly ticks: number;
  /** stime alone (kernel: syscalls, network stack, page faults). */
  readonly sysTicks: number;
}

/** proc(5): fields after the parenthesised comm (which may itself hold spaces). */
export function readStat(pid: number): ProcStat | undefined {
  let raw: string;
  try {
    raw = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const rest = raw.slice(raw.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
  const ppid = Number(rest[1]);
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return { ppid, ticks: utime + stime, sysTicks: stime };
}

/**
 * Live child pids of a process: the kernel's children list when it has one
 * (one small read), else a scan of /proc. Benchmarks call this while the load
 * generator runs in the same process, so it must not stall the event loop.
 */
export function childrenOf(pid: number): number[] {
  try {
    const raw = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return raw === ''
      ? []
      : raw
          .split(/\s+/)
          .map(Number)
          .sort((a, b) => a - b);
  } catch {
    // No children file on this kernel: scan.
  }
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = readStat(Number(name));
    if (s?.ppid === pid) out.push(Number(name));
  }
  return out.sort((a, b) => a - b);
}

/** Busy and total jiffies of the whole machine (first line of /proc/stat). */
export function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already in user)
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  return { busy: total - idle, total };
}

/** A named group of processes whose CPU is summed, e.g. all router workers. */
export interface Tier {
  readonly name: string;
  pids(): number[];
}

export interface TierSample {
  readonly ticks: Map<number, { ticks: number; sysTicks: number }>;
}

export function sampleTier(t: Tier): TierSample {
  const ticks = new Map<number, { ticks: number; sysTicks: number }>();
  for (const pid of t.pids()) {
    const s = readStat(pid);
    if (s) ticks.set(pid, { ticks: s.ticks, sysTicks: s.sysTicks });
  }
  return { ticks };
}

export interface TierUsage {
  /** CPU time in microseconds over the interval, summed over the tier's pids. */
  readonly cpuUs: number;
  /** The kernel-mode part of cpuUs. */
  readonly sysUs: number;
  /** pids present at the start but gone at the end: their last slice is lost. */
  readonly lost: number[];
}

export function tierUsage(t: Tier, before: TierSample): TierUsage {
  return usageBetween(before, sampleTier(t));
}

/** CPU a tier spent between two samples taken earlier. */
export function usageBetween(before: TierSample, after: TierSample): TierUsage {
  let ticks = 0;
  let sys = 0;
  const lost: number[] = [];
  for (const [pid, b] of before.ticks) {
    const a = after.ticks.get(pid);
    if (a === undefined) {
      lost.push(pid);
    } else {
      ticks += a.ticks - b.ticks;
      sys += a.sysTicks - b.sysTicks;
    }
  }
  // A process that appeared during the run (e.g. a respawned worker) counts from zero.
  for (const [pid, a] of after.ticks) {
    if (before.ticks.has(pid)) continue;
    ticks += a.ticks;
    sys += a.sysTicks;
  }
  return { cpuUs: ticks * US_PER_TICK, sysUs: sys * US_PER_TICK, lost };
}
