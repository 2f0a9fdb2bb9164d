// Start a private redis-server for local runs and tests. Never touches a Redis
// it did not start.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { mkdirSync } from 'node:fs';
import { waitUntil } from './wait.js';

export interface LocalRedis {
  readonly url: string;
  readonly port: number;
  readonly process: ChildProcess;
  stop(): Promise<void>;
}

export function findRedisServer(): string | undefined {
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p ? p : undefined;
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** One PING on a fresh connection: true when it answers PONG. */
function pings(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' }, () => {
      s.write('PING\r\n');
    });
    s.once('data', (d) => {
      s.destroy();
      resolve(d.toString().startsWith('+PONG'));
    });
    s.once('error', () => resolve(false));
  });
}

async function waitForPort(port: number, timeoutMs: number, child: ChildProcess): Promise<void> {
  await waitUntil(() => pings(port), {
    timeoutMs,
    what: `redis-server answering on port ${port}`,
    giveUp: () => (child.exitCode !== null ? `redis-server exited with code ${child.exitCode}` : undefined),
  });
}

export interface StartRedisOptions {
  /** Directory for an append-only file; omit for a memory-only server. */
  dir?: string;
  port?: number;
  bin?: string;
  /** Put redis-server in its own process group (not hit by the terminal's Ctrl-C). */
  detached?: boolean;
}

export async function startRedis(opts: StartRedisOptions = {}): Promise<LocalRedis> {
  const bin = opts.bin ?? findRedisServer();
  if (!bin) throw new Error('redis-server is not installed: install it (e.g. `apt-get install -y redis-server`) or set REDIS_URL to a running Redis');
  for (let attempt = 0; ; attempt++) {
    const port = opts.port ?? (await freePort());
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--daemonize', 'no', '--loglevel', 'warning'];
    if (opts.dir) {
      mkdirSync(opts.dir, { recursive: true });
      args.push('--dir', opts.dir, '--appendonly', 'yes');
    } else {
      args.push('--appendonly', 'no');
    }
    const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: opts.detached ?? false });
    try {
      await waitForPort(port, 5000, child);
    } catch (err) {
      child.kill('SIGKILL');
      if (attempt < 3 && opts.port === undefined) continue; // lost a race for the port
      throw err;
    }
    return {
      url: `redis://127.0.0.1:${port}`,
      port,
      process: child,
      stop: () =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGTERM');
          setTimeout(() => child.kill('SIGKILL'), 3000).unref();
        }),
    };
  }
}
