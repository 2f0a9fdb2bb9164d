// Wait for a condition instead of sleeping a fixed time.
import { setTimeout as sleep } from 'node:timers/promises';

export interface WaitOptions {
  readonly timeoutMs: number;
  /** How often the condition is tried again. */
  readonly intervalMs?: number;
  /** What is awaited, for the timeout's message. */
  readonly what?: string;
  /** Checked before each try: a reason to stop waiting at once (e.g. the process exited), or undefined. */
  readonly giveUp?: () => string | undefined;
}

/**
 * Poll `probe` until it returns something other than undefined (or false)
 * and resolve with that; a probe that throws counts as "not yet" until the
 * deadline, when its last error is reported.
 */
export async function waitUntil<T>(probe: () => T | undefined | false | Promise<T | undefined | false>, o: WaitOptions): Promise<T> {
  const deadline = Date.now() + o.timeoutMs;
  let lastError: unknown;
  for (;;) {
    const reason = o.giveUp?.();
    if (reason !== undefined) throw new Error(`gave up waiting for ${o.what ?? 'condition'}: ${reason}`);
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? `: ${lastError.message}` : '';
      throw new Error(`${o.what ?? 'condition'} not reached within ${o.timeoutMs} ms${why}`);
    }
    await sleep(o.intervalMs ?? 25);
  }
}
