// What the admin API's plugins share.
import type { Redis } from 'ioredis';
import type { RouterConfig } from '../../core/config.js';
import type { TopologyStore } from '../../infra/topology-store.js';
import type { RebalanceStore } from '../../rebalance/job-store.js';
import type { Forwarder } from '../forwarder.js';
import type { IdentityStore } from '../../infra/identity-store.js';
import type { Authenticator } from '../authenticator.js';

export interface AdminApiDeps {
  readonly config: RouterConfig;
  readonly redis: Redis;
  readonly topology: TopologyStore;
  readonly jobs: RebalanceStore;
  readonly forwarder: Forwarder;
  readonly identity: IdentityStore;
  readonly auth: Authenticator;
}
