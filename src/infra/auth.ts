// The admin token check: `Authorization: Bearer <token>`, compared in
// constant time. With an empty token there is no check: that happens only
// with insecure=true, on a loopback address (see securityProblem in
// core/config.ts).
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { kvError } from '../core/errors.js';

/** Install the check on every route of `app` (an encapsulated plugin context). */
export function requireAdminToken(app: FastifyInstance, token: string, except: (url: string) => boolean = () => false): void {
  if (token === '') return;
  const want = Buffer.from(token);
  app.addHook('onRequest', (req, _reply, done) => {
    if (except(req.url)) return done();
    const h = req.headers.authorization ?? '';
    const got = Buffer.from(h.startsWith('Bearer ') ? h.slice(7) : '');
    // Compare in constant time; lengths differ -> compare against itself.
    const ok = got.length === want.length ? timingSafeEqual(got, want) : (timingSafeEqual(want, want), false);
    done(ok ? undefined : kvError('KV_ERR_UNAUTHORIZED', h ? 'the token does not match' : 'send Authorization: Bearer <token>'));
  });
}
