// A router worker: builds the app, listens on the shared port (cluster module
// hands it connections round robin), tells the primary when it is ready, and
// drains on request. Drain: stop accepting, answer every further request with
// `Connection: close`, let open connections finish, then exit. Idle
// keep-alive connections are not cut at once: clients honour the
// `Keep-Alive: timeout` hint and close them first, so no request is lost.
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Socket } from 'node:net';
import type { RouterConfig } from '../core/config.js';
import { buildRouter } from './app.js';
import { WorkerMetricsChannel } from './host-metrics.js';

/** How often a draining worker looks whether its connections are gone. */
const DRAIN_POLL_MS = 50;

export type WorkerMessage = { type: 'ready'; pid: number; port: number; workerId: string } | { type: 'drained'; pid: number };

export async function runWorker(config: RouterConfig): Promise<void> {
  let draining = false;
  const router = buildRouter(config, { draining: () => draining, hostMetrics: new WorkerMetricsChannel(config.metricsWorkerTimeoutMs) });
  const { app } = router;
  const sockets = new Set<Socket>();
  app.server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });

  const drain = async () => {
    if (draining) return;
    draining = true;
    // net.Server.close, not http.Server.close: stop accepting without
    // cutting idle keep-alive sockets that a client may be writing to now.
    net.Server.prototype.close.call(app.server);
    const deadline = Date.now() + config.drainTimeoutMs;
    while (sockets.size > 0 && Date.now() < deadline) {
      // Idle sockets past the keep-alive window are closed by the client or
      // by Node's own keepAliveTimeout; busy ones finish their response.
      await sleep(DRAIN_POLL_MS);
    }
    for (const s of sockets) s.destroy();
    await app.close().catch(() => undefined);
    send({ type: 'drained', pid: process.pid });
    process.exit(0);
  };

  process.on('message', (msg: unknown) => {
    if ((msg as { type?: string })?.type === 'drain') void drain();
  });
  // The primary coordinates shutdown; a terminal's Ctrl-C reaches every
  // process in the group, so workers ignore the signal and wait to be told.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => {
    void drain();
  });
  // Primary gone: drain and leave rather than linger as an orphan.
  process.on('disconnect', () => {
    void drain();
  });

  await router.start();
  await app.listen({ port: config.port, host: config.host });
  const port = (app.server.address() as net.AddressInfo).port;
  const workerId = process.env['KV_WORKER_ID'] ?? '0';
  send({ type: 'ready', pid: process.pid, port, workerId });
}

function send(msg: WorkerMessage): void {
  if (process.send) process.send(msg);
}
