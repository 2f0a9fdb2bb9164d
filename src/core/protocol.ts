// Router <-> shard wire protocol. A frame is a 4-byte big-endian length
// followed by a msgpack body. A request frame carries an array of requests; the
// shard answers it with one frame holding the responses, matched by id and
// possibly in any order. All requests for one shard queued in the same
// event-loop turn travel in one frame (see shard-client.ts). Pure: no I/O.
import { Packr } from 'msgpackr';
import { kvError, type ErrorCode } from './errors.js';

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
  purge: { req: { ranges: PointRange[] }; res: { purged: number } };
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

export const FRAME_HEADER_BYTES = 4;

// Records off: each frame must decode on its own in any peer process.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true });

export function encodeFrame(body: unknown): Buffer {
  const payload = packr.pack(body);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  frame.writeUInt32BE(payload.length, 0);
  payload.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

/** The encoded size of one request inside a frame, for splitting big batches. */
export function encodedSize(body: unknown): number {
  return packr.pack(body).length;
}

/**
 * Incremental frame decoder for a byte stream. Refuses a frame larger than
 * `maxFrameBytes` before buffering it, so a bad peer cannot make us allocate.
 */
export class FrameDecoder {
  #maxFrameBytes: number;
  #chunks: Buffer[] = [];
  #buffered = 0;

  constructor(maxFrameBytes: number) {
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Bytes received and not yet decoded (part of a frame). */
  get buffered(): number {
    return this.#buffered;
  }

  /** Change the largest frame accepted from now on (e.g. once a peer has authenticated). */
  setMaxFrameBytes(n: number): void {
    this.#maxFrameBytes = n;
  }

  /** Feed bytes; returns the decoded frame bodies now complete. Throws KV_ERR_FRAME_TOO_LARGE / KV_ERR_BAD_FRAME. */
  push(chunk: Buffer): unknown[] {
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    const out: unknown[] = [];
    while (this.#buffered >= FRAME_HEADER_BYTES) {
      let head = this.#chunks[0]!;
      if (head.length < FRAME_HEADER_BYTES) {
        head = Buffer.concat(this.#chunks);
        this.#chunks = [head];
      }
      const len = head.readUInt32BE(0);
      if (len > this.#maxFrameBytes) throw kvError('KV_ERR_FRAME_TOO_LARGE', len, this.#maxFrameBytes);
      const total = FRAME_HEADER_BYTES + len;
      if (this.#buffered < total) break;
      if (head.length < total) {
        head = Buffer.concat(this.#chunks);
        this.#chunks = [head];
      }
      const body = head.subarray(FRAME_HEADER_BYTES, total);
      try {
        out.push(packr.unpack(body));
      } catch (err) {
        throw kvError('KV_ERR_BAD_FRAME', (err as Error).message);
      }
      if (head.length === total) this.#chunks.shift();
      else this.#chunks[0] = head.subarray(total);
      this.#buffered -= total;
    }
    return out;
  }
}
