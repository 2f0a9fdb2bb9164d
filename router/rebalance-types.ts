// Shapes of rebalancing data as it crosses the wire.

/** What a shard's SCAN answers: moved records packed as one blob, with counts. */
export interface ScanResult {
  packed: Uint8Array;
  /** Records in the blob (tombstones included). */
  n: number;
  /** Live values among them, and their bytes. */
  live: number;
  bytes: number;
  /** Cursor for the next SCAN of the same range; absent when the range is done. */
  next: [number, string] | undefined;
}
