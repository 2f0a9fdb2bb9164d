// Why Redis did not answer, in words that name no address (they reach
// clients inside 503 messages). Pure, apart from the rest of infra/, so the
// forwarder can use it without loading the HTTP server.

/** Why Redis did not answer, without its address. */
export function redisReason(e: { message?: string; code?: string }): string {
  if (e.code === 'ECONNREFUSED' || /ECONNREFUSED/.test(e.message ?? '')) return 'connection refused';
  if (/timed out|ETIMEDOUT/i.test(e.message ?? '')) return 'no answer in time';
  return 'not connected';
}
