// Room for the values one answer frame reads from LMDB. getBinaryFast hands
// out a view that the next read overwrites, so a GET's value must be copied
// out before the frame's next read; copied into a fresh Buffer, each value
// above 4 KiB was an allocation outside the V8 heap of its own, and their
// churn drove V8's major collections. An arena is one buffer the values of a
// frame are copied into one after another; once the frame is encoded (the
// values copied into it) the arena is reset and serves the next frame.
//
// Views handed out stay valid until reset(): when the buffer is full a larger
// one takes over, and the earlier views keep the old one alive.

/** The first buffer's size. */
const INITIAL_BYTES = 64 * 1024;
/** A buffer grown beyond this is dropped at reset, not kept for the next frame. */
const KEEP_MAX_BYTES = 4 * 1024 * 1024;

export class ValueArena {
  #buf: Buffer | undefined;
  #used = 0;

  /** `n` bytes for the caller to fill, valid until reset(). */
  take(n: number): Buffer {
    let b = this.#buf;
    if (!b || this.#used + n > b.length) {
      b = this.#buf = Buffer.allocUnsafeSlow(Math.max(n, b ? b.length * 2 : INITIAL_BYTES));
      this.#used = 0;
    }
    const start = this.#used;
    this.#used = start + n;
    return b.subarray(start, start + n);
  }

  /** Every view handed out is dead: the room is reused. */
  reset(): void {
    this.#used = 0;
    if (this.#buf && this.#buf.length > KEEP_MAX_BYTES) this.#buf = undefined;
  }
}

/** Arenas free for the next frame; at most `max` are kept. */
export class ArenaPool {
  readonly #free: ValueArena[] = [];
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  take(): ValueArena {
    return this.#free.pop() ?? new ValueArena();
  }

  give(a: ValueArena): void {
    a.reset();
    if (this.#free.length < this.#max) this.#free.push(a);
  }
}
