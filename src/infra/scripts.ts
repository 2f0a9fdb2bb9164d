// The Redis Lua scripts, one `.lua` file each in ./lua, named
// `<name>-<number of keys>.lua`. They are read once when this module loads and
// defined on each connection with ioredis' defineCommand, which sends EVALSHA
// and falls back to EVAL when the server does not know the script yet.
import { readdirSync, readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

const DIR = new URL('./lua/', import.meta.url);

interface ScriptDef {
  readonly command: string;
  readonly numberOfKeys: number;
  readonly lua: string;
}

/** `topology-cas-2.lua` -> command `kvTopologyCas` with 2 keys. */
function load(): Map<string, ScriptDef> {
  const out = new Map<string, ScriptDef>();
  for (const file of readdirSync(DIR)) {
    const m = /^([a-z-]+)-(\d+)\.lua$/.exec(file);
    if (!m) continue;
    const name = m[1]!;
    const command = 'kv' + name.replace(/(^|-)([a-z])/g, (_s, _d: string, c: string) => c.toUpperCase());
    out.set(name, { command, numberOfKeys: Number(m[2]), lua: readFileSync(new URL(file, DIR), 'utf8') });
  }
  return out;
}

const DEFS = load();

type Arg = string | number;
type Call = (...args: Arg[]) => Promise<unknown>;

/** The project's scripts as typed calls on one connection. */
export interface Scripts {
  topologyCas(topologyKey: string, channel: string, expectedEpoch: number, record: string): Promise<[number, number]>;
  jobCreate(jobKey: string, job: string): Promise<string | null>;
  jobSave(leaseKey: string, jobKey: string, historyKey: string, owner: string, job: string, final: boolean): Promise<number>;
  leaseTake(leaseKey: string, owner: string, ttlMs: number): Promise<number>;
  leaseRelease(leaseKey: string, owner: string): Promise<number>;
}

/** The script as a call on `redis`, defined on the connection at its first use. */
function command(redis: Redis, name: string): Call {
  const def = DEFS.get(name);
  if (!def) throw new Error(`Lua script ${name} is missing from ${DIR.pathname}`);
  return (...args) => {
    const r = redis as unknown as Record<string, Call | undefined>;
    if (typeof r[def.command] !== 'function') redis.defineCommand(def.command, { numberOfKeys: def.numberOfKeys, lua: def.lua });
    return r[def.command]!.apply(redis, args);
  };
}

export function scripts(redis: Redis): Scripts {
  const cas = command(redis, 'topology-cas');
  const create = command(redis, 'job-create');
  const save = command(redis, 'job-save');
  const take = command(redis, 'lease-take');
  const release = command(redis, 'lease-release');
  return {
    topologyCas: (k, ch, epoch, record) => cas(k, ch, String(epoch), record) as Promise<[number, number]>,
    jobCreate: (k, job) => create(k, job) as Promise<string | null>,
    jobSave: (lease, job, history, owner, raw, final) => save(lease, job, history, owner, raw, final ? '1' : '0') as Promise<number>,
    leaseTake: (k, owner, ttlMs) => take(k, owner, String(ttlMs)) as Promise<number>,
    leaseRelease: (k, owner) => release(k, owner) as Promise<number>,
  };
}
