// The admin token check: `Authorization: Bearer <token>`, compared in
// constant time. With an empty token configured there is no check (local
// development only).
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { kvError } from '../../core/errors.js';

/** Install the check on every route of `app` (an encapsulated plugin context). */
export function requireAdminToken(app: FastifyInstance, token: string): void {
  if (token === '') return;
  const want = Buffer.from(token);
  app.addHook('onRequest', (req, _reply, done) => {
    const h = req.headers.authorization ?? '';
    const got = Buffer.from(h.startsWith('Bearer ') ? h.slice(7) : '');
    // Compare in constant time; lengths differ -> compare against itself.
    const ok = got.length === want.length ? timingSafeEqual(got, want) : (timingSafeEqual(want, want), false);
    done(ok ? undefined : kvError('KV_ERR_UNAUTHORIZED', h ? 'the token does not match' : 'send Authorization: Bearer <token>'));
  });
}
