// One persistent connection from a router worker to one shard. Requests queued
// in the same event-loop turn go out together as one frame (the design's main
// throughput lever), or as two when they mix reads and writes: the gets
// first, so that no read waits for a write's commit; responses are matched
// by id. At most maxInFlightPerShard requests are at the shard at a time;
// more wait here, in order (the router's admission control bounds how many).
// Every request has a deadline; a lost connection fails the requests it
// carried as "outcome unknown" and the requests it never sent as
// "unavailable, nothing written".
//
// Before any request the connection proves the cluster secret to the shard
// and checks the shard's proof (core/handshake.ts); an idle connection pings
// now and then so the shard's idle timeout never cuts it.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { backoffMs } from '../core/backoff.js';
import { HANDSHAKE_VERSION, isHello, newNonce, peerProof, proofMatches, shardProof } from '../core/handshake.js';
import {
  delWire,
  encodeFrame,
  FrameDecoder,
  getWire,
  OPS,
  putWire,
  TAGS,
  type Body,
  type Expected,
  type Op,
  type Outgoing,
  type Request,
  type Response,
  type ResultOf,
} from '../core/protocol.js';

/** The ops the forwarder sends per key. */
type KeyedOp = 'get' | 'put' | 'del';
import { fromWire, kvError, KvError } from '../core/errors.js';
import { parseAddr } from '../core/topology.js';

/** A get, as the forwarder builds it (positional) or as request() sends it. */
const isRead = (req: Request | unknown[]): boolean => (Array.isArray(req) ? req[0] === TAGS.GET : req.o === OPS.GET);

/** Backoff after failed connects: 50 ms doubling up to 1 s. */
const CONNECT_BACKOFF_BASE_MS = 50;
const CONNECT_BACKOFF_MAX_MS = 1000;

export interface ShardConnectionOptions {
  readonly requestTimeoutMs: number;
  /** Connect and handshake must be done within this. */
  readonly connectTimeoutMs: number;
  readonly maxInFlightPerShard: number;
  readonly maxFrameBytes: number;
  readonly clusterSecret: string;
  readonly dataTls: boolean;
  /** PEM file of the CA that signed the shards' certificates; empty = the system CAs. */
  readonly tlsCaFile: string;
  readonly dataPingIntervalMs: number;
}

/**
 * What went wrong with a connection, in words that name no address: these
 * reach clients inside 5xx messages.
 */
export function socketReason(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case undefined:
      return err.message; // one of ours (handshake, connect timeout), naming nothing internal
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'connection reset';
    case 'ETIMEDOUT':
      return 'connect timed out';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host name not found';
    default:
      return /TLS|CERT|SSL/.test(err.code) ? `TLS handshake failed (${err.code})` : `connection error (${err.code})`;
  }
}

/**
 * Bytes of the buffer a plain-TCP connection reads into, again and again
 * (net's `onread`): the decoder copies each frame out into one buffer of its
 * length, so a read costs no allocation of its own.
 */
const READ_BUFFER_BYTES = 64 * 1024;

/** Requests waiting here beyond the in-flight limit, as a multiple of it, before new ones are refused. */
const QUEUE_FACTOR = 4;
const CAS = new Map<string, Buffer>();
const caOf = (file: string): Buffer => {
  let ca = CAS.get(file);
  if (!ca) CAS.set(file, (ca = readFileSync(file)));
  return ca;
};

interface Pending {
  readonly id: number;
  /** As it goes into the frame: a request object, or a keyed request already positional. */
  readonly req: Request | unknown[];
  readonly resolve: (r: unknown) => void;
  readonly reject: (e: KvError) => void;
  readonly deadline: number;
  sent: boolean;
  /** A GET: it travels in read-only frames. */
  readonly read: boolean;
  /** performance.now() when its frame was written (with recording on). */
  sentAt: number;
}

/** Where a connection records its requests' outcomes, for metrics (router/request-metrics.ts). */
export interface ForwardRecorder {
  /** Each answered request: ms from its frame's write to the answer. */
  readonly latency: { observe(ms: number): void };
  /** Each request that did not succeed, by code. */
  error(code: string): void;
}

export class ShardConnection {
  readonly id: string;
  readonly addr: string;
  readonly #opts: ShardConnectionOptions;
  #socket: net.Socket | undefined;
  #connected = false;
  #closed = false;
  #nextId = 1;
  readonly #pending = new Map<number, Pending>();
  #queue: Pending[] = [];
  #flushScheduled = false;
  /** Bound once: scheduling a flush allocates no closure. */
  readonly #flushNow = (): void => this.#flush();
  /** Requests written to the shard and not answered yet. */
  #sent = 0;
  /**
   * Of those, the reads (GETs). While any is out, new reads wait in the
   * queue and go together in one frame once the shard has answered: under
   * load frames carry more requests (fewer syscalls and wakeups on both
   * sides), and an idle connection still sends a read at once. Writes are
   * not held: the shard's group commit already batches them, and holding
   * them would leave its commits idle between frames.
   */
  #readsOut = 0;
  #lastSendAt = 0;
  #pinger: NodeJS.Timeout | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** After a failed connect, requests fail fast until this time (backoff). */
  #retryAt = 0;
  #connectFailures = 0;
  #lastConnectError = '';
  /** Frames and requests sent, for stats. */
  readonly counters = { frames: 0, requests: 0 };
  readonly #rec: ForwardRecorder | undefined;

  constructor(id: string, addr: string, opts: ShardConnectionOptions, rec?: ForwardRecorder) {
    this.id = id;
    this.addr = addr;
    this.#opts = opts;
    this.#rec = rec;
  }

  /** Refuse a request before it is queued (counted as an error of this shard). */
  #refuse(err: KvError): Promise<never> {
    this.#rec?.error(err.code);
    return Promise.reject(err);
  }

  get inFlight(): number {
    return this.#pending.size;
  }

  /** Send one request; it travels in the next frame. Resolves with what the shard answers for its op. */
  request<O extends Op>(req: Outgoing<O>): Promise<ResultOf<O>> {
    // Every op's request is one member of the Request union.
    const i = this.#takeId();
    return this.#enqueue(i, { ...req, i } as unknown as Request);
  }

  /**
   * A keyed request routed at `epoch`, built in one fixed shape per op (no
   * spread of the caller's object): the forwarder's hot path.
   */
  keyed<O extends KeyedOp>(body: Body<O>, epoch: number): Promise<ResultOf<O>> {
    const i = this.#takeId();
    const b = body as Body<KeyedOp> & { v?: Uint8Array; ct?: string; x?: number; m?: Expected; n?: boolean };
    const req = b.o === 'get' ? getWire(i, epoch, b.k) : b.o === 'put' ? putWire(i, epoch, b.k, b.v!, b.ct, b.x, b.m, b.n) : delWire(i, epoch, b.k, b.m);
    return this.#enqueue(i, req);
  }

  #takeId(): number {
    const i = this.#nextId++;
    if (this.#nextId > 0x7fffffff) this.#nextId = 1;
    return i;
  }

  #enqueue<R>(id: number, full: Request | unknown[]): Promise<R> {
    if (this.#closed) return this.#refuse(kvError('KV_ERR_SHARD_UNAVAILABLE', this.id, 'connection closed'));
    if (!this.#socket && Date.now() < this.#retryAt) {
      return this.#refuse(kvError('KV_ERR_SHARD_UNAVAILABLE', this.id, this.#lastConnectError));
    }
    if (this.#pending.size >= this.#opts.maxInFlightPerShard * QUEUE_FACTOR) {
      return this.#refuse(kvError('KV_ERR_OVERLOADED', this.id, this.#opts.maxInFlightPerShard * QUEUE_FACTOR));
    }
    return new Promise<R>((resolve, reject) => {
      // The shard answers each op with that op's result (the wire is trusted here).
      const p: Pending = {
        id,
        req: full,
        resolve: resolve as (r: unknown) => void,
        reject,
        deadline: Date.now() + this.#opts.requestTimeoutMs,
        sent: false,
        read: isRead(full),
        sentAt: 0,
      };
      this.#pending.set(id, p);
      this.#queue.push(p);
      this.#ensureTimer();
      if (!this.#socket) this.#connect();
      this.#scheduleFlush();
    });
  }

  #connect(): void {
    const { host, port } = parseAddr(this.addr);
    // Over TLS the chunks are 'data' events (each a buffer of its own); in the clear, one read buffer per connection.
    const socket: net.Socket = this.#opts.dataTls
      ? tls.connect({ host, port, servername: net.isIP(host) ? '' : host, ...(this.#opts.tlsCaFile ? { ca: caOf(this.#opts.tlsCaFile) } : {}) })
      : net.connect({
          host,
          port,
          onread: { buffer: Buffer.allocUnsafeSlow(READ_BUFFER_BYTES), callback: (n: number, buf: Uint8Array): boolean => onChunk(buf as Buffer, n) },
        });
    this.#socket = socket;
    this.#connected = false;
    socket.setNoDelay(true);
    const decoder = new FrameDecoder(this.#opts.maxFrameBytes);
    const connectTimer = setTimeout(
      () => socket.destroy(new Error(`connect and handshake took over ${this.#opts.connectTimeoutMs} ms`)),
      this.#opts.connectTimeoutMs,
    );
    let lastError = 'connection refused';
    const nonce = newNonce();
    let shardNonce: Uint8Array | undefined;
    // The handshake: the shard speaks first (hello), we prove the secret, it proves it back.
    const handshake = (frame: unknown): void => {
      const f = frame as Record<string, unknown> | null;
      if (!shardNonce) {
        if (!isHello(frame)) return void socket.destroy(new Error('the peer did not greet like a shard'));
        if (frame.id !== this.id) return void socket.destroy(new Error(`this address is shard ${frame.id}, not ${this.id}`));
        shardNonce = frame.nonce;
        socket.write(encodeFrame({ auth: HANDSHAKE_VERSION, nonce, proof: peerProof(this.#opts.clusterSecret, this.id, shardNonce, nonce) }));
        return;
      }
      if (f?.['denied'] === HANDSHAKE_VERSION) return void socket.destroy(new Error(`the shard refused us: ${String(f['message'])}`));
      if (f?.['ok'] !== HANDSHAKE_VERSION || !proofMatches(f['proof'], shardProof(this.#opts.clusterSecret, this.id, shardNonce, nonce))) {
        return void socket.destroy(new Error('the shard could not prove the cluster secret'));
      }
      clearTimeout(connectTimer);
      this.#connected = true;
      this.#connectFailures = 0;
      this.#retryAt = 0;
      this.#startPinging();
      this.#flush();
    };
    /** Frames in `n` bytes of `chunk`; with n given, `chunk` is the read buffer, filled again after this returns. */
    const onChunk = (chunk: Buffer, n?: number): boolean => {
      let frames: unknown[];
      try {
        frames = n === undefined ? decoder.push(chunk) : decoder.push(chunk.subarray(0, n), true);
      } catch (err) {
        socket.destroy(err as Error);
        return false;
      }
      // One clock read per chunk of answers, not one per request.
      const now = this.#rec && frames.length > 0 ? performance.now() : 0;
      for (const frame of frames) {
        if (!this.#connected) {
          handshake(frame);
          continue;
        }
        for (const res of frame as Response[]) this.#settle(res, now);
      }
      return true;
    };
    if (this.#opts.dataTls) socket.on('data', (chunk: Buffer) => void onChunk(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      lastError = socketReason(err);
    });
    socket.once('close', () => {
      clearTimeout(connectTimer);
      const wasConnected = this.#connected;
      if (this.#socket === socket) {
        this.#socket = undefined;
        this.#connected = false;
        this.#stopPinging();
      }
      if (!wasConnected) {
        // Back off so a dead shard costs one connect attempt per window,
        // not one per request.
        this.#connectFailures++;
        this.#lastConnectError = `${lastError}; next attempt after a short backoff`;
        this.#retryAt = Date.now() + backoffMs(this.#connectFailures - 1, CONNECT_BACKOFF_BASE_MS, CONNECT_BACKOFF_MAX_MS);
      }
      this.#failAll(wasConnected ? 'connection lost' : lastError);
    });
  }

  /** While the connection is idle, a ping now and then keeps the shard from closing it. */
  #startPinging(): void {
    this.#stopPinging();
    const every = this.#opts.dataPingIntervalMs;
    if (every <= 0) return;
    this.#lastSendAt = Date.now();
    this.#pinger = setInterval(() => {
      if (this.#connected && this.#pending.size === 0 && Date.now() - this.#lastSendAt >= every) {
        this.request({ o: 'ping', e: 0 }).catch(() => undefined);
      }
    }, every);
    this.#pinger.unref();
  }

  #stopPinging(): void {
    if (this.#pinger) clearInterval(this.#pinger);
    this.#pinger = undefined;
  }

  #settle(res: Response, now: number): void {
    const p = this.#pending.get(res.i);
    if (!p) return; // already timed out
    this.#pending.delete(res.i);
    if (p.sent) {
      this.#sent--;
      if (p.read) this.#readsOut--;
    }
    if (this.#queue.length > 0) this.#scheduleFlush();
    const rec = this.#rec;
    if (rec && p.sent) rec.latency.observe(now - p.sentAt);
    if ('err' in res) {
      const err = fromWire(res.err);
      rec?.error(err.code);
      p.reject(err);
    } else p.resolve(res.r);
  }

  #fail(p: Pending, err: KvError): void {
    this.#rec?.error(err.code);
    p.reject(err);
  }

  #failAll(why: string): void {
    for (const [id, p] of this.#pending) {
      this.#pending.delete(id);
      this.#fail(p, p.sent ? kvError('KV_ERR_OUTCOME_UNKNOWN', this.id) : kvError('KV_ERR_SHARD_UNAVAILABLE', this.id, why));
    }
    this.#queue = [];
    this.#sent = 0;
    this.#readsOut = 0;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(this.#flushNow);
  }

  /** Send what is queued, as far as the in-flight limit allows. */
  #flush(): void {
    this.#flushScheduled = false;
    if (!this.#socket || !this.#connected || this.#queue.length === 0) return;
    const room = this.#opts.maxInFlightPerShard - this.#sent;
    if (room <= 0) return;
    // Requests that timed out while queued are gone from #pending: drop
    // them in place (no copy of the queue). While reads are out, the reads
    // queued since stay queued (see #readsOut); the rest goes.
    const holdReads = this.#readsOut > 0;
    const live = this.#queue;
    let held: Pending[] | undefined;
    let n = 0;
    for (let j = 0; j < live.length; j++) {
      const p = live[j]!;
      if (this.#pending.get(p.id) !== p) continue;
      if (holdReads && p.read) (held ??= []).push(p);
      else live[n++] = p;
    }
    live.length = n;
    if (n <= room) {
      this.#queue = held ?? [];
    } else {
      this.#queue = held ? live.slice(room).concat(held) : live.slice(room);
      live.length = room;
    }
    if (n > 0) this.#send(live);
  }

  /**
   * The shard answers a frame once all of it is done, so a read sharing a
   * frame with a write would wait for that write's commit (and fsync). When
   * a batch mixes them, the reads go first in a frame of their own; the
   * rest (writes, and every other op) follow in a second frame.
   */
  #send(batch: Pending[]): void {
    let reads = 0;
    for (const p of batch) if (p.read) reads++;
    if (reads === 0 || reads === batch.length) return this.#writeFrames(batch);
    const r = new Array<Pending>(reads);
    const w = new Array<Pending>(batch.length - reads);
    let a = 0;
    let b = 0;
    for (const p of batch) {
      if (p.read) r[a++] = p;
      else w[b++] = p;
    }
    this.#writeFrames(r);
    this.#writeFrames(w);
  }

  #writeFrames(batch: Pending[]): void {
    if (batch.length === 0) return;
    const reqs = new Array<Request | unknown[]>(batch.length);
    for (let j = 0; j < batch.length; j++) reqs[j] = batch[j]!.req;
    const frame = encodeFrame(reqs);
    if (frame.length - 4 > this.#opts.maxFrameBytes && batch.length > 1) {
      const mid = batch.length >> 1;
      this.#writeFrames(batch.slice(0, mid));
      this.#writeFrames(batch.slice(mid));
      return;
    }
    const at = this.#rec ? performance.now() : 0;
    for (const p of batch) {
      p.sent = true;
      p.sentAt = at;
      if (p.read) this.#readsOut++;
    }
    this.#sent += batch.length;
    this.#lastSendAt = Date.now();
    this.counters.frames++;
    this.counters.requests += batch.length;
    this.#socket!.write(frame);
  }

  #ensureTimer(): void {
    if (this.#timer) return;
    const tick = Math.max(5, Math.min(100, this.#opts.requestTimeoutMs >> 2));
    this.#timer = setInterval(() => this.#expire(), tick);
    this.#timer.unref();
  }

  #expire(): void {
    const now = Date.now();
    // Map order is request order and every request gets the same timeout,
    // so the first unexpired entry ends the scan.
    for (const [id, p] of this.#pending) {
      if (p.deadline > now) break;
      this.#pending.delete(id);
      if (p.sent) {
        this.#sent--;
        if (p.read) this.#readsOut--;
        this.#fail(p, kvError('KV_ERR_TIMEOUT', this.id, this.#opts.requestTimeoutMs));
      } else {
        // Never sent: nothing was written. A read held behind reads the
        // shard has not answered timed out like them.
        const full = this.#sent >= this.#opts.maxInFlightPerShard;
        this.#fail(
          p,
          !this.#connected
            ? kvError('KV_ERR_SHARD_UNAVAILABLE', this.id, 'connect timed out')
            : p.read && !full
              ? kvError('KV_ERR_TIMEOUT', this.id, this.#opts.requestTimeoutMs)
              : kvError('KV_ERR_OVERLOADED', this.id, this.#opts.maxInFlightPerShard),
        );
      }
    }
    // Reads held behind reads that timed out can go now.
    if (this.#queue.length > 0) this.#scheduleFlush();
    if (this.#pending.size === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  close(): void {
    this.#closed = true;
    this.#stopPinging();
    this.#socket?.destroy();
    this.#failAll('connection closed');
    if (this.#timer) clearInterval(this.#timer);
  }
}
