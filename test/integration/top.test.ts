// `kv top` against a real system (private Redis, three shards, a router with
// two workers): the live view under a pseudo-terminal (util-linux `script`),
// --once --json against the admin API, and its one-line errors.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/local/redis-server.js';
import { waitUntil } from '../../src/local/wait.js';
import { KV_BIN, TestCluster } from '../helpers/procs.js';
import { ADMIN_AUTH, SECRETS_ENV } from '../helpers/secrets.js';
import { get } from '../helpers/http.js';
import { getJson } from '../../dev/http.js';
import { addShard, bulkLoad, waitForJob } from '../helpers/rebalance.js';
import type { TopSnapshot } from '../../src/cli/top-model.js';

const EXIT_TIMEOUT_MS = 15_000;
const SCREEN_TIMEOUT_MS = 20_000;

// Escape sequences (CSI ... final byte) and other control bytes, so the screen reads as text.
const strip = (s: string) => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/[\x00-\x08\x0b-\x1f]/g, '\n');

interface Proc {
  out: () => string;
  err: () => string;
  write: (s: string) => void;
  exited: Promise<number | null>;
  kill: () => void;
}

function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { out: () => out, err: () => err, write: (s) => child.stdin.write(s), exited, kill: () => child.kill('SIGKILL') };
}

/** `kv top ...` under a pseudo-terminal: `script` gives it a tty on stdin and stdout and passes our stdin (the keys) through. */
const inPty = (args: readonly string[], env: NodeJS.ProcessEnv) =>
  run('script', ['-qfec', [process.execPath, KV_BIN, 'top', ...args].map((a) => `'${a}'`).join(' '), '/dev/null'], env);

async function exitCode(p: Proc, what: string): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not exit within ${EXIT_TIMEOUT_MS} ms; output:\n${strip(p.out()).slice(-2000)}\n${p.err()}`)),
      EXIT_TIMEOUT_MS,
    );
  });
  try {
    return await Promise.race([p.exited, timeout]);
  } finally {
    clearTimeout(timer);
    p.kill();
  }
}

let c: TestCluster;
let env: NodeJS.ProcessEnv;
const procs: Proc[] = [];
const track = (p: Proc) => (procs.push(p), p);

beforeAll(async () => {
  // A slow fixed move rate, so the last test sees the move running.
  c = await TestCluster.start({ shards: 3, workers: 2, routerSet: { rebalancePacing: 'fixed', rebalanceMaxKeysPerSec: 10, rebalanceBatchKeys: 5 } });
  // KV_DATA_DIR: no local `kv up` secrets or URLs from the working directory.
  env = { ...process.env, ...SECRETS_ENV, KV_DATA_DIR: c.dir, KV_URL: '', NO_COLOR: '' };
  await bulkLoad(c.url, 'top-', 300);
});
afterAll(async () => {
  for (const p of procs) p.kill();
  await c?.stop();
});

interface AdminShardsBody {
  epoch: number;
  shards: Array<{ id: string; share: number; keys: number | null; state: string }>;
}

describe('kv top', () => {
  it('draws the header and every shard in a terminal, redraws, and quits on q with exit 0 and the terminal restored', async () => {
    const p = track(inPty(['--url', c.url, '--interval-ms', '200'], env));
    const admin = await getJson<AdminShardsBody>(`${c.url}/v1/admin/shards`, { headers: ADMIN_AUTH });
    const screen = await waitUntil(
      () => {
        const s = strip(p.out());
        const ok =
          s.includes(`router ${c.url}`) &&
          s.includes(`epoch ${admin.epoch}`) &&
          s.includes('shards 3') &&
          admin.shards.every((x) => new RegExp(`^${x.id}\\s+active`, 'm').test(s));
        return ok && s;
      },
      { timeoutMs: SCREEN_TIMEOUT_MS, what: 'the header and every shard on the screen', giveUp: () => (p.err() ? p.err() : undefined) },
    );
    expect(screen).toContain('(q quits)');
    expect(screen).toMatch(/^router\s+req\/s\s+p50 ms\s+p99 ms\s+4xx\/s\s+5xx\/s\s+in-flight\s+workers/m);
    expect(screen).toContain('move: none running');
    // Redrawn in place: the alternate screen, and more than one frame (cursor home each time).
    await waitUntil(() => (p.out().split('\x1b[H').length > 3 ? true : undefined), { timeoutMs: SCREEN_TIMEOUT_MS, what: 'a few redraws' });
    expect(p.out()).toContain('\x1b[?1049h');
    p.write('q');
    expect(await exitCode(p, 'kv top after q')).toBe(0);
    // Left the alternate screen and showed the cursor again.
    expect(p.out().lastIndexOf('\x1b[?1049l')).toBeGreaterThan(p.out().lastIndexOf('\x1b[?1049h'));
    expect(p.out()).toContain('\x1b[?25h');
  });

  it('shows an unreachable router in the header and keeps retrying until q', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const p = track(inPty(['--url', dead, '--interval-ms', '200'], env));
    // Two frames that say so: it went on after the first failure.
    await waitUntil(() => (strip(p.out()).split(`router ${dead} unreachable`).length > 2 ? true : undefined), {
      timeoutMs: SCREEN_TIMEOUT_MS,
      what: 'the unreachable router in two frames',
    });
    expect(strip(p.out())).toContain('retrying every 0.2 s');
    p.write('q');
    expect(await exitCode(p, 'kv top after q')).toBe(0);
  });

  it('--once --json lists the shards with the shares and records of GET /v1/admin/shards, and router rates when the router publishes them', async () => {
    // Traffic during the window, so request rates (where published) are above zero.
    let traffic = true;
    const load = (async () => {
      for (let i = 0; traffic; i++) await get(`${c.url}/v1/kv/top-${i % 300}`);
    })();
    const p = track(run(process.execPath, [KV_BIN, 'top', '--once', '--json', '--url', c.url, '--interval-ms', '500'], env));
    const code = await exitCode(p, 'kv top --once --json');
    traffic = false;
    await load;
    expect(p.err()).toBe('');
    expect(code).toBe(0);
    const snap = JSON.parse(p.out()) as TopSnapshot;
    const admin = await getJson<AdminShardsBody>(`${c.url}/v1/admin/shards`, { headers: ADMIN_AUTH });
    expect(snap.epoch).toBe(admin.epoch);
    expect(snap.shardCount).toBe(3);
    expect(snap.shards.map((s) => ({ id: s.id, share: s.share, records: s.records, state: s.state }))).toEqual(
      admin.shards.map((s) => ({ id: s.id, share: s.share, records: s.keys, state: s.state })),
    );
    expect(snap.shards.reduce((a, s) => a + (s.records ?? 0), 0)).toBe(300);
    expect(snap.shards.every((s) => s.health === 'ok')).toBe(true);
    expect(snap.errors).toEqual([]);
    expect(snap.move).toBeNull();
    // Each column is a number exactly when the router publishes its metric, "-" (null) otherwise.
    const metrics = (await get(`${c.url}/metrics`, { headers: ADMIN_AUTH })).text;
    const has = (name: string) => new RegExp(`^# TYPE ${name} `, 'm').test(metrics);
    const [r] = snap.routers;
    expect(snap.routers).toHaveLength(1);
    expect(r!.url).toBe(c.url);
    if (has('kv_router_requests_total')) expect(r!.reqPerSec).toBeGreaterThan(0);
    else expect(r!.reqPerSec).toBeNull();
    if (has('kv_router_request_duration_seconds')) expect(r!.p99Ms).toBeGreaterThan(0);
    else expect(r!.p99Ms).toBeNull();
    if (has('kv_router_workers')) expect(r!.workers).toBe(2);
    else expect(r!.workers).toBeNull();
    if (has('kv_router_forward_duration_seconds')) expect(snap.shards.reduce((a, s) => a + (s.opsPerSec ?? 0), 0)).toBeGreaterThan(0);
    else expect(snap.shards.every((s) => s.opsPerSec === null && s.p99Ms === null)).toBe(true);
  });

  it('--once without screen codes prints the tables', async () => {
    const p = track(run(process.execPath, [KV_BIN, 'top', '--once', '--url', c.url, '--interval-ms', '100'], env));
    expect(await exitCode(p, 'kv top --once')).toBe(0);
    expect(p.out()).not.toMatch(/\x1b/);
    for (const id of ['s1', 's2', 's3']) expect(p.out()).toMatch(new RegExp(`^${id}\\s+active\\s+1\\s+\\d+\\.\\d%`, 'm'));
  });

  it('says in one line which token is missing or refused, and which router is unreachable, and exits 1', async () => {
    const noToken = track(run(process.execPath, [KV_BIN, 'top', '--once', '--url', c.url, '--interval-ms', '100'], { ...env, KV_ADMIN_TOKEN: '' }));
    expect(await exitCode(noToken, 'kv top without a token')).toBe(1);
    expect(noToken.err().trim().split('\n')).toEqual([
      expect.stringMatching(/^kv: router .* needs the admin token \(KV_ERR_UNAUTHORIZED\): set KV_ADMIN_TOKEN or pass --token/),
    ]);

    const wrong = track(run(process.execPath, [KV_BIN, 'top', '--once', '--url', c.url, '--interval-ms', '100', '--token', 'not-the-token-0123456789'], env));
    expect(await exitCode(wrong, 'kv top with a wrong token')).toBe(1);
    expect(wrong.err().trim().split('\n')).toEqual([expect.stringMatching(/^kv: router .* refused the admin token from --token \(KV_ERR_UNAUTHORIZED\)/)]);

    const dead = `http://127.0.0.1:${await freePort()}`;
    const gone = track(run(process.execPath, [KV_BIN, 'top', '--once', '--url', dead, '--interval-ms', '100'], env));
    expect(await exitCode(gone, 'kv top against a dead port')).toBe(1);
    expect(gone.err().trim().split('\n')).toEqual([`kv: router ${dead} unreachable: ECONNREFUSED`]);
    expect(gone.out()).toBe('');
  });

  // Last: it changes the ring.
  it('shows the running move (job, keys done of total, pacing) and the joining shard', async () => {
    await c.startShard('s4');
    const res = await addShard(c.url, 's4');
    expect(res.status, res.text).toBe(202);
    const jobId = (res.json() as { job: { id: string } }).job.id;
    await waitForJob(c.url, ['streaming'], 20_000);
    const p = track(run(process.execPath, [KV_BIN, 'top', '--once', '--json', '--url', c.url, '--interval-ms', '100'], env));
    expect(await exitCode(p, 'kv top --once --json during a move')).toBe(0);
    const snap = JSON.parse(p.out()) as TopSnapshot;
    expect(snap.move).toMatchObject({ jobId, kind: 'add', shardId: 's4', state: 'streaming', pacing: { mode: 'fixed', keysPerSec: 10 } });
    expect(snap.move!.keysTotal).toBeGreaterThan(0);
    expect(snap.move!.keysDone).toBeLessThan(snap.move!.keysTotal);
    expect(snap.shards.find((s) => s.id === 's4')?.state).toBe('joining');
    const text = track(run(process.execPath, [KV_BIN, 'top', '--once', '--url', c.url, '--interval-ms', '100'], env));
    expect(await exitCode(text, 'kv top --once during a move')).toBe(0);
    expect(text.out()).toMatch(new RegExp(`^move ${jobId.slice(0, 8)}: add s4, streaming, \\d+/\\d+ keys \\d+\\.\\d%`, 'm'));
    expect(text.out()).toContain('pace: fixed, 10 keys/s');
  });
});
