// HTTP plumbing shared by the router API and the shard HTTP port: one way to
// create the server with every limit explicit, raw bodies of any content
// type, and one error shape `{code, message, requestId}` from the one error
// table for everything that goes wrong, including what Node's HTTP parser and
// Fastify refuse before a route runs. A 5xx never carries an internal message
// or a stack: those go to the log, under the request id.
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { KvError, kvError } from '../core/errors.js';
import { redisReason } from './redis-reason.js';
import type { HTTP_DEFAULTS, SECURITY_DEFAULTS } from '../core/config.js';

export interface RouteMethods {
  /** Returns the methods allowed on a path, or undefined when no route has it. */
  (path: string): readonly string[] | undefined;
}

export type HttpServerConfig = Readonly<typeof HTTP_DEFAULTS & Pick<typeof SECURITY_DEFAULTS, 'tlsCertFile' | 'tlsKeyFile'>> & {
  readonly maxBodyBytes: number;
  readonly logLevel: string;
};

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Query parameters this route takes; any other is refused with 400 KV_ERR_BAD_QUERY. */
    query?: readonly string[];
  }
}

let requestSeq = 0;
const PROCESS_TAG = process.pid.toString(36);
/** A request id unique across the workers of a host: pid and a counter. */
export const newRequestId = (): string => `${PROCESS_TAG}-${(++requestSeq).toString(36)}`;

/** The body of an error response. */
export function errorBody(kv: KvError, requestId: string): Record<string, unknown> {
  return { ...kv.toJSON(), requestId };
}

/**
 * Told of what an HTTP server does, for metrics: `inFlight` is kept at the
 * number of requests received and not closed yet, and error() hears the
 * code of every error answer, those Node's parser causes included.
 */
export interface HttpObserver {
  inFlight: number;
  error(code: string): void;
}

/**
 * A Fastify app with the server limits of `cfg`: body bytes, the time to
 * receive headers and the whole request (slow senders are cut), idle
 * keep-alive, header bytes, open connections, and TLS when a certificate is
 * configured. Also the error shape for Node's parser errors (bad framing,
 * oversized headers, timeouts) and for `Expect` values other than
 * 100-continue.
 */
/** A handler that sees each request before Fastify does; it returns true when it answered (or will answer) the request itself. */
export interface FrontHandler {
  handle: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
}

export function createHttpApp(
  cfg: HttpServerConfig,
  extra: Partial<FastifyServerOptions> = {},
  front?: FrontHandler,
  observer?: HttpObserver,
): FastifyInstance {
  const serverOptions = {
    // Node would answer a missing Host itself, with an empty 400 body: the
    // hook below refuses it with a code instead.
    requireHostHeader: false,
    maxHeaderSize: cfg.maxHeaderBytes,
    headersTimeout: cfg.httpHeadersTimeoutMs,
    requestTimeout: cfg.httpRequestTimeoutMs,
    connectionsCheckingInterval: cfg.httpTimeoutCheckMs,
  };
  const tls = cfg.tlsCertFile
    ? { cert: readFileSync(cfg.tlsCertFile), key: readFileSync(cfg.tlsKeyFile), handshakeTimeout: cfg.httpHeadersTimeoutMs }
    : undefined;
  const app = Fastify({
    logger: cfg.logLevel === 'silent' ? false : { level: cfg.logLevel },
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: cfg.maxBodyBytes,
    keepAliveTimeout: cfg.keepAliveTimeoutMs,
    requestTimeout: cfg.httpRequestTimeoutMs,
    // Ids are ours, never taken from a client's header.
    requestIdHeader: false,
    genReqId: newRequestId,
    frameworkErrors: frameworkErrorsTo(observer),
    clientErrorHandler: clientErrors(cfg.maxHeaderBytes, observer),
    ...(tls ? { https: { ...serverOptions, ...tls } } : { http: serverOptions }),
    ...extra,
  } as FastifyServerOptions);
  // Fastify's request listener runs behind ours: a front handler (the
  // router's fast path) may take a request first, and a connection's
  // pipelined requests run in order.
  const [fastifyHandler] = app.server.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>;
  if (fastifyHandler) {
    const serve = front ? (req: IncomingMessage, res: ServerResponse) => front.handle?.(req, res) || fastifyHandler(req, res) : fastifyHandler;
    app.server.removeAllListeners('request');
    app.server.on('request', inOrder(serve, observer));
  }
  // Counted here, not with server.maxConnections: a router worker gets its
  // connections from the cluster primary, and Node does not apply
  // maxConnections to those.
  let open = 0;
  app.server.on('connection', (socket: Socket) => {
    if (open >= cfg.maxConnections) {
      socket.destroy();
      return;
    }
    open++;
    // Set before the first request, so every connection has the same shape there.
    (socket as OrderedSocket)[BUSY] = false;
    (socket as OrderedSocket)[WAITING] = undefined;
    socket.once('close', () => open--);
  });
  // Node keeps the first 2000 headers and drops the rest without a word: an
  // If-Match among them would be lost and a conditional write run as a plain
  // one. maxHeaderBytes bounds them instead (0 = no count limit).
  app.server.maxHeadersCount = 0;
  // Without a listener Node answers an unknown Expect with a bare 417.
  app.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const kv = kvError('KV_ERR_EXPECTATION_FAILED', String(req.headers.expect ?? '').slice(0, 100));
    observer?.error(kv.code);
    res.writeHead(kv.statusCode, { 'content-type': 'application/json', connection: 'close' });
    res.end(JSON.stringify(errorBody(kv, newRequestId())));
  });
  // Without a listener Node cuts a CONNECT request without a word.
  app.server.on('connect', (_req: IncomingMessage, socket: Socket) => answerAndClose(socket, kvError('KV_ERR_BAD_HTTP', 'CONNECT is not supported'), observer));
  // What Node's parser lets through but this API does not take: an HTTP/0.9
  // line (no headers, so a bare "PUT /v1/kv/k" would store an empty value),
  // an HTTP/1.1 request without Host (RFC 9112: 400), and an HTTP/1.0
  // request with an Expect it cannot meet (Node checks Expect on HTTP/1.1
  // only, and would run such a write).
  app.addHook('onRequest', (req, _reply, done) => {
    const raw = req.raw;
    if (raw.httpVersionMajor !== 1) return done(kvError('KV_ERR_BAD_HTTP', `HTTP/${raw.httpVersion} is not supported`));
    if (raw.httpVersionMinor >= 1 && raw.headers.host === undefined) return done(kvError('KV_ERR_BAD_HTTP', 'an HTTP/1.1 request needs a Host header'));
    const expect = raw.headers.expect;
    if (raw.httpVersionMinor === 0 && expect !== undefined && !CONTINUE_RE.test(expect))
      return done(kvError('KV_ERR_EXPECTATION_FAILED', expect.slice(0, 100)));
    done();
  });
  return app;
}

const BUSY = Symbol('kv.http.busy');
const WAITING = Symbol('kv.http.waiting');
type OrderedSocket = Socket & { [BUSY]?: boolean; [WAITING]?: Array<() => void> | undefined };

/**
 * Pipelined requests on one connection run one after another, in order: Node
 * parses them at once and keeps only the answers in order, so a GET sent
 * after a PUT could otherwise run before the PUT is done (RFC 9112 9.3.2
 * lets a server run only safe requests side by side).
 */
function inOrder(serve: (req: IncomingMessage, res: ServerResponse) => void, observer?: HttpObserver) {
  // One listener function for every response (no closure per request): the
  // response knows its request, and the request its connection.
  function onClose(this: ServerResponse): void {
    if (observer) observer.inFlight--;
    const conn = this.req.socket as OrderedSocket;
    const run = conn[WAITING]?.shift();
    if (run) run();
    else conn[BUSY] = false;
  }
  return (req: IncomingMessage, res: ServerResponse): void => {
    const conn = req.socket as OrderedSocket;
    if (observer) observer.inFlight++;
    res.on('close', onClose);
    if (conn[BUSY]) {
      (conn[WAITING] ??= []).push(() => {
        if (!res.destroyed) serve(req, res);
      });
      return;
    }
    conn[BUSY] = true;
    serve(req, res);
  };
}

/** Node's own test for a 100-continue expectation. */
const CONTINUE_RE = /(?:^|\W)100-continue(?:$|\W)/i;

/**
 * How long a refused connection may go on sending before it is cut. Closing
 * at once while the peer still sends (a 1 MB header, say) makes the kernel
 * answer with a reset, and the peer's kernel then drops the answer unread;
 * reading and discarding for a moment first lets the answer arrive (as
 * nginx's lingering close).
 */
const LINGER_MS = 500;

/** Answer on a socket that has no HTTP response object (any more), then close it. */
function answerAndClose(socket: Socket, kv: KvError, observer: HttpObserver | undefined): void {
  observer?.error(kv.code);
  const body = JSON.stringify(errorBody(kv, newRequestId()));
  // Not in the middle of another response on this connection (pipelining): as Node's own handler.
  const current = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !current?.headersSent) {
    socket.write(
      `HTTP/1.1 ${kv.statusCode} ${STATUS_TEXT[kv.statusCode] ?? 'Error'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    socket.end();
    socket.on('data', discard);
    socket.resume();
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
    return;
  }
  socket.destroy();
}

function discard(): void {}

/**
 * Node's `clientError`: the request could not be parsed (or came too
 * slowly), so no route and no Fastify request exist. Answer with a code and
 * close the connection.
 */
function clientErrors(maxHeaderBytes: number, observer: HttpObserver | undefined) {
  return (err: NodeJS.ErrnoException, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    let kv: KvError;
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') kv = kvError('KV_ERR_REQUEST_TIMEOUT', 'headers or body too slow');
    else if (err.code === 'HPE_HEADER_OVERFLOW') kv = kvError('KV_ERR_HEADERS_TOO_LARGE', maxHeaderBytes);
    else kv = kvError('KV_ERR_BAD_HTTP', (err.code ?? 'parse error').replace(/^HPE_/, '').toLowerCase().replace(/_/g, ' '));
    answerAndClose(socket, kv, observer);
  };
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' };

/**
 * Fastify's `frameworkErrors` hook: errors raised before routing (e.g. a URL
 * that is not valid percent-encoded UTF-8) get the same shape.
 */
function frameworkErrorsTo(observer: HttpObserver | undefined) {
  return (err: FastifyError, req: FastifyRequest, reply: FastifyReply): void => {
    const kv = err.code === 'FST_ERR_BAD_URL' ? kvError('KV_ERR_KEY_INVALID', 'URL is not valid percent-encoded UTF-8') : toKvError(err);
    observer?.error(kv.code);
    void reply.code(kv.statusCode).type('application/json').send(errorBody(kv, req.id));
  };
}

export function installHttpBasics(app: FastifyInstance, methodsFor: RouteMethods, observer?: HttpObserver): void {
  const bodyLimit = app.initialConfig.bodyLimit;
  // Store bytes exactly as sent, whatever the content type (JSON included).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err: FastifyError | KvError, req, reply) => {
    const kv = toKvError(err, bodyLimit);
    observer?.error(kv.code);
    if (kv.statusCode >= 500) {
      if (kv.code === 'KV_ERR_INTERNAL') {
        req.log.error({ err, requestId: req.id }, 'unhandled error');
        return reply
          .code(500)
          .type('application/json')
          .send(errorBody(kvError('KV_ERR_INTERNAL', `see the server log for request ${req.id}`), req.id));
      }
    }
    if (kv.retryAfterS !== undefined) void reply.header('retry-after', String(kv.retryAfterS));
    return reply.code(kv.statusCode).type('application/json').send(errorBody(kv, req.id));
  });

  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0] ?? req.url;
    const allowed = methodsFor(path);
    const err =
      allowed && !allowed.includes(req.method) ? kvError('KV_ERR_METHOD_NOT_ALLOWED', req.method, path) : kvError('KV_ERR_ROUTE_NOT_FOUND', req.method, path);
    if (allowed && !allowed.includes(req.method)) void reply.header('allow', allowed.join(', '));
    observer?.error(err.code);
    void reply.code(err.statusCode).send(errorBody(err, req.id));
  });

  // Query parameters are parsed strictly: a route takes only the ones it
  // names (config.query), each at most once.
  app.addHook('onRequest', (req, _reply, done) => {
    if (!req.raw.url?.includes('?')) return done(); // the common case: no query at all
    const q = req.query as Record<string, unknown>;
    const allowed = req.routeOptions.config?.query ?? NO_QUERY;
    for (const name in q) {
      if (!allowed.includes(name))
        return done(
          kvError(
            'KV_ERR_BAD_QUERY',
            `unknown parameter ${JSON.stringify(name)}${allowed.length ? ` (this endpoint takes ${allowed.join(', ')})` : ' (this endpoint takes none)'}`,
          ),
        );
      if (typeof q[name] !== 'string') return done(kvError('KV_ERR_BAD_QUERY', `parameter ${JSON.stringify(name)} is given more than once`));
    }
    done();
  });
}

const NO_QUERY: readonly string[] = [];

/**
 * The path of a request target without its query. An absolute-form target
 * (`http://host/path`, RFC 9112 3.2.2) is routed by its path, so its key
 * must come from that path too, not from the scheme and host.
 */
export function targetPath(url: string): string {
  const path = url.split('?')[0]!;
  if (path.startsWith('/')) return path;
  const m = /^https?:\/\/[^/]*/i.exec(path);
  return m ? path.slice(m[0].length) : path;
}

/** One query parameter of a route that declared it (see `config.query`). */
export function queryParam(req: FastifyRequest, name: string): string | undefined {
  const v = (req.query as Record<string, unknown>)[name];
  return typeof v === 'string' ? v : undefined;
}

/** A flag: absent = false; present with no value, 1 or true = true; 0 or false = false; anything else is refused. */
export function flagParam(req: FastifyRequest, name: string): boolean {
  const v = queryParam(req, name);
  if (v === undefined) return false;
  if (v === '' || v === '1' || v === 'true') return true;
  if (v === '0' || v === 'false') return false;
  throw kvError('KV_ERR_BAD_QUERY', `${name} must be 1, true, 0 or false, got ${JSON.stringify(v.slice(0, 50))}`);
}

/** Errors ioredis raises when Redis cannot answer (down, timed out, connection closed). */
const REDIS_DOWN =
  /Command timed out|Connection is closed|Stream isn't writeable|Reached the max retries per request limit|ECONNREFUSED|ETIMEDOUT|Socket closed unexpectedly/;

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
      if (typeof e?.message === 'string' && (e.name === 'MaxRetriesPerRequestError' || REDIS_DOWN.test(e.message))) {
        return kvError('KV_ERR_REDIS_UNAVAILABLE', redisReason(e));
      }
      return kvError('KV_ERR_INTERNAL', e?.message ?? String(err));
  }
}

export function bodyBytes(body: unknown): Uint8Array {
  if (body === undefined || body === null) return new Uint8Array(0);
  if (body instanceof Uint8Array) return body;
  throw kvError('KV_ERR_BAD_REQUEST', 'body could not be read as bytes');
}

/** A JSON body must say so, and must not be compressed or otherwise encoded. */
export function requireJson(req: FastifyRequest): void {
  const ct = String(req.headers['content-type'] ?? '');
  if (!/^application\/json\s*(;\s*charset=utf-8\s*)?$/i.test(ct))
    throw kvError('KV_ERR_UNSUPPORTED_MEDIA_TYPE', 'application/json', JSON.stringify(ct.slice(0, 100)));
  const ce = req.headers['content-encoding'];
  if (ce !== undefined && ce !== 'identity')
    throw kvError('KV_ERR_UNSUPPORTED_MEDIA_TYPE', 'an unencoded body', `content-encoding ${JSON.stringify(String(ce).slice(0, 50))}`);
}
