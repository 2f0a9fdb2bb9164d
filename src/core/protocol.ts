// Router <-> shard wire protocol. A frame is a 4-byte big-endian length
// followed by a msgpack body. A request frame carries an array of requests; the
// shard answers it with one frame holding the responses, matched by id and
// possibly in any order. All requests for one shard queued in the same
// event-loop turn travel in one frame, or in two (gets, then the rest) when
// they mix reads and writes (see shard-client.ts). Pure: no I/O.
//
// The hot ops (get, put, del) and their answers travel positionally: a msgpack
// array whose first element is a tag (TAGS below), the fields at fixed
// positions and the value as raw bytes. Arrays decode without building a map
// per request (one object shape per op instead of whatever keys a peer sent),
// and encode without writing every field name. Every other request and
// answer (handshake, ping, stats, list, rebalancing ops, errors) is a map.
// docs/architecture.md, "Wire protocol", has the layouts.
import { Packr, RESERVE_START_SPACE } from 'msgpackr';
import { kvError, type ErrorCode } from './errors.js';
import { FRAME_HEADER_BYTES, frameBuffer, writeArrayFrame } from './frame-writer.js';

import type { PointRange } from './ring.js';

export const OPS = {
  GET: 'get',
  PUT: 'put',
  DEL: 'del',
  PING: 'ping',
  STATS: 'stats',
  /** The stored record of one key (tombstones included) as a moved-records blob, for pulling a moving key ahead of the stream. */
  FETCH: 'fetch',
  // Rebalancing ops (coordinator -> shard); not keyed, not ring-checked per key.
  /** Wait until every write accepted so far has committed; answers the shard's epoch. */
  SYNC: 'sync',
  /** Records in one point range after a cursor. */
  SCAN: 'scan',
  /** Count records in point ranges. */
  COUNT: 'count',
  /** Put-if-newer of moved records. */
  IMPORT: 'import',
  /** Delete moved ranges after commit. */
  PURGE: 'purge',
  /** Leave the registry and stop (after the shard was drained out of the ring). */
  RETIRE: 'retire',
} as const;

/** A value as a shard returns it. */
export interface StoredValue {
  v: Uint8Array;
  ct: string;
  ver: number;
  /** Absolute expiry in ms, 0 = none. */
  x: number;
  /** Topology epoch the write was accepted at. */
  e?: number | undefined;
}

/** What a get answers: a value, a tombstone marker, or null for a key never seen. */
export type GetResult = StoredValue | { deleted: true; ver: number; e?: number | undefined } | null;

/** What a shard's SCAN answers: moved records packed as one blob, with counts. */
export interface ScanResult {
  packed: Uint8Array;
  /** Records in the blob (tombstones included). */
  n: number;
  /** Live values among them, and their value bytes. */
  live: number;
  bytes: number;
  /** Last [point, key] returned, when the range may hold more; the cursor of the next SCAN. */
  next: [number, string] | undefined;
}

/** Expected version: a number, or '*' (must exist). */
export type Expected = number | '*';

/**
 * Every op with the fields its request carries beside `i` (id), `o` (op) and
 * `e` (epoch the sender routed with), and what the shard answers.
 */
export interface OpMap {
  get: { req: { k: string }; res: GetResult };
  put: {
    req: {
      k: string;
      /** Value bytes. */
      v: Uint8Array;
      /** Content type. */
      ct: string;
      /** Absolute expiry in ms since the Unix epoch, 0 = none. */
      x: number;
      /** Expected version. */
      m?: Expected;
      /** Create only: must not exist. */
      n?: boolean;
    };
    res: { ver: number };
  };
  del: { req: { k: string; m?: Expected }; res: { deleted: boolean; ver: number } };
  ping: { req: object; res: { epoch: number; id: string } };
  /**
   * Records whose key starts with `prefix` and comes after `after`, in key
   * order (UTF-8 bytes), tombstones included (deleted 1), expired values left
   * out: [key, write epoch, version, expiry, deleted]. `more`: there may be more.
   */
  list: {
    req: { prefix: string; after?: string | undefined; limit: number };
    res: { entries: Array<[key: string, e: number, ver: number, x: number, deleted: 0 | 1]>; more: boolean };
  };
  /** Records (live, tombstones and unswept expired ones) and the bytes LMDB uses for them. */
  stats: { req: object; res: { records: number; bytes: number } };
  fetch: { req: { k: string }; res: Uint8Array | null };
  /** `me`: the epoch the shard must have reached (it re-reads its topology when behind). */
  sync: { req: { me: number }; res: { epoch: number } };
  scan: {
    req: {
      /** One range: ranges[0]. */
      ranges: PointRange[];
      /** Cursor: last [point, key] already returned. */
      after?: [number, string] | undefined;
      /** Most records / value bytes in one answer. */
      limit: number;
      maxBytes: number;
    };
    res: ScanResult;
  };
  count: { req: { ranges: PointRange[] }; res: { keys: number; bytes: number; estimated: boolean } };
  /** `me`: epoch of the migration the records belong to; `packed`: moved records (layout in shard/record.ts). */
  import: { req: { me: number; packed: Uint8Array }; res: { written: number; received: number } };
  /** `limit`: most records this call deletes (none: all); `more`: it stopped at the limit, so the ranges may hold more. */
  purge: { req: { ranges: PointRange[]; limit?: number | undefined }; res: { purged: number; more: boolean } };
  retire: { req: object; res: { retiring: true } };
}

export type Op = keyof OpMap;

/** The op and its own fields: what a caller builds. */
export type Body<O extends Op> = { o: O } & OpMap[O]['req'];
/** A request before the connection gives it an id: the body and the epoch it was routed with. */
export type Outgoing<O extends Op> = Body<O> & { e: number };
/** A request of one op as it travels. */
export type RequestOf<O extends Op> = Outgoing<O> & { i: number };
/** Any request. */
export type Request = { [O in Op]: RequestOf<O> }[Op];
/** What a request of op O answers. */
export type ResultOf<O extends Op> = OpMap[O]['res'];

export interface ErrorBody {
  code: ErrorCode;
  message: string;
  [k: string]: unknown;
}

export type Response = { i: number; r: unknown } | { i: number; err: ErrorBody };

export { FRAME_HEADER_BYTES };

/**
 * First element of a positional request or answer. Requests:
 *   GET [1, i, e, k]   PUT [2, i, e, k, v, ct, x, m, n]   DEL [3, i, e, k, m]
 * Answers (errors stay maps {i, err}):
 *   get, no record [16, i]   get, value [17, i, v, ct, ver, x, e]   get, tombstone [18, i, ver, e]
 *   put [19, i, ver]   del [20, i, deleted, ver]
 * Absent optional fields (ct, x, m, n) are nil.
 */
export const TAGS = {
  GET: 1,
  PUT: 2,
  DEL: 3,
  GET_NONE: 16,
  GET_VALUE: 17,
  GET_TOMBSTONE: 18,
  PUT_DONE: 19,
  DEL_DONE: 20,
} as const;

/** Array length of each positional layout, by tag. */
const ARITY: Readonly<Record<number, number>> = { 1: 4, 2: 9, 3: 5, 16: 2, 17: 7, 18: 4, 19: 3, 20: 4 };

/** The op of a positional request tag, or undefined. */
export function opOfTag(tag: unknown): 'get' | 'put' | 'del' | undefined {
  return tag === TAGS.GET ? OPS.GET : tag === TAGS.PUT ? OPS.PUT : tag === TAGS.DEL ? OPS.DEL : undefined;
}

/** Answers of the hot ops as the shard builds them; encodeFrame sends them positionally. */
export class GetAnswer {
  constructor(
    readonly i: number,
    readonly r: GetResult,
  ) {}
}
export class PutAnswer {
  constructor(
    readonly i: number,
    readonly r: { ver: number },
  ) {}
}
export class DelAnswer {
  constructor(
    readonly i: number,
    readonly r: { deleted: boolean; ver: number },
  ) {}
}

// Records off: each frame must decode on its own in any peer process.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });

const nil = (v: unknown): unknown => (v === undefined ? null : v);
const opt = (v: unknown): unknown => (v === null ? undefined : v);

/**
 * The fields a positional request carries. A request with any other field,
 * or with an optional field set to null (nil means absent in a positional
 * request), stays a map, so the shard sees it as sent and refuses it.
 */
const HOT_FIELDS: Readonly<Record<string, ReadonlySet<string>>> = {
  get: new Set(['i', 'o', 'e', 'k']),
  put: new Set(['i', 'o', 'e', 'k', 'v', 'ct', 'x', 'm', 'n']),
  del: new Set(['i', 'o', 'e', 'k', 'm']),
};
const OPTIONAL = new Set(['ct', 'x', 'm', 'n']);

function positional(o: Record<string, unknown>, allowed: ReadonlySet<string>): boolean {
  for (const f in o) if (!allowed.has(f) || (o[f] === null && OPTIONAL.has(f))) return false;
  return true;
}

/**
 * Keyed requests built straight in their positional layout (the router's
 * hot path): no object to build and then convert. Absent optional fields
 * are nil, as on the wire.
 */
export function getWire(i: number, e: number, k: string): unknown[] {
  return [TAGS.GET, i, e, k];
}
export function putWire(
  i: number,
  e: number,
  k: string,
  v: Uint8Array,
  ct: string | undefined,
  x: number | undefined,
  m: Expected | undefined,
  n: boolean | undefined,
): unknown[] {
  return [TAGS.PUT, i, e, k, v, nil(ct), nil(x), nil(m), nil(n)];
}
export function delWire(i: number, e: number, k: string, m: Expected | undefined): unknown[] {
  return [TAGS.DEL, i, e, k, nil(m)];
}

/** One element of a frame body as it goes on the wire. */
function toWireItem(item: unknown): unknown {
  // Already positional (getWire, putWire, delWire).
  if (Array.isArray(item)) return item;
  if (item instanceof GetAnswer) {
    const r = item.r;
    if (r === null) return [TAGS.GET_NONE, item.i];
    if ('deleted' in r) return [TAGS.GET_TOMBSTONE, item.i, r.ver, nil(r.e)];
    return [TAGS.GET_VALUE, item.i, r.v, r.ct, r.ver, r.x, nil(r.e)];
  }
  if (item instanceof PutAnswer) return [TAGS.PUT_DONE, item.i, item.r.ver];
  if (item instanceof DelAnswer) return [TAGS.DEL_DONE, item.i, item.r.deleted, item.r.ver];
  if (typeof item !== 'object' || item === null) return item;
  const q = item as Record<string, unknown>;
  switch (q['o']) {
    case OPS.GET:
      return positional(q, HOT_FIELDS['get']!) ? [TAGS.GET, q['i'], q['e'], q['k']] : item;
    case OPS.PUT:
      return positional(q, HOT_FIELDS['put']!) ? [TAGS.PUT, q['i'], q['e'], q['k'], q['v'], nil(q['ct']), nil(q['x']), nil(q['m']), nil(q['n'])] : item;
    case OPS.DEL:
      return positional(q, HOT_FIELDS['del']!) ? [TAGS.DEL, q['i'], q['e'], q['k'], nil(q['m'])] : item;
    default:
      return item;
  }
}

/**
 * A positional element as the object it stands for, one shape per layout.
 * Types are not checked here (the shard checks every field of a request,
 * op-checks.ts); an array of unknown tag or wrong length is left as it is,
 * for the shard to refuse that request alone.
 */
function fromWireItem(a: unknown[]): unknown {
  const tag = a[0];
  if (typeof tag !== 'number' || ARITY[tag] !== a.length) return a;
  switch (tag) {
    case TAGS.GET:
      return { i: a[1], o: OPS.GET, e: a[2], k: a[3] };
    case TAGS.PUT:
      return { i: a[1], o: OPS.PUT, e: a[2], k: a[3], v: a[4], ct: opt(a[5]), x: opt(a[6]), m: opt(a[7]), n: opt(a[8]) };
    case TAGS.DEL:
      return { i: a[1], o: OPS.DEL, e: a[2], k: a[3], m: opt(a[4]) };
    case TAGS.GET_NONE:
      return { i: a[1], r: null };
    case TAGS.GET_VALUE:
      return { i: a[1], r: { v: a[2], ct: a[3], ver: a[4], x: a[5], e: opt(a[6]) } };
    case TAGS.GET_TOMBSTONE:
      return { i: a[1], r: { deleted: true, ver: a[2], e: opt(a[3]) } };
    case TAGS.PUT_DONE:
      return { i: a[1], r: { ver: a[2] } };
    case TAGS.DEL_DONE:
      return { i: a[1], r: { deleted: a[2], ver: a[3] } };
    default:
      return a;
  }
}

function toWireBody(body: unknown): unknown {
  if (!Array.isArray(body)) return body;
  const out = new Array<unknown>(body.length);
  for (let j = 0; j < body.length; j++) out[j] = toWireItem(body[j]);
  return out;
}

/** A frame body as decoded: positional elements of an array body become objects, in place. */
function fromWireBody(body: unknown): unknown {
  if (!Array.isArray(body)) return body;
  for (let j = 0; j < body.length; j++) {
    const item: unknown = body[j];
    if (Array.isArray(item)) body[j] = fromWireItem(item);
  }
  return body;
}

/** msgpackr's bytes of one element, for what the frame writer does not encode itself. */
const packElement = (el: unknown): Uint8Array => packr.pack(el);

export function encodeFrame(body: unknown): Buffer {
  // Array bodies (every request and answer frame): one buffer of the frame's
  // exact length, values copied once (frame-writer.ts).
  if (Array.isArray(body)) return writeArrayFrame(toWireBody(body) as unknown[], packElement);
  // msgpackr leaves room for the length header in front of what it packs, so
  // the frame is its output as it is (a slice of its buffer that it never
  // writes over again), not a copy of it.
  const frame = packr.pack(body, RESERVE_START_SPACE | FRAME_HEADER_BYTES);
  frame.writeUInt32BE(frame.length - FRAME_HEADER_BYTES, 0);
  return frame;
}

/** The encoded size of one request inside a frame, for splitting big batches. */
export function encodedSize(body: unknown): number {
  return packr.pack(toWireItem(body)).length;
}

function decodeBody(body: Buffer): unknown {
  try {
    return fromWireBody(packr.unpack(body));
  } catch (err) {
    throw kvError('KV_ERR_BAD_FRAME', (err as Error).message);
  }
}

/**
 * Incremental frame decoder for a byte stream. Refuses a frame larger than
 * `maxFrameBytes` from its header, before buffering any of it, so a bad peer
 * cannot make us allocate.
 *
 * A frame whose body is all in one chunk is decoded where it lies (its byte
 * values are views of the chunk), unless the chunk is `transient` (a read
 * buffer the socket fills again): then, as for a frame that spans chunks,
 * the body is copied into room of its exact length (frameBuffer: a slice of
 * a slab, never handed out twice) once the header is in, and decoded from
 * there. Nothing of a transient chunk is kept or handed out after push()
 * returns.
 */
export class FrameDecoder {
  #maxFrameBytes: number;
  /** The body being filled, allocated at its full length. */
  #body: Buffer | undefined;
  #filled = 0;
  /** A length header split across chunks. */
  readonly #head = Buffer.alloc(FRAME_HEADER_BYTES);
  #headBytes = 0;

  constructor(maxFrameBytes: number) {
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Bytes held for a frame not yet complete (a partial body counts at the full length it is allocated at). */
  get buffered(): number {
    return this.#body ? this.#body.length : this.#headBytes;
  }

  /** Change the largest frame accepted from now on (e.g. once a peer has authenticated). */
  setMaxFrameBytes(n: number): void {
    this.#maxFrameBytes = n;
  }

  /** Feed bytes; returns the decoded frame bodies now complete. Throws KV_ERR_FRAME_TOO_LARGE / KV_ERR_BAD_FRAME. */
  push(chunk: Buffer, transient = false): unknown[] {
    const out: unknown[] = [];
    const n = chunk.length;
    let off = 0;
    for (;;) {
      const body = this.#body;
      if (body) {
        const take = Math.min(n - off, body.length - this.#filled);
        if (take > 0) chunk.copy(body, this.#filled, off, off + take);
        this.#filled += take;
        off += take;
        if (this.#filled < body.length) break;
        this.#body = undefined;
        out.push(decodeBody(body));
        continue;
      }
      if (off === n) break;
      let len: number;
      if (this.#headBytes > 0 || n - off < FRAME_HEADER_BYTES) {
        const take = Math.min(FRAME_HEADER_BYTES - this.#headBytes, n - off);
        chunk.copy(this.#head, this.#headBytes, off, off + take);
        this.#headBytes += take;
        off += take;
        if (this.#headBytes < FRAME_HEADER_BYTES) break;
        this.#headBytes = 0;
        len = this.#head.readUInt32BE(0);
      } else {
        len = chunk.readUInt32BE(off);
        off += FRAME_HEADER_BYTES;
      }
      if (len > this.#maxFrameBytes) throw kvError('KV_ERR_FRAME_TOO_LARGE', len, this.#maxFrameBytes);
      if (!transient && n - off >= len) {
        out.push(decodeBody(chunk.subarray(off, off + len)));
        off += len;
        continue;
      }
      this.#body = frameBuffer(len);
      this.#filled = 0;
    }
    return out;
  }
}
