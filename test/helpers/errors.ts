// The KvError a call throws; fails the test when it throws nothing or something else.
import { expect } from 'vitest';
import { KvError } from '../../src/core/errors.js';

export function thrownKvError(fn: () => unknown): KvError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(KvError);
    return err as KvError;
  }
  throw new Error('expected a KvError, nothing was thrown');
}
