import { describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { TopologyStore } from '../../src/infra/topology-store.js';
import { thrownKvError } from '../helpers/errors.js';

// fromMessage never touches Redis.
const store = new TopologyStore({} as Redis, 'kv:');
const record = {
  epoch: 7,
  shards: [
    { id: 's1', dataAddr: '127.0.0.1:7001', adminAddr: '127.0.0.1:7101', weight: 1, state: 'active' },
    { id: 's2', dataAddr: '127.0.0.1:7002', adminAddr: '127.0.0.1:7102', weight: 1, state: 'active' },
  ],
};

describe('topology published on the channel', () => {
  it('a published record is validated and used as it is', () => {
    const raw = JSON.stringify(record);
    const t = store.fromMessage(raw)!;
    expect(t).toEqual(record);
    // The same record again (a poll, a repeated message) is not validated twice.
    expect(store.fromMessage(raw)).toBe(t);
  });

  it('a bare epoch (an older publisher) or garbage asks for a re-read', () => {
    expect(store.fromMessage('8')).toBeUndefined();
    expect(store.fromMessage('not json')).toBeUndefined();
    expect(store.fromMessage('null')).toBeUndefined();
  });

  it('a record that is not a valid topology is refused', () => {
    const bad = { ...record, shards: [{ ...record.shards[0], weight: 0 }] };
    expect(thrownKvError(() => store.fromMessage(JSON.stringify(bad))).code).toMatch(/^KV_ERR_/);
  });
});
