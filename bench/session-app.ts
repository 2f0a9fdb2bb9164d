// The web app of bench/session-store.ts, run as its own process: Express with
// express-session, its sessions kept either in shardkv (KvSessionStore over a
// KvClient with an API key) or in express-session's MemoryStore (in this
// process: the reference). Reports {type: 'ready', port} over IPC once it
// listens.
//
// Env: SESSION_STORE (kv | memory), KV_URLS (comma-separated router URLs),
// KV_API_KEY, KV_CONNECTIONS (the KvClient's connections per router),
// SESSION_BYTES (size of the data each session carries).
//
//   POST /login   a new session (express-session: store.set)
//   GET  /page    read the session (store.get), answer from it; unmodified,
//                 so express-session extends its TTL (store.touch)
//   POST /page    read it and change it (store.get, then store.set)
import express from 'express';
import session, { MemoryStore, type Store } from 'express-session';
import { KvClient, KvSessionStore } from '../src/index.js';

declare module 'express-session' {
  interface SessionData {
    user: string;
    writes: number;
    data: string;
  }
}

const kind = process.env['SESSION_STORE'];
if (kind !== 'kv' && kind !== 'memory') throw new Error('SESSION_STORE must be kv or memory');
const sessionBytes = Number(process.env['SESSION_BYTES'] ?? 200);

let client: KvClient | undefined;
let store: Store;
if (kind === 'kv') {
  client = new KvClient({
    urls: (process.env['KV_URLS'] ?? '').split(','),
    apiKey: process.env['KV_API_KEY'],
    connections: Number(process.env['KV_CONNECTIONS'] ?? 64),
  });
  store = new KvSessionStore({ client, prefix: 'sess:' }) as unknown as Store;
} else {
  store = new MemoryStore();
}

const app = express();
app.disable('x-powered-by');
app.disable('etag');

// Requests under way, counted until the store is done with them: a load
// generator that stops drops its connections, but what was already received
// still runs (get, touch, set), and the benchmark waits for it before the
// next measured run. express-session calls the response's end only after the
// store answered, so this end (wrapped before express-session wraps it) is
// the last thing a request does.
let inFlight = 0;
let storeErrors = 0;
let lastError = '';
app.get('/_stats', (_req, res) => {
  res.json({ inFlight, storeErrors, lastError });
});
app.use((_req, res, next) => {
  inFlight++;
  const end = res.end.bind(res) as (...args: unknown[]) => express.Response;
  let counted = true;
  res.end = ((...args: unknown[]) => {
    if (counted) {
      counted = false;
      inFlight--;
    }
    return end(...args);
  }) as typeof res.end;
  next();
});

app.use(
  session({
    store,
    secret: 'bench-session-secret-0123456789abcdef',
    resave: false,
    saveUninitialized: false,
    cookie: { maxAge: 30 * 60 * 1000, httpOnly: true, sameSite: 'strict' },
  }),
);

let logins = 0;
app.post('/login', (req, res) => {
  req.session.user = `user-${logins++}`;
  req.session.writes = 0;
  req.session.data = 'x'.repeat(sessionBytes);
  res.json({ id: req.sessionID });
});

app.get('/page', (req, res) => {
  if (!req.session.user) return void res.status(401).json({ session: false });
  res.json({ user: req.session.user, writes: req.session.writes });
});

app.post('/page', (req, res) => {
  if (!req.session.user) return void res.status(401).json({ session: false });
  req.session.writes = (req.session.writes ?? 0) + 1;
  res.json({ user: req.session.user, writes: req.session.writes });
});

// A store error. express-session reports a failed touch after the response
// is under way (its status already sent): counted here, so the benchmark
// sees it even when the client got a 200.
app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
  const e = err as { code?: string; message?: string };
  storeErrors++;
  lastError = String(e?.code ?? e?.message ?? err);
  if (!res.headersSent) res.status(500).json({ error: lastError });
});

const server = app.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  process.send?.({ type: 'ready', port: typeof addr === 'object' && addr ? addr.port : 0, pid: process.pid });
});

const stop = () => {
  server.close();
  server.closeAllConnections();
  void (client?.close() ?? Promise.resolve()).finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
// The benchmark is gone: do not outlive it.
process.on('disconnect', stop);
