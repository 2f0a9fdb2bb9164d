// Process entry for one shard: build, start, report readiness over IPC when
// a parent asked for it, and close cleanly on SIGTERM/SIGINT or when the
// parent goes away.
import type { ShardConfig } from '../core/config.js';
import { buildShard } from './app.js';

export async function startShardProcess(config: ShardConfig): Promise<void> {
  let stop = async (): Promise<void> => undefined;
  const shard = buildShard(config, {
    onRetire: () => {
      console.error(`shard ${config.id}: drained out of the ring; leaving the registry and stopping`);
      void stop();
    },
  });
  const addrs = await shard.start();
  console.error(`shard ${config.id}: data ${addrs.dataAddr}, admin http://${addrs.adminAddr}, store ${config.dataDir} (pid ${process.pid})`);
  if (process.send) process.send({ type: 'ready', id: config.id, ...addrs, pid: process.pid });
  let closing = false;
  stop = async () => {
    if (closing) return;
    closing = true;
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await shard.close().catch((err: Error) => console.error(`shard ${config.id}: close failed: ${err.message}`));
    process.exit(0);
  };
  process.on('SIGTERM', () => {
    void stop();
  });
  process.on('SIGINT', () => {
    void stop();
  });
  process.on('disconnect', () => {
    void stop();
  });
}
