// /v1/admin/shards: list the shards, add one, remove one, change a weight,
// forget a lost one. A change only plans a job and stores it in Redis; the
// coordinator (in a router primary) drives it, so any worker can take the
// request.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { kvError } from '../../core/errors.js';
import { OPS } from '../../core/protocol.js';
import { POINT_MAX, type PointRange } from '../../core/ring.js';
import { nextEpoch, ringMembers, ringOf } from '../../core/topology.js';
import { ShardConnection } from '../../infra/shard-client.js';
import type { Registration } from '../../infra/topology-store.js';
import { isActive, type JobKind } from '../../rebalance/job.js';
import { describePlan, planJob } from '../../rebalance/planner.js';
import { jobSummary } from './job-summary.js';
import { jsonBody } from './json-body.js';
import { flagParam, queryParam } from '../../infra/http.js';

const queryParamGiven = (req: FastifyRequest, name: string) => queryParam(req, name) !== undefined;
import type { AdminApiDeps } from './deps.js';

/** How long the shard list waits for one shard's /stats. */
const STATS_TIMEOUT_MS = 1000;

export const shardRoutes: FastifyPluginAsync<AdminApiDeps> = async (app, d) => {
  const count = (id: string, ranges: PointRange[]) => d.forwarder.connection(id).request({ o: OPS.COUNT, e: 0, ranges });

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
      records = (await conn.request({ o: OPS.COUNT, e: 0, ranges: [{ lo: 0, hi: POINT_MAX }] })).keys;
    } catch (err) {
      throw kvError('KV_ERR_SHARD_UNAVAILABLE', id, (err as Error).message);
    } finally {
      conn.close();
    }
    if (records > 0) throw kvError('KV_ERR_SHARD_NOT_EMPTY', id, records);
  }

  async function refuseWhileActive(): Promise<void> {
    const active = await d.jobs.get();
    if (isActive(active)) throw kvError('KV_ERR_REBALANCE_IN_PROGRESS', active.id, `${active.kind} ${active.shardId}`, active.state);
  }

  /**
   * Drop a lost shard from the ring without moving anything: its keys are
   * gone, the others take over its arcs (empty), reads of those keys answer
   * 404 and writes work again. Only for a shard that is down for good.
   */
  async function forget(id: string) {
    await refuseWhileActive();
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
    await refuseWhileActive();
    const [topology, registrations] = await Promise.all([d.topology.get(), d.topology.registrations()]);
    const job = await planJob({ kind, shardId, weight }, { topology, registrations, count });
    if (kind === 'add') await mustBeEmpty(shardId, registrations.find((r) => r.id === shardId)!.dataAddr);
    const plan = describePlan(job);
    if (dryRun) return reply.send({ dryRun: true, plan });
    await d.jobs.create(job);
    return reply.code(202).send({ job: jobSummary(job), plan });
  }

  /** A JSON body with only the fields this endpoint takes. */
  function body(req: FastifyRequest, fields: readonly string[]): Record<string, unknown> {
    const b = jsonBody(req);
    for (const k of Object.keys(b))
      if (!fields.includes(k)) throw kvError('KV_ERR_BAD_REQUEST', `unknown field ${JSON.stringify(k)} (this endpoint takes ${fields.join(', ')})`);
    if (b['dryRun'] !== undefined && typeof b['dryRun'] !== 'boolean') throw kvError('KV_ERR_BAD_REQUEST', '"dryRun" must be true or false');
    return b;
  }

  /** ?dryRun and a body's "dryRun" must not disagree. */
  function dryRunOf(req: FastifyRequest, b: Record<string, unknown>): boolean {
    const q = flagParam(req, 'dryRun');
    if (b['dryRun'] !== undefined && queryParamGiven(req, 'dryRun') && b['dryRun'] !== q)
      throw kvError('KV_ERR_BAD_REQUEST', '?dryRun and the body\'s "dryRun" disagree');
    return q || b['dryRun'] === true;
  }

  /** A shard's record count and size, over its data port; unknown when it does not answer in time. */
  async function stats(id: string, dataAddr: string): Promise<{ keys: number | null; bytes: number | null }> {
    const conn = new ShardConnection(id, dataAddr, { ...d.config, requestTimeoutMs: STATS_TIMEOUT_MS, connectTimeoutMs: STATS_TIMEOUT_MS });
    try {
      const s = await conn.request({ o: OPS.STATS, e: 0 });
      return { keys: s.records, bytes: s.bytes };
    } catch {
      return { keys: null, bytes: null };
    } finally {
      conn.close();
    }
  }

  /**
   * What a shard's health looks like from here: `up` when it is registered
   * and its data port answered, `unreachable` when it is registered but did
   * not answer (killed or hung: its registry entry has not expired yet),
   * `down` when it has no registry entry (no heartbeat for heartbeatTtlMs).
   */
  async function entry(id: string, dataAddr: string, reg: Registration | undefined, ttls: Map<string, number>) {
    const s = await stats(id, dataAddr);
    const health = !reg ? 'down' : s.keys === null ? 'unreachable' : 'up';
    // The age by the router's clock against the shard's: hosts' clocks are assumed close (NTP), as for TTLs.
    const heartbeatAgeMs = reg?.heartbeatAt !== undefined ? Math.max(0, Date.now() - reg.heartbeatAt) : null;
    return { registered: reg !== undefined, heartbeatAgeMs, heartbeatTtlLeftMs: ttls.get(id) ?? null, health, ...s };
  }

  app.get('/shards', async () => {
    const [t, regs] = await Promise.all([d.topology.get(), d.topology.registrations()]);
    const ttls = await d.topology.heartbeatTtls([...new Set([...t.shards.map((s) => s.id), ...regs.map((r) => r.id)])]);
    const shares = ringOf(t).shares();
    const inRing = await Promise.all(
      t.shards.map(async (s) => ({
        id: s.id,
        state: s.state,
        weight: s.weight,
        share: shares[s.id] ?? 0,
        dataAddr: s.dataAddr,
        adminAddr: s.adminAddr,
        ...(await entry(
          s.id,
          s.dataAddr,
          regs.find((r) => r.id === s.id),
          ttls,
        )),
      })),
    );
    const available = await Promise.all(
      regs
        .filter((r) => !t.shards.some((s) => s.id === r.id))
        .map(async (r) => ({
          id: r.id,
          state: 'available',
          weight: null,
          share: 0,
          dataAddr: r.dataAddr,
          adminAddr: r.adminAddr,
          ...(await entry(r.id, r.dataAddr, r, ttls)),
        })),
    );
    return { epoch: t.epoch, migration: t.migration ? { jobId: t.migration.jobId } : null, shards: [...inRing, ...available] };
  });

  app.post('/shards', { config: { query: ['dryRun'] } }, async (req, reply) => {
    const b = body(req, ['id', 'weight', 'dryRun']);
    if (typeof b['id'] !== 'string') throw kvError('KV_ERR_BAD_REQUEST', 'body needs "id": the shard id');
    return change('add', b['id'], b['weight'] as number | undefined, dryRunOf(req, b), reply);
  });

  app.delete('/shards/:id', { config: { query: ['dryRun', 'lost'] } }, async (req, reply) => {
    const { id } = req.params as { id: string };
    const lost = flagParam(req, 'lost');
    const dryRun = flagParam(req, 'dryRun');
    if (lost && dryRun) throw kvError('KV_ERR_BAD_QUERY', 'lost and dryRun do not go together (forget has no plan to show)');
    if (lost) return forget(id);
    return change('remove', id, undefined, dryRun, reply);
  });

  app.put('/shards/:id/weight', { config: { query: ['dryRun'] } }, async (req, reply) => {
    const { id } = req.params as { id: string };
    const b = body(req, ['weight', 'dryRun']);
    return change('weight', id, b['weight'] as number, dryRunOf(req, b), reply);
  });
};
