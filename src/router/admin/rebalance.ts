// /v1/admin/rebalance: the current job with its progress, the history,
// cancel, and live progress as server-sent events (one Redis subscriber per
// worker fans the job channel out to every client).
import { EventEmitter } from 'node:events';
import type { FastifyPluginAsync } from 'fastify';
import type { Redis } from 'ioredis';
import { createSubscriber } from '../../infra/redis.js';
import { progress, type Job } from '../../rebalance/job.js';
import { jobSummary } from './job-summary.js';
import type { AdminApiDeps } from './deps.js';

/** A comment line this often keeps proxies from closing an idle event stream. */
const SSE_KEEPALIVE_MS = 15_000;

export const rebalanceRoutes: FastifyPluginAsync<AdminApiDeps> = async (app, d) => {
  const status = async () => {
    const job = await d.jobs.get();
    if (!job) return { job: null };
    return { job: jobSummary(job), progress: progress(job), foregroundErrors: await d.jobs.foregroundErrors(job.id), coordinator: await d.jobs.leaseHolder() };
  };

  app.get('/rebalance', status);
  app.get('/rebalance/history', async () => ({ jobs: (await d.jobs.history()).map(jobSummary) }));
  app.post('/rebalance/cancel', async (_req, reply) => {
    const job = await d.jobs.requestCancel();
    return reply.code(202).send({ cancelling: job.id, state: job.state });
  });

  const events = new EventEmitter();
  events.setMaxListeners(0);
  let sub: Redis | undefined;
  const ensureSub = async () => {
    if (sub) return;
    sub = createSubscriber(d.config);
    sub.on('message', (_ch: string, msg: string) => events.emit('progress', msg));
    await sub.subscribe(d.jobs.channel);
  };
  app.addHook('onClose', async () => {
    sub?.disconnect();
  });

  app.get('/rebalance/events', async (req, reply) => {
    // HEAD gets the headers and an end: Node sends nothing for writes to a
    // HEAD answer, so a stream that never ends would leave the client with
    // no answer at all (and its connection stuck).
    if (req.method === 'HEAD') return reply.code(200).type('text/event-stream').header('cache-control', 'no-cache').send();
    await ensureSub();
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    const send = (data: string) => res.write(`event: progress\ndata: ${data}\n\n`);
    send(JSON.stringify(await status()));
    const onMsg = (msg: string) => {
      const { job, progress: p } = JSON.parse(msg) as { job: Job; progress: unknown };
      send(JSON.stringify({ job: jobSummary(job), progress: p }));
    };
    events.on('progress', onMsg);
    const ping = setInterval(() => res.write(': keep-alive\n\n'), SSE_KEEPALIVE_MS);
    req.raw.on('close', () => {
      clearInterval(ping);
      events.off('progress', onMsg);
    });
  });
};
