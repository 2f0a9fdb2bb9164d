// Admin request bodies: a JSON object (sent as application/json), or nothing.
import type { FastifyRequest } from 'fastify';
import { kvError } from '../../core/errors.js';
import { requireJson } from '../../infra/http.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function jsonBody(req: FastifyRequest): Record<string, unknown> {
  const body = req.body;
  if (body === undefined || body === null || (body instanceof Uint8Array && body.byteLength === 0)) return {};
  requireJson(req);
  try {
    const doc = JSON.parse(utf8.decode(body as Uint8Array)) as unknown;
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('expected a JSON object');
    return doc as Record<string, unknown>;
  } catch (err) {
    throw kvError('KV_ERR_BAD_JSON', (err as Error).message);
  }
}
