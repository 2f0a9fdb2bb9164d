// Tenants and their key namespace. A tenant's keys are stored on the shards
// as U+FFFF, the tenant name, U+FFFF, then the client's key. Client keys may
// not hold U+FFFE or U+FFFF, so no client key (of a tenant, or anonymous) can
// ever equal or start like another tenant's stored key. Pure.
import { kvError } from './errors.js';

export const TENANT_RE = /^[a-z0-9][a-z0-9-]{0,31}$/;
const SEP = '\uffff';
const NONCHAR_RE = /[\ufffe\uffff]/;

export function validateTenantName(name: unknown): string {
  if (typeof name !== 'string' || !TENANT_RE.test(name))
    throw kvError('KV_ERR_BAD_TENANT', JSON.stringify(typeof name === 'string' ? name.slice(0, 40) : name));
  return name;
}

/** A client key may not hold U+FFFE or U+FFFF (they mark tenant namespaces). */
export function checkClientKey(key: string): string {
  if (NONCHAR_RE.test(key)) throw kvError('KV_ERR_KEY_INVALID', 'U+FFFE and U+FFFF are not allowed in keys');
  return key;
}

/** The key as stored on the shards: namespaced for a tenant, as it is for an anonymous caller (tenant null). */
export function storedKey(tenant: string | null, key: string): string {
  return tenant === null ? key : SEP + tenant + SEP + key;
}

/** The client's key of a stored key of `tenant` (undefined when it is not one of that tenant's). */
export function clientKeyOf(tenant: string | null, stored: string): string | undefined {
  if (tenant === null) return stored.startsWith(SEP) ? undefined : stored;
  const head = SEP + tenant + SEP;
  return stored.startsWith(head) ? stored.slice(head.length) : undefined;
}
