// GET /dashboard: the live web dashboard, three static files (one page, one
// script module, one style sheet) read once at start and served under a
// strict Content-Security-Policy: no inline script or style, nothing from
// another origin. The page holds no data; it reads the router's public
// endpoints and, with the admin token the operator types in, the admin API.
import { readFileSync } from 'node:fs';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';

export const DASHBOARD_PATH = '/dashboard';

const DIR = new URL('./dashboard/', import.meta.url);

const FILES = {
  [DASHBOARD_PATH]: { file: 'index.html', type: 'text/html; charset=utf-8' },
  [`${DASHBOARD_PATH}/`]: { file: 'index.html', type: 'text/html; charset=utf-8' },
  [`${DASHBOARD_PATH}/app.js`]: { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  [`${DASHBOARD_PATH}/style.css`]: { file: 'style.css', type: 'text/css; charset=utf-8' },
} as const;

/** The paths this plugin serves (for the router's allowed-methods table). */
export const DASHBOARD_PATHS: ReadonlySet<string> = new Set(Object.keys(FILES));

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

function secured(reply: FastifyReply, type: string): FastifyReply {
  return reply
    .type(type)
    .header('content-security-policy', CONTENT_SECURITY_POLICY)
    .header('x-content-type-options', 'nosniff')
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'no-referrer')
    .header('cache-control', 'no-cache');
}

export const dashboardRoutes: FastifyPluginAsync = async (app) => {
  const bodies = new Map<string, Buffer>();
  for (const f of new Set(Object.values(FILES).map((x) => x.file))) bodies.set(f, readFileSync(new URL(f, DIR)));
  for (const [path, { file, type }] of Object.entries(FILES)) {
    const body = bodies.get(file)!;
    app.get(path, async (_req, reply) => secured(reply, type).send(body));
  }
};
