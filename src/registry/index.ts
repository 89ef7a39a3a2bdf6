/** The service registry: per-cluster shards, the aggregate view, auto-registration. See docs/decisions/0006-registry.md. */
export * from './model.js';
export { buildShard, emptyShard, meshDefaultsFrom, normalizeWorkload, type MeshDefaults, type Shard, type ShardInput, type ShardOptions, type WorkloadSpec } from './shard.js';
export { AutoRegistry, DEFAULT_GRACE_MS, type AutoRegistryOptions, type ProxyMetadata, type RegistrationHandle } from './autoregister.js';
export { Registry, type RegistryChange, type RegistryListener, type RegistryOptions } from './aggregate.js';
export { ShardInputs, watchLocalShard, type LocalShardOptions, type LocalShardWatch } from './local.js';
export { registryz, type Registryz, type RegistryzEndpoint, type RegistryzShard } from './debug.js';
