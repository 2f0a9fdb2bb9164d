// Shapes of rebalancing data as it crosses the wire.
export interface MovedRecordWire {
  k: [number, string];
  r: { v: Uint8Array | null; ct: string; ver: number; x: number; d?: 1; e?: number };
}
