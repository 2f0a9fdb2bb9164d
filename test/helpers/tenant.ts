// A tenant and an API key for it, made through the admin API of a router
// that runs with dataAuth=true.
import { request } from './http.js';
import { ADMIN_AUTH } from './secrets.js';

const JSON_HEADERS = { ...ADMIN_AUTH, 'content-type': 'application/json' };

/** Create tenant `name` and return a new API key (`kvk_…`) of it. */
export async function createApiKey(routerUrl: string, name: string): Promise<string> {
  const t = await request('POST', `${routerUrl}/v1/admin/tenants`, { headers: JSON_HEADERS, body: JSON.stringify({ name }) });
  if (t.status !== 201 && t.json()['code'] !== 'KV_ERR_TENANT_EXISTS') throw new Error(`creating tenant ${name}: ${t.status} ${t.text}`);
  const k = await request('POST', `${routerUrl}/v1/admin/tenants/${name}/keys`, { headers: JSON_HEADERS, body: '{}' });
  if (k.status !== 201) throw new Error(`creating an API key of ${name}: ${k.status} ${k.text}`);
  return k.json<{ key: string }>().key;
}
