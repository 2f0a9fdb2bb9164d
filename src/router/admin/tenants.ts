// /v1/admin/tenants and /v1/admin/keys: tenants and their API keys (kept in
// Redis, infra/identity-store.ts). A key is shown once, when it is created.
import type { FastifyPluginAsync } from 'fastify';
import { kvError } from '../../core/errors.js';
import { jsonBody } from './json-body.js';
import type { AdminApiDeps } from './deps.js';

export const tenantRoutes: FastifyPluginAsync<AdminApiDeps> = async (app, d) => {
  app.get('/tenants', async () => ({ tenants: await d.identity.listTenants() }));

  app.post('/tenants', async (req, reply) => {
    const b = jsonBody(req);
    for (const k of Object.keys(b)) if (k !== 'name') throw kvError('KV_ERR_BAD_REQUEST', `unknown field ${JSON.stringify(k)} (this endpoint takes name)`);
    return reply.code(201).send(await d.identity.createTenant(b['name'] as string));
  });

  app.post('/tenants/:name/keys', async (req, reply) => {
    const { name } = req.params as { name: string };
    if (Object.keys(jsonBody(req)).length > 0) throw kvError('KV_ERR_BAD_REQUEST', 'this endpoint takes no body');
    const k = await d.identity.createApiKey(name);
    return reply.code(201).header('cache-control', 'no-store').send({ id: k.id, key: k.key, tenant: k.tenant, createdAt: k.createdAt });
  });

  app.delete('/keys/:id', async (req, reply) => {
    const { id } = req.params as { id: string };
    await d.identity.revokeApiKey(id);
    return reply.code(204).send();
  });
};
