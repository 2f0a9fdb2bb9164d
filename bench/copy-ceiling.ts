// The physical ceiling of a move on this machine: a plain LMDB-to-LMDB copy
// of as many records of the same size as a move carries, in one process: no
// network, no protocol, no checks. The source is filled first (not timed);
// the copy reads it in key order and writes the target with lmdb-js's
// batched asynchronous puts, with the shards' durability (noSync or synced
// commits).
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { open } from 'lmdb';

export interface CeilingResult {
  readonly records: number;
  readonly valueBytes: number;
  readonly batch: number;
  readonly noSync: boolean;
  readonly seconds: number;
  readonly keysPerSec: number;
  readonly mbPerSec: number;
}

const FILL_BATCH = 10_000;

/** A shard's record key: the 4-byte ring point, then the key. */
function recordKey(i: number): Buffer {
  const name = Buffer.from(`key-${String(i).padStart(7, '0')}`);
  const k = Buffer.allocUnsafe(4 + name.length);
  // Spread over the ring like hashed keys, so the copy reads in point order, not load order.
  k.writeUInt32BE((Math.imul(i, 2654435761) >>> 0) % 0xffffffff, 0);
  name.copy(k, 4);
  return k;
}

export async function measureCopyCeiling(o: { records: number; valueBytes: number; batch: number; noSync: boolean }): Promise<CeilingResult> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kv-ceiling-'));
  const mapSize = Math.max(1 << 28, o.records * (o.valueBytes + 64) * 4);
  const src = open({ path: path.join(dir, 'src'), mapSize, noSync: true });
  const dst = open({ path: path.join(dir, 'dst'), mapSize, noSync: o.noSync });
  const from = src.openDB<Buffer, Buffer>({ name: 'records', keyEncoding: 'binary', encoding: 'binary' });
  const to = dst.openDB<Buffer, Buffer>({ name: 'records', keyEncoding: 'binary', encoding: 'binary' });
  try {
    const value = Buffer.alloc(o.valueBytes, 0x61);
    for (let i = 0; i < o.records; i += FILL_BATCH) {
      src.transactionSync(() => {
        for (let j = i; j < Math.min(o.records, i + FILL_BATCH); j++) from.putSync(recordKey(j), value);
      });
    }
    const t0 = process.hrtime.bigint();
    // lmdb-js's asynchronous puts: it gathers them into write transactions by
    // itself (committed, and synced unless noSync, off the main thread). At
    // most `batch` records wait for their commit at a time.
    let copied = 0;
    let pending: Array<Promise<boolean>> = [];
    for (const { key, value: v } of from.getRange({})) {
      // getRange's buffers are reused: copy them out, as a scan to the wire does.
      pending.push(to.put(Buffer.from(key), Buffer.from(v)));
      if (pending.length >= o.batch) {
        await pending[pending.length - 1];
        copied += pending.length;
        pending = [];
      }
    }
    await Promise.all(pending);
    copied += pending.length;
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    if (copied !== o.records) throw new Error(`ceiling copy: ${copied} of ${o.records} records`);
    return {
      records: o.records,
      valueBytes: o.valueBytes,
      batch: o.batch,
      noSync: o.noSync,
      seconds: Math.round(seconds * 1000) / 1000,
      keysPerSec: Math.round(o.records / seconds),
      mbPerSec: Math.round(((o.records * o.valueBytes) / 1e6 / seconds) * 10) / 10,
    };
  } finally {
    await src.close();
    await dst.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
