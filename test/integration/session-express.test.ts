// KvSessionStore as the store of express-session, in two Express processes
// behind alternating requests (the suite is in test/helpers/session-apps.ts).
import { sessionStoreSuite } from '../helpers/session-apps.js';

sessionStoreSuite({ name: 'express-session', script: 'session-express-app.mjs', prefix: 'exp:' });
