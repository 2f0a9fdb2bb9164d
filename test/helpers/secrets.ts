// The secrets every process of a test cluster runs with (routers and shards
// refuse to start without them), and the header admin requests need.
export const TEST_ADMIN_TOKEN = 'test-admin-token-0123456789abcdef';
export const TEST_CLUSTER_SECRET = 'test-cluster-secret-0123456789abcdef';

/** The environment that gives a `kv` process the test secrets (and nothing else of the kind). */
export const SECRETS_ENV: NodeJS.ProcessEnv = { KV_ADMIN_TOKEN: TEST_ADMIN_TOKEN, KV_CLUSTER_SECRET: TEST_CLUSTER_SECRET, KV_INSECURE: '' };

/** `Authorization` for the admin API and the shard HTTP ports. */
export const ADMIN_AUTH: Readonly<Record<string, string>> = { authorization: `Bearer ${TEST_ADMIN_TOKEN}` };
