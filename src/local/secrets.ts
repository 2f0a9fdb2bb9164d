// The secrets of a local system, in <data dir>/secrets.json (mode 0600): the
// admin token (admin API, shard HTTP ports) and the cluster secret (peer
// authentication on the shard data ports). `kv up` creates them on the first
// start and reuses them later; the `kv` client commands read the token from
// here when neither --token nor KV_ADMIN_TOKEN is given.
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export const SECRETS_FILE = 'secrets.json';

export interface Secrets {
  readonly adminToken: string;
  readonly clusterSecret: string;
  /** The API key of the tenant `dev`, made by `kv up` once the cluster runs. */
  readonly apiKey?: string;
}

/** 256 random bits, URL-safe. */
export const newSecret = (): string => randomBytes(32).toString('base64url');

export function secretsPath(dataDir: string): string {
  return path.join(dataDir, SECRETS_FILE);
}

/** The secrets in `dataDir`, or undefined when there is no (readable, well-formed) file. */
export function readSecrets(dataDir: string): Secrets | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(secretsPath(dataDir), 'utf8'));
  } catch {
    return undefined;
  }
  const o = doc as Partial<Secrets> | null;
  if (typeof o?.adminToken !== 'string' || typeof o.clusterSecret !== 'string' || o.adminToken === '' || o.clusterSecret === '') return undefined;
  return { adminToken: o.adminToken, clusterSecret: o.clusterSecret, ...(typeof o.apiKey === 'string' ? { apiKey: o.apiKey } : {}) };
}

/** Add the dev API key to the secrets file (same mode 0600). */
export function saveApiKey(dataDir: string, apiKey: string): void {
  const s = readSecrets(dataDir);
  if (!s) throw new Error(`no secrets in ${dataDir}`);
  const file = secretsPath(dataDir);
  writeFileSync(file, JSON.stringify({ ...s, apiKey }, null, 2) + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
}

/**
 * The secrets in `dataDir`, created on the first call. A file that others
 * could read is made private again (its mode is reported in `repaired`).
 */
export function loadOrCreateSecrets(dataDir: string): { secrets: Secrets; file: string; created: boolean; repaired?: string } {
  const file = secretsPath(dataDir);
  const existing = readSecrets(dataDir);
  if (existing) {
    const mode = statSync(file).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      chmodSync(file, 0o600);
      return { secrets: existing, file, created: false, repaired: mode.toString(8) };
    }
    return { secrets: existing, file, created: false };
  }
  mkdirSync(dataDir, { recursive: true });
  const secrets: Secrets = { adminToken: newSecret(), clusterSecret: newSecret() };
  writeFileSync(file, JSON.stringify(secrets, null, 2) + '\n', { mode: 0o600 });
  chmodSync(file, 0o600); // the process umask may have masked less than we want
  return { secrets, file, created: true };
}
