// The shard's /metrics: its store (records, value bytes, the LMDB map), its
// request path (frames, requests by op, requests per frame, group commits and
// their latency), the sweeper and purges, its epoch, and what its data port
// refused. Every number is kept by the code that does the work, in plain
// fields and arrays; this file only reads them when a scrape comes.
import client from 'prom-client';
import { arrayMetric, histogramSamples, readCounter, readGauge } from '../infra/prom.js';
import type { Store } from './store.js';
import { COMMIT_BOUNDS_MS, FRAME_SIZE_BOUNDS, type FrameHandler, type OwnershipView } from './frame-handler.js';
import type { DataServerCounters } from './data-server.js';

export interface ShardMetricsDeps {
  readonly store: Store;
  readonly handler: FrameHandler;
  readonly view: () => OwnershipView;
  readonly dataCounters: DataServerCounters;
}

export function shardMetrics(deps: ShardMetricsDeps): client.Registry {
  const { store, handler } = deps;
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'kv_shard_' });
  const s = () => store.stats();
  const gauge = (name: string, help: string, read: () => number) => readGauge(registry, name, help, read);
  const counter = (name: string, help: string, read: () => number) => readCounter(registry, name, help, read);

  gauge('kv_shard_records', 'Records in the store (live, tombstones and expired ones not swept yet)', () => s().records);
  gauge('kv_shard_value_bytes', 'Bytes of the values in the store (live and expired ones not swept yet)', () => s().valueBytes);
  gauge('kv_shard_store_bytes', 'Bytes of LMDB pages holding the records', () => s().bytes);
  gauge('kv_shard_lmdb_map_size_bytes', 'Size of the LMDB map (mapSizeBytes): the most the store can hold', () => s().mapSizeBytes);
  gauge('kv_shard_lmdb_used_bytes', 'Bytes of the LMDB map in use, up to its highest page (free pages inside it are reused)', () => s().usedBytes);
  gauge('kv_shard_topology_epoch', 'Topology epoch this shard runs at', () => deps.view().epoch);
  gauge('kv_shard_epoch', 'Topology epoch this shard runs at', () => deps.view().epoch);

  const f = handler.frames;
  counter('kv_shard_frames_total', 'Request frames run (data port; the HTTP port runs each write as a frame of one)', () => f.count);
  arrayMetric(registry, {
    name: 'kv_shard_requests_total',
    help: 'Requests run, by op',
    type: 'counter',
    values: () =>
      Object.entries(handler.opCounts)
        .filter(([, n]) => n > 0)
        .map(([op, n]) => ({ value: n, labels: { op } })),
  });
  arrayMetric(registry, {
    name: 'kv_shard_requests_per_frame',
    help: 'Requests in each frame run',
    type: 'histogram',
    values: () => histogramSamples('kv_shard_requests_per_frame', FRAME_SIZE_BOUNDS, f.sizes.counts, 0, f.sizes.sum, {}),
  });
  arrayMetric(registry, {
    name: 'kv_shard_commit_duration_seconds',
    help: "Group commits: from starting a write transaction to LMDB's commit",
    type: 'histogram',
    values: () => histogramSamples('kv_shard_commit_duration_seconds', COMMIT_BOUNDS_MS, f.commitMs.counts, 0, f.commitMs.sum, {}, 0.001),
  });
  counter('kv_shard_write_batches_total', 'Group commits: write transactions of the request path', () => handler.counters.commits);
  counter('kv_shard_writes_total', 'Writes (put, del) in those transactions', () => handler.counters.writes);
  const ops = store.ops;
  counter('kv_shard_expired_swept_total', 'Expired values the sweeper dropped', () => ops.expired);
  counter('kv_shard_tombstones_dropped_total', 'Tombstones the sweeper dropped after tombstoneGraceMs', () => ops.tombstonesDropped);
  counter('kv_shard_purged_total', 'Records purged after a move took their range away', () => ops.purged);

  const c = deps.dataCounters;
  counter('kv_shard_peers_authenticated_total', 'Data-port peers that proved the cluster secret', () => c.authenticated);
  counter('kv_shard_peer_auth_failures_total', 'Data-port peers cut before or during the handshake', () => c.authFailures);
  counter('kv_shard_data_connections_refused_total', 'Data-port connections dropped above maxDataConnections', () => c.connectionsRefused);
  counter('kv_shard_data_idle_closed_total', 'Data-port connections closed after dataIdleTimeoutMs of silence', () => c.idleClosed);
  counter('kv_shard_data_protocol_errors_total', 'Data-port connections cut for a bad or oversized frame', () => c.protocolErrors);
  return registry;
}
