// A tenant, an API key and a session for the benchmarks, made through the
// router's admin and session APIs (routers of this checkout only: an older
// build has no tenants).
import { request } from '../dev/http.js';
import { ADMIN_HEADER } from './topology.js';

export interface TenantCredentials {
  readonly tenant: string;
  /** `kvk_…`: sent as `Authorization: Bearer <apiKey>`. */
  readonly apiKey: string;
}

/** Create tenant `name` and an API key of it. */
export async function createTenant(routerUrl: string, name: string): Promise<TenantCredentials> {
  const headers = { ...ADMIN_HEADER, 'content-type': 'application/json' };
  const t = await request('POST', `${routerUrl}/v1/admin/tenants`, { headers, body: JSON.stringify({ name }) });
  if (t.status !== 201) throw new Error(`creating tenant ${name}: ${t.status} ${t.text.slice(0, 300)}`);
  const k = await request('POST', `${routerUrl}/v1/admin/tenants/${encodeURIComponent(name)}/keys`, { headers, body: '{}' });
  if (k.status !== 201) throw new Error(`creating an API key of ${name}: ${k.status} ${k.text.slice(0, 300)}`);
  return { tenant: name, apiKey: k.json<{ key: string }>().key };
}

/** Log in with an API key: the session token (`kvs_…`) of POST /v1/sessions. */
export async function createSession(routerUrl: string, apiKey: string): Promise<string> {
  const res = await request('POST', `${routerUrl}/v1/sessions`, { headers: { authorization: `Bearer ${apiKey}` } });
  if (res.status !== 201) throw new Error(`POST /v1/sessions: ${res.status} ${res.text.slice(0, 300)}`);
  return res.json<{ token: string }>().token;
}
