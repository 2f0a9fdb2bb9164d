// One backoff rule for every retry loop: base * 2^attempt, capped. Pure.

/** Delay before retry number `attempt` (0 = the first retry): base * 2^attempt, at most maxMs. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(0, attempt), 30));
}
