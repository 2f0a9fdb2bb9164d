// The monitoring files under deploy/ and their wiring in docker-compose.yml,
// checked without Docker: every file parses, Prometheus scrapes the compose
// services on the right ports, Grafana runs only with its profile, nothing
// listens beyond the host's loopback address, and every metric the dashboard
// queries is one the docs' metrics table lists (the integration test
// metrics-cluster checks that every listed metric is emitted).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const read = (p: string) => readFileSync(path.join(ROOT, p), 'utf8');
const yaml = (p: string) => parse(read(p), { merge: true }) as Record<string, unknown>;

interface Service {
  image?: string;
  profiles?: string[];
  ports?: string[];
  volumes?: string[];
  command?: string[];
}
const compose = yaml('docker-compose.yml') as { services: Record<string, Service> };

/** The metric names in the docs' tables. */
const documented = new Set([...read('docs/operations.md').matchAll(/^\| `(kv_[a-z0-9_]+)` \|/gm)].map((m) => m[1]!));

/** kv_* metric names a PromQL expression uses, histogram series reduced to their family. */
const metricsIn = (expr: string): string[] => [...expr.matchAll(/\b(kv_[a-z0-9_]+)/g)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, ''));

describe('deploy: Prometheus', () => {
  const prom = yaml('deploy/prometheus/prometheus.yml') as {
    scrape_configs: Array<{ job_name: string; metrics_path?: string; static_configs: Array<{ targets: string[]; labels?: Record<string, string> }> }>;
  };

  it('scrapes both router hosts on 8080 and every shard on its HTTP port 7101, at /metrics', () => {
    const targets = prom.scrape_configs.flatMap((j) => j.static_configs.flatMap((s) => s.targets));
    const routers = Object.keys(compose.services).filter((n) => compose.services[n]!.command?.[0] === 'router');
    const shards = Object.keys(compose.services).filter((n) => compose.services[n]!.command?.[0] === 'shard');
    expect(routers.sort()).toEqual(['router1', 'router2']);
    expect(shards).toHaveLength(3);
    expect(targets.sort()).toEqual([...routers.map((r) => `${r}:8080`), ...shards.map((s) => `${s}:7101`)].sort());
    for (const j of prom.scrape_configs) expect(j.metrics_path ?? '/metrics').toBe('/metrics');
    // Each shard target carries the shard's id, as the dashboard groups by it.
    const shardJob = prom.scrape_configs.find((j) => j.job_name === 'shardkv-shard')!;
    for (const s of shardJob.static_configs) {
      const svc = compose.services[s.targets[0]!.split(':')[0]!]!;
      expect(s.labels?.['shard']).toBe(svc.command![svc.command!.indexOf('--id') + 1]);
    }
  });
});

describe('deploy: Grafana', () => {
  const dashboard = JSON.parse(read('deploy/grafana/dashboards/shardkv.json')) as {
    uid: string;
    panels: Array<{ type: string; title: string; datasource?: { uid: string }; targets?: Array<{ expr: string }> }>;
  };
  const ds = yaml('deploy/grafana/provisioning/datasources/prometheus.yml') as { datasources: Array<{ uid: string; url: string; type: string }> };
  const providers = yaml('deploy/grafana/provisioning/dashboards/shardkv.yml') as { providers: Array<{ options: { path: string } }> };

  it('queries only metrics the docs list, through the provisioned data source', () => {
    const exprs = dashboard.panels.flatMap((p) => p.targets?.map((t) => t.expr) ?? []);
    expect(exprs.length).toBeGreaterThan(15);
    const used = new Set(exprs.flatMap(metricsIn));
    expect([...used].filter((m) => !documented.has(m))).toEqual([]);
    // The charts the dashboard promises.
    for (const m of [
      'kv_router_requests_total',
      'kv_router_request_duration_seconds',
      'kv_router_errors_total',
      'kv_router_forward_duration_seconds',
      'kv_shard_records',
      'kv_rebalance_keys_moved',
      'kv_rebalance_fg_p99_ratio',
    ])
      expect(used).toContain(m);
    expect(ds.datasources[0]).toMatchObject({ type: 'prometheus', url: 'http://prometheus:9090' });
    for (const p of dashboard.panels) if (p.type !== 'row') expect(p.datasource?.uid, p.title).toBe(ds.datasources[0]!.uid);
  });

  it('is provisioned from the folders the compose file mounts', () => {
    const g = compose.services['grafana']!;
    const mounts = new Map(g.volumes!.map((v) => [v.split(':')[1]!, v.split(':')[0]!]));
    expect(mounts.get('/etc/grafana/provisioning')).toBe('./deploy/grafana/provisioning');
    expect(mounts.get(providers.providers[0]!.options.path)).toBe('./deploy/grafana/dashboards');
  });
});

describe('deploy: docker-compose.yml', () => {
  it('runs Prometheus always and Grafana only with its profile, both on loopback only', () => {
    const p = compose.services['prometheus']!;
    const g = compose.services['grafana']!;
    expect(p.profiles).toBeUndefined();
    expect(g.profiles).toEqual(['grafana']);
    expect(p.ports).toEqual(['127.0.0.1:9090:9090']);
    expect(g.ports).toEqual(['127.0.0.1:3000:3000']);
    expect(p.volumes).toContain('./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro');
  });

  it('mounts only files that exist', () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      for (const v of svc.volumes ?? []) {
        const src = v.split(':')[0]!;
        if (src.startsWith('./')) expect(existsSync(path.join(ROOT, src)), `${name}: ${src}`).toBe(true);
      }
    }
  });
});
