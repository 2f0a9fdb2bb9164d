// Admin API on every router worker: shards (list, add, remove, weight, forget
// a lost one), the rebalance job (state, cancel, live server-sent events) and
// /metrics.
// Changes only create a job in Redis; the coordinator (in a router primary)
// drives it, so any worker can take the request.
import { timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import client from 'prom-client';
import { kvError } from '../src/errors.js';
import { OPS } from '../src/protocol.js';
import type { RouterConfig } from '../src/config.js';
import { createSubscriber } from '../src/redis.js';
import { nextEpoch, ringMembers, ringOf } from '../src/topology.js';
import type { TopologyStore } from '../src/topology-store.js';
import { isActive, progress, RebalanceStore, type Job, type JobKind } from '../src/rebalance.js';
import { POINT_MAX, type PointRange } from '../src/migration.js';
import { ShardConnection } from '../src/shard-client.js';
import { planJob, describePlan } from './rebalance-plan.js';
import type { Forwarder } from './forwarder.js';

export interface AdminDeps {
  config: RouterConfig;
  redis: Redis;
  topology: TopologyStore;
  forwarder: Forwarder;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function jsonBody(body: unknown): Record<string, unknown> {
  if (body === undefined || body === null || (body instanceof Uint8Array && body.byteLength === 0)) return {};
  try {
    const doc = JSON.parse(utf8.decode(body as Uint8Array)) as unknown;
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('expected a JSON object');
    return doc as Record<string, unknown>;
  } catch (err) {
    throw kvError('KV_ERR_BAD_JSON', (err as Error).message);
  }
}

const truthy = (v: unknown) => v === '' || v === '1' || v === 'true' || v === true;

export function registerAdminRoutes(app: FastifyInstance, d: AdminDeps): { fgErrorsKey(jobId: string): string } {
  const jobs = new RebalanceStore(d.redis, d.config.redisPrefix);
  const fgKey = (jobId: string) => `${d.config.redisPrefix}rebalance:fg5xx:${jobId}`;

  if (d.config.adminToken !== '') {
    const want = Buffer.from(d.config.adminToken);
    app.addHook('onRequest', (req, _reply, done) => {
      if (!req.url.startsWith('/v1/admin/')) return done();
      const h = req.headers.authorization ?? '';
      const got = Buffer.from(h.startsWith('Bearer ') ? h.slice(7) : '');
      // Compare in constant time; lengths differ -> compare against itself.
      const ok = got.length === want.length ? timingSafeEqual(got, want) : (timingSafeEqual(want, want), false);
      done(ok ? undefined : kvError('KV_ERR_UNAUTHORIZED', h ? 'the token does not match' : 'send Authorization: Bearer <token>'));
    });
  }

  const count = (id: string, ranges: PointRange[]) =>
    d.forwarder.connection(id).request({ o: OPS.COUNT, e: 0, ranges } as never) as Promise<{ keys: number; bytes: number }>;

  /**
   * A joining shard must hold nothing: records left from an earlier
   * membership (a shard that was forgotten while down, then restarted) would
   * be older than what the ring holds now, and the streams only overwrite
   * what they bring. A shard outside the ring counts its records exactly.
   */
  async function mustBeEmpty(id: string, dataAddr: string): Promise<void> {
    // Over the shard's data port: cheap for this worker, which keeps serving
    // traffic while it plans.
    const conn = new ShardConnection(id, dataAddr, d.config);
    let records: number;
    try {
      const c = (await conn.request({ o: OPS.COUNT, e: 0, ranges: [{ lo: 0, hi: POINT_MAX }] } as never)) as { keys: number };
      records = c.keys;
    } catch (err) {
      throw kvError('KV_ERR_SHARD_UNAVAILABLE', id, (err as Error).message);
    } finally {
      conn.close();
    }
    if (records > 0) throw kvError('KV_ERR_SHARD_NOT_EMPTY', id, records);
  }

  /**
   * Drop a lost shard from the ring without moving anything: its keys are
   * gone, the others take over its arcs (empty), reads of those keys answer
   * 404 and writes work again. Only for a shard that is down for good.
   */
  async function forget(id: string) {
    const active = await jobs.get();
    if (isActive(active)) throw kvError('KV_ERR_REBALANCE_IN_PROGRESS', active.id, `${active.kind} ${active.shardId}`, active.state);
    if ((await d.topology.registrations()).some((r) => r.id === id)) throw kvError('KV_ERR_SHARD_ALIVE', id, id);
    let share = 0;
    const t = await d.topology.update((cur) => {
      if (cur.migration) throw kvError('KV_ERR_REBALANCE_IN_PROGRESS', cur.migration.jobId, 'move', 'migrating');
      if (!cur.shards.some((s) => s.id === id)) throw kvError('KV_ERR_SHARD_NOT_IN_RING', id);
      const rest = cur.shards.filter((s) => s.id !== id);
      if (ringMembers({ ...cur, shards: rest }).length === 0) throw kvError('KV_ERR_LAST_SHARD', id);
      share = ringOf(cur).shares()[id] ?? 0;
      return nextEpoch(cur, { shards: rest });
    });
    app.log.warn(`shard ${id} forgotten at epoch ${t.epoch}: its keys (${(share * 100).toFixed(1)}% of the ring) are lost`);
    return { forgotten: id, epoch: t.epoch, shareLost: Math.round(share * 10_000) / 10_000, shards: t.shards.map((s) => s.id) };
  }

  async function change(kind: JobKind, shardId: string, weight: number | undefined, dryRun: boolean, reply: FastifyReply) {
    const active = await jobs.get();
    if (isActive(active)) throw kvError('KV_ERR_REBALANCE_IN_PROGRESS', active.id, `${active.kind} ${active.shardId}`, active.state);
    const [topology, registrations] = await Promise.all([d.topology.get(), d.topology.registrations()]);
    const job = await planJob({ kind, shardId, weight }, { topology, registrations, count });
    if (kind === 'add') await mustBeEmpty(shardId, registrations.find((r) => r.id === shardId)!.dataAddr);
    const plan = describePlan(job);
    if (dryRun) return reply.send({ dryRun: true, plan });
    await jobs.create(job);
    return reply.code(202).send({ job: summary(job), plan });
  }

  app.get('/v1/admin/shards', async () => {
    const [t, regs] = await Promise.all([d.topology.get(), d.topology.registrations()]);
    const shares = ringOf(t).shares();
    const stats = async (adminAddr: string) => {
      try {
        const res = await fetch(`http://${adminAddr}/stats`, { signal: AbortSignal.timeout(1000) });
        const s = (await res.json()) as { records?: number; bytes?: number };
        return { keys: s.records ?? null, bytes: s.bytes ?? null };
      } catch {
        return { keys: null, bytes: null };
      }
    };
    const inRing = await Promise.all(t.shards.map(async (s) => ({
      id: s.id, state: s.state, weight: s.weight, share: shares[s.id] ?? 0,
      registered: regs.some((r) => r.id === s.id), dataAddr: s.dataAddr, adminAddr: s.adminAddr, ...(await stats(s.adminAddr)),
    })));
    const available = await Promise.all(regs.filter((r) => !t.shards.some((s) => s.id === r.id)).map(async (r) => ({
      id: r.id, state: 'available', weight: null, share: 0, registered: true, dataAddr: r.dataAddr, adminAddr: r.adminAddr, ...(await stats(r.adminAddr)),
    })));
    return { epoch: t.epoch, migration: t.migration ? { jobId: t.migration.jobId } : null, shards: [...inRing, ...available] };
  });

  app.post('/v1/admin/shards', async (req, reply) => {
    const b = jsonBody(req.body);
    if (typeof b['id'] !== 'string') throw kvError('KV_ERR_BAD_REQUEST', 'body needs "id": the shard id');
    const q = req.query as Record<string, unknown>;
    return change('add', b['id'], b['weight'] as number | undefined, truthy(q['dryRun']) || b['dryRun'] === true, reply);
  });

  app.delete('/v1/admin/shards/:id', async (req, reply) => {
    const { id } = req.params as { id: string };
    const q = req.query as Record<string, unknown>;
    if (truthy(q['lost'])) return forget(id);
    return change('remove', id, undefined, truthy(q['dryRun']), reply);
  });

  app.put('/v1/admin/shards/:id/weight', async (req, reply) => {
    const { id } = req.params as { id: string };
    const b = jsonBody(req.body);
    return change('weight', id, b['weight'] as number, truthy((req.query as Record<string, unknown>)['dryRun']) || b['dryRun'] === true, reply);
  });

  const status = async () => {
    const job = await jobs.get();
    if (!job) return { job: null };
    const fg = Number((await d.redis.get(fgKey(job.id))) ?? 0);
    return { job: summary(job), progress: progress(job), foregroundErrors: fg, coordinator: await jobs.leaseHolder() };
  };
  app.get('/v1/admin/rebalance', status);
  app.get('/v1/admin/rebalance/history', async () => ({ jobs: (await jobs.history()).map(summary) }));
  app.post('/v1/admin/rebalance/cancel', async (_req, reply) => {
    const job = await jobs.requestCancel();
    return reply.code(202).send({ cancelling: job.id, state: job.state });
  });

  // Server-sent events: one Redis subscriber per worker fans out to clients.
  const events = new EventEmitter();
  events.setMaxListeners(0);
  let sub: Redis | undefined;
  const ensureSub = async () => {
    if (sub) return;
    sub = createSubscriber(d.config);
    sub.on('message', (_ch: string, msg: string) => events.emit('progress', msg));
    await sub.subscribe(jobs.channel);
  };
  app.get('/v1/admin/rebalance/events', async (req: FastifyRequest, reply: FastifyReply) => {
    await ensureSub();
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    const send = (data: string) => res.write(`event: progress\ndata: ${data}\n\n`);
    send(JSON.stringify(await status()));
    const onMsg = (msg: string) => {
      const { job, progress: p } = JSON.parse(msg) as { job: Job; progress: unknown };
      send(JSON.stringify({ job: summary(job), progress: p }));
    };
    events.on('progress', onMsg);
    const ping = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    req.raw.on('close', () => {
      clearInterval(ping);
      events.off('progress', onMsg);
    });
  });

  // Prometheus metrics: this worker's counters plus the cluster's job state.
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'kv_router_' });
  const job = { last: null as Job | null };
  const refreshJob = async () => { job.last = await jobs.get().catch(() => job.last); };
  new client.Gauge({ name: 'kv_topology_epoch', help: 'Topology epoch this worker routes with', registers: [registry],
    collect() { this.set(d.forwarder.topology?.epoch ?? 0); } });
  new client.Gauge({ name: 'kv_router_retries', help: 'STALE_EPOCH/NOT_OWNER retries by this worker', registers: [registry],
    collect() { this.set(d.forwarder.counters.retries); } });
  new client.Gauge({ name: 'kv_router_fallback_reads', help: 'Reads that fell back to the old owner during a migration', registers: [registry],
    collect() { this.set(d.forwarder.counters.fallbackReads); } });
  new client.Gauge({ name: 'kv_rebalance_keys_moved', help: 'Keys moved by the current or last rebalance job', registers: [registry],
    collect() { this.set(job.last ? progress(job.last).keysDone : 0); } });
  new client.Gauge({ name: 'kv_rebalance_bytes_moved', help: 'Value bytes moved by the current or last rebalance job', registers: [registry],
    collect() { this.set(job.last ? progress(job.last).bytesDone : 0); } });
  new client.Gauge({ name: 'kv_rebalance_keys_total', help: 'Keys the current or last rebalance job moves in all', registers: [registry],
    collect() { this.set(job.last ? progress(job.last).keysTotal : 0); } });
  new client.Gauge({ name: 'kv_rebalance_active', help: '1 while a rebalance job runs', registers: [registry],
    collect() { this.set(isActive(job.last) ? 1 : 0); } });
  app.get('/metrics', async (_req, reply) => {
    await refreshJob();
    return reply.type(registry.contentType).send(await registry.metrics());
  });

  app.addHook('onClose', async () => { sub?.disconnect(); });
  return { fgErrorsKey: fgKey };
}

function summary(job: Job): Record<string, unknown> {
  return {
    id: job.id, kind: job.kind, shardId: job.shardId, state: job.state, direction: job.direction,
    createdAt: job.createdAt, startedAt: job.startedAt, finishedAt: job.finishedAt, error: job.error,
    migrateEpoch: job.migrateEpoch, commitEpoch: job.commitEpoch, coordinator: job.coordinator,
    streams: job.streams.map((s) => ({
      source: s.source, target: s.target, keysDone: s.keysDone, keysTotal: Math.max(s.keysTotal, s.keysDone),
      bytesDone: s.bytesDone, bytesTotal: Math.max(s.bytesTotal, s.bytesDone), done: s.done, lastError: s.lastError,
      startedAt: s.startedAt, finishedAt: s.finishedAt,
    })),
  };
}
