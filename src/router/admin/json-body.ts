// Admin request bodies: a JSON object, or nothing.
import { kvError } from '../../core/errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function jsonBody(body: unknown): Record<string, unknown> {
  if (body === undefined || body === null || (body instanceof Uint8Array && body.byteLength === 0)) return {};
  try {
    const doc = JSON.parse(utf8.decode(body as Uint8Array)) as unknown;
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('expected a JSON object');
    return doc as Record<string, unknown>;
  } catch (err) {
    throw kvError('KV_ERR_BAD_JSON', (err as Error).message);
  }
}

/** A flag in a query string: present and empty, "1" or "true". */
export const truthy = (v: unknown): boolean => v === '' || v === '1' || v === 'true' || v === true;
