// Consistent hashing on the `hashring` package (ketama: md5, virtual nodes,
// weights). The ring is built only from stable shard ids, sorted, so every
// worker on every host computes the same ring from the same topology.
// Pure: no I/O.
import { md5Point } from './md5-point.js';
import { createRequire } from 'node:module';
import { kvError } from './errors.js';

const require = createRequire(import.meta.url);
// hashring ships CommonJS without types; this is the subset we use.
interface HashRingNode {
  value: number;
  server: string;
}
interface HashRingInstance {
  get(key: string): string | undefined;
  find(point: number): number;
  ring: HashRingNode[];
  size: number;
}
type HashRingCtor = new (servers: Record<string, { weight: number }>, algorithm: string, options: Record<string, unknown>) => HashRingInstance;
const HashRing = require('hashring') as HashRingCtor;

/** hashring's default: 40 virtual nodes per server before weighting, 4 points each. */
export const VNODES_PER_SHARD = 40;
export const POINTS_PER_VNODE = 4;

/** The largest ring point: points are unsigned 32-bit integers. */
export const POINT_MAX = 0xffffffff;

/** Inclusive range of ring points [lo, hi]. */
export interface PointRange {
  readonly lo: number;
  readonly hi: number;
}

export interface RingMember {
  readonly id: string;
  readonly weight: number;
}

/**
 * The 32-bit ring position of a key, computed exactly as hashring does
 * (first four bytes of md5, little end first). Shards store it beside the key
 * so that a moving arc is a range scan. It runs on every request on both
 * sides, so it is MD5 in JavaScript (md5-point.ts), not a node:crypto call.
 */
export function keyPoint(key: string): number {
  return md5Point(key);
}

/**
 * hashring gives each shard floor(weight / total * 40 * n) virtual nodes and
 * silently gives a shard zero points when that rounds down to 0. Refuse such a
 * member list instead of building a ring where a shard owns nothing.
 */
export function validateMembers(members: readonly RingMember[]): void {
  const seen = new Set<string>();
  let total = 0;
  for (const m of members) {
    if (seen.has(m.id)) throw kvError('KV_ERR_BAD_TOPOLOGY', `shard ${m.id} is listed twice`);
    seen.add(m.id);
    if (typeof m.weight !== 'number' || !Number.isFinite(m.weight) || m.weight <= 0) {
      throw kvError('KV_ERR_BAD_WEIGHT', m.id, `must be a number above 0, got ${String(m.weight)}`);
    }
    total += m.weight;
  }
  for (const m of members) {
    const vnodes = Math.floor((m.weight / total) * VNODES_PER_SHARD * members.length);
    if (vnodes < 1) {
      // Solve w / (rest + w) * 40n >= 1 for w: raising w raises the total too.
      const rest = total - m.weight;
      const min = rest / (VNODES_PER_SHARD * members.length - 1);
      throw kvError(
        'KV_ERR_BAD_WEIGHT',
        m.id,
        `weight ${m.weight} of a total ${total} gives it no ring points; the smallest usable weight here is about ${min.toPrecision(3)}`,
      );
    }
  }
}

/** Rings built lately, by member list: a topology change rebuilds only rings that changed. */
const RING_CACHE = new Map<string, Ring>();
const RING_CACHE_MAX = 16;

export class Ring {
  readonly members: readonly RingMember[];
  readonly #ring: HashRingInstance | undefined;

  /**
   * The ring of these members, shared with earlier calls for the same list.
   * Every process rebuilds its rings on each topology change (three or four
   * in a row during a rebalance); reusing them keeps that off the event loop.
   */
  static of(members: readonly RingMember[]): Ring {
    const key = JSON.stringify([...members].map((m) => [m.id, m.weight]).sort((a, b) => (a[0]! < b[0]! ? -1 : a[0]! > b[0]! ? 1 : 0)));
    let r = RING_CACHE.get(key);
    if (r) {
      // Most recently used last.
      RING_CACHE.delete(key);
    } else {
      r = new Ring(members);
      if (RING_CACHE.size >= RING_CACHE_MAX) RING_CACHE.delete(RING_CACHE.keys().next().value!);
    }
    RING_CACHE.set(key, r);
    return r;
  }

  constructor(members: readonly RingMember[]) {
    validateMembers(members);
    this.members = [...members].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    if (this.members.length === 0) {
      this.#ring = undefined;
      return;
    }
    const servers: Record<string, { weight: number }> = {};
    for (const m of this.members) servers[m.id] = { weight: m.weight };
    this.#ring = new HashRing(servers, 'md5', { 'max cache size': 0 });
  }

  get empty(): boolean {
    return this.#ring === undefined;
  }

  has(id: string): boolean {
    return this.members.some((m) => m.id === id);
  }

  /**
   * The owning shard id, or undefined when the ring is empty. Goes through
   * keyPoint rather than hashring's get(): its lookup cache is a plain object,
   * so keys such as "__proto__" would poison it (and Object.prototype).
   */
  ownerOf(key: string): string | undefined {
    return this.#ring ? this.ownerOfPoint(keyPoint(key)) : undefined;
  }

  /** Owner of a ring position (same rule as hashring: first point >= p, wrapping). */
  ownerOfPoint(point: number): string | undefined {
    const r = this.#ring;
    if (!r) return undefined;
    return r.ring[r.find(point)]?.server;
  }

  /** Sorted (point, shard) pairs: the arcs of the ring. Used for plans and shares. */
  points(): ReadonlyArray<{ readonly point: number; readonly id: string }> {
    return (this.#ring?.ring ?? []).map((n) => ({ point: n.value, id: n.server }));
  }

  /** Fraction of the 32-bit key space each shard owns. */
  shares(): Record<string, number> {
    const pts = this.points();
    const out: Record<string, number> = {};
    for (const m of this.members) out[m.id] = 0;
    if (pts.length === 0) return out;
    const SPACE = 2 ** 32;
    let prev = pts[pts.length - 1]!.point - SPACE;
    for (const p of pts) {
      out[p.id] = (out[p.id] ?? 0) + (p.point - prev) / SPACE;
      prev = p.point;
    }
    return out;
  }
}
