// Tenants, API keys and sessions for tests that run a router with
// dataAuth=true: create them through the admin API, log in and out, and
// build the credential headers a request carries.
import { request, type HttpResult } from './http.js';
import { ADMIN_AUTH } from './secrets.js';

const JSON_HEADERS = { ...ADMIN_AUTH, 'content-type': 'application/json' };

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
export const sessionCookie = (token: string): Record<string, string> => ({ cookie: `kv_session=${token}` });

function expectStatus(what: string, r: HttpResult, status: number): HttpResult {
  if (r.status !== status) throw new Error(`${what}: ${r.status} ${r.text.slice(0, 300)}, expected ${status}`);
  return r;
}

export async function createTenant(url: string, name: string): Promise<void> {
  expectStatus(`create tenant ${name}`, await request('POST', `${url}/v1/admin/tenants`, { headers: JSON_HEADERS, body: JSON.stringify({ name }) }), 201);
}

export interface ApiKey {
  readonly id: string;
  readonly key: string;
}

export async function createApiKey(url: string, tenant: string): Promise<ApiKey> {
  const r = expectStatus(`create a key of ${tenant}`, await request('POST', `${url}/v1/admin/tenants/${tenant}/keys`, { headers: ADMIN_AUTH }), 201);
  const { id, key } = r.json<{ id: string; key: string }>();
  return { id, key };
}

export async function revokeApiKey(url: string, id: string): Promise<void> {
  expectStatus(`revoke key ${id}`, await request('DELETE', `${url}/v1/admin/keys/${id}`, { headers: ADMIN_AUTH }), 204);
}

/** Log in with an API key: the session token. */
export async function login(url: string, apiKey: string): Promise<string> {
  const r = expectStatus('log in', await request('POST', `${url}/v1/sessions`, { headers: bearer(apiKey) }), 201);
  return r.json<{ token: string }>().token;
}

export async function logout(url: string, session: string): Promise<void> {
  expectStatus('log out', await request('DELETE', `${url}/v1/sessions/current`, { headers: bearer(session) }), 204);
}

/** A tenant with an API key and a session of that key. */
export interface TenantCreds {
  readonly name: string;
  readonly key: ApiKey;
  readonly session: string;
}

export async function tenantWithSession(url: string, name: string): Promise<TenantCreds> {
  await createTenant(url, name);
  const key = await createApiKey(url, name);
  return { name, key, session: await login(url, key.key) };
}

/** One page of GET /v1/kv (first page: prefix and limit; later: page). */
export interface ScanPage {
  readonly keys: Array<{ key: string; etag: string; expiresAt?: number }>;
  readonly next: string | null;
}

export async function scanPage(url: string, headers: Record<string, string>, query: string, o: { fresh?: boolean } = {}): Promise<ScanPage> {
  const r = expectStatus(`GET /v1/kv?${query}`, await request('GET', `${url}/v1/kv?${query}`, { headers, ...o }), 200);
  return r.json<ScanPage>();
}
