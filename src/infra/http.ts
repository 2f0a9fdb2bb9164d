// HTTP plumbing shared by the router API and the shard admin port: raw bodies
// of any content type, one error shape `{code, message}` with a KV_ERR_* code,
// 404/405 for unknown routes and methods. Nothing here ever answers 500 for a
// client's mistake.
import type { FastifyInstance, FastifyError, FastifyRequest, FastifyReply } from 'fastify';
import { KvError, kvError } from '../core/errors.js';

export interface RouteMethods {
  /** Returns the methods allowed on a path, or undefined when no route has it. */
  (path: string): readonly string[] | undefined;
}

/**
 * Fastify's `frameworkErrors` hook: errors raised before routing (e.g. a URL
 * that is not valid percent-encoded UTF-8) get the same `{code, message}` shape.
 */
export function frameworkErrors(err: FastifyError, req: FastifyRequest, reply: FastifyReply): void {
  const kv = err.code === 'FST_ERR_BAD_URL' ? kvError('KV_ERR_KEY_INVALID', 'URL is not valid percent-encoded UTF-8') : toKvError(err);
  void req;
  void reply.code(kv.statusCode).type('application/json').send(kv.toJSON());
}

export function installHttpBasics(app: FastifyInstance, methodsFor: RouteMethods): void {
  const bodyLimit = app.initialConfig.bodyLimit;
  // Store bytes exactly as sent, whatever the content type (JSON included).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err: FastifyError | KvError, req, reply) => {
    const kv = toKvError(err, bodyLimit);
    if (kv.statusCode >= 500 && kv.code === 'KV_ERR_INTERNAL') req.log.error({ err }, 'unhandled error');
    void reply.code(kv.statusCode).type('application/json').send(kv.toJSON());
  });

  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? req.url;
    const allowed = methodsFor(path);
    const err = allowed && !allowed.includes(req.method)
      ? kvError('KV_ERR_METHOD_NOT_ALLOWED', req.method, path)
      : kvError('KV_ERR_ROUTE_NOT_FOUND', req.method, path);
    if (allowed && !allowed.includes(req.method)) void reply.header('allow', allowed.join(', '));
    void reply.code(err.statusCode).send(err.toJSON());
  });
}

export function toKvError(err: unknown, bodyLimit?: number): KvError {
  if (err instanceof KvError) return err;
  const e = err as FastifyError;
  switch (e?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return kvError('KV_ERR_BODY_TOO_LARGE', bodyLimit ?? 'the configured');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return kvError('KV_ERR_BAD_CONTENT_TYPE', e.message);
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_BAD_URL':
      return kvError('KV_ERR_BAD_REQUEST', e.message);
    default:
      if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
        return kvError('KV_ERR_BAD_REQUEST', e.message);
      }
      return kvError('KV_ERR_INTERNAL', e?.message ?? String(err));
  }
}

export function bodyBytes(body: unknown): Uint8Array {
  if (body === undefined || body === null) return new Uint8Array(0);
  if (body instanceof Uint8Array) return body;
  throw kvError('KV_ERR_BAD_REQUEST', 'body could not be read as bytes');
}
