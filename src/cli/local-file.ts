// Defaults for `kv` commands run next to a system started by `kv up`: it
// writes ./data/local.json with its Redis and router URLs, and keeps the
// secrets in ./data/secrets.json (KV_DATA_DIR for another directory).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { readSecrets, type Secrets } from '../local/secrets.js';

export const LOCAL_FILE = 'local.json';

interface Local {
  redisUrl?: string;
  routerUrl?: string;
}

const localDir = () => process.env['KV_DATA_DIR'] ?? './data';

function readLocal(): Local {
  try {
    return JSON.parse(readFileSync(path.join(localDir(), LOCAL_FILE), 'utf8')) as Local;
  } catch {
    return {};
  }
}

/** REDIS_URL, else the Redis of a local `kv up`, else undefined (the role's default). */
export function localRedisUrl(): string | undefined {
  return process.env['REDIS_URL'] || readLocal().redisUrl;
}

/** KV_URL, else the router of a local `kv up`, else http://127.0.0.1:8080. */
export function localRouterUrl(): string {
  return process.env['KV_URL'] || readLocal().routerUrl || 'http://127.0.0.1:8080';
}

/** The secrets of a local `kv up`, if this directory has them. */
export function localSecrets(): Secrets | undefined {
  return readSecrets(localDir());
}

/** KV_ADMIN_TOKEN, else the token of a local `kv up`. */
export function localAdminToken(): string | undefined {
  return process.env['KV_ADMIN_TOKEN'] || localSecrets()?.adminToken;
}

/** KV_API_KEY, else the dev API key of a local `kv up`. */
export function localApiKey(): string | undefined {
  return process.env['KV_API_KEY'] || localSecrets()?.apiKey;
}
