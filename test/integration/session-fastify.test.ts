// KvSessionStore as the store of @fastify/session, in two Fastify processes
// behind alternating requests (the suite is in test/helpers/session-apps.ts).
import { sessionStoreSuite } from '../helpers/session-apps.js';

sessionStoreSuite({ name: '@fastify/session', script: 'session-fastify-app.mjs', prefix: 'fst:' });
