// Client sessions: POST /v1/sessions (log in with an API key), GET and
// DELETE /v1/sessions/current. A session lives in Redis (infra/identity-store),
// so any worker of any router host serves it; a logout is announced to all
// of them at once.
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { kvError } from '../core/errors.js';
import type { IdentityStore } from '../infra/identity-store.js';
import { SESSION_COOKIE, tokenOf, type Authenticator } from './authenticator.js';

export interface SessionRoutesDeps {
  readonly identity: IdentityStore;
  readonly auth: Authenticator;
  readonly sessionIdleTimeoutMs: number;
  readonly sessionAbsoluteTimeoutMs: number;
  /** The cookie gets `Secure` (the router serves HTTPS). */
  readonly secureCookie: boolean;
}

export const sessionRoutes: FastifyPluginAsync<SessionRoutesDeps> = async (app, d) => {
  const cookie = (value: string, maxAgeS: number) =>
    `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict${d.secureCookie ? '; Secure' : ''}; Max-Age=${maxAgeS}`;

  /** The current session of a request (bearer token or cookie), or 401. */
  async function current(token: string | undefined) {
    if (token === undefined) throw kvError('KV_ERR_AUTH_REQUIRED', 'send the session token (Authorization: Bearer kvs_…) or the kv_session cookie');
    const caller = await d.auth.resolve(token);
    if (caller.kind !== 'session') throw kvError('KV_ERR_AUTH_REQUIRED', 'this endpoint takes a session token, not an API key');
    return caller;
  }

  app.post('/v1/sessions', async (req, reply: FastifyReply) => {
    const h = req.headers.authorization;
    if (h === undefined) throw kvError('KV_ERR_AUTH_REQUIRED', 'log in with an API key: Authorization: Bearer kvk_…');
    const key = await d.auth.apiKeyOf(tokenOf(req) ?? '');
    const s = await d.identity.createSession(key, d.sessionIdleTimeoutMs, d.sessionAbsoluteTimeoutMs);
    const now = s.record.createdAt;
    void reply.header('set-cookie', cookie(s.token, Math.floor(d.sessionAbsoluteTimeoutMs / 1000))).header('cache-control', 'no-store');
    return reply.code(201).send({
      token: s.token,
      tenant: s.record.tenant,
      createdAt: now,
      expiresAt: now + Math.min(d.sessionIdleTimeoutMs, d.sessionAbsoluteTimeoutMs),
      absoluteExpiresAt: s.record.absoluteExpiresAt,
    });
  });

  app.get('/v1/sessions/current', async (req) => {
    const c = await current(tokenOf(req));
    const s = await d.identity.session(c.sessionHash!, d.sessionIdleTimeoutMs);
    if (!s) throw kvError('KV_ERR_BAD_CREDENTIALS', 'unknown, ended or expired session');
    const expiresAt = (await d.identity.sessionExpiresAt(c.sessionHash!)) ?? Date.now();
    return { tenant: s.tenant, createdAt: s.createdAt, expiresAt, absoluteExpiresAt: s.absoluteExpiresAt };
  });

  app.delete('/v1/sessions/current', async (req, reply) => {
    const c = await current(tokenOf(req));
    await d.identity.endSession(c.sessionHash!, c.keyId!);
    d.auth.forget(c.sessionHash!);
    return reply.code(204).header('set-cookie', cookie('', 0)).send();
  });
};
