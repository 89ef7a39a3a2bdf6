/** `/debug/registryz`: the registry as JSON, per shard and merged, for people and for tests. */
import type { Registry } from './aggregate.js';
import { localityString, type Endpoint, type RegistryConflict, type RegistryProblem, type Service } from './model.js';

export interface RegistryzEndpoint extends Omit<Endpoint, 'locality' | 'serviceAccount'> {
  /** `region/zone/subzone`. */
  locality: string;
  /** `namespace/sa`. */
  serviceAccount: string;
}

export interface RegistryzShard {
  cluster: string;
  origin: 'local' | 'peer';
  local: boolean;
  stale: boolean;
  services: Service[];
  endpoints: RegistryzEndpoint[];
  workloads: number;
  problems: RegistryProblem[];
}

export interface Registryz {
  version: number;
  localCluster: string;
  shards: RegistryzShard[];
  /** The aggregate view: merged services with their endpoints. */
  services: (Service & { endpoints: RegistryzEndpoint[] })[];
  conflicts: RegistryConflict[];
}

function flat(e: Endpoint): RegistryzEndpoint {
  return { ...e, locality: localityString(e.locality), serviceAccount: `${e.serviceAccount.namespace}/${e.serviceAccount.name}` };
}

export function registryz(registry: Registry): Registryz {
  const shards = registry.clusters().map((cluster): RegistryzShard => {
    const s = registry.shard(cluster)!;
    return {
      cluster,
      origin: s.origin,
      local: cluster === registry.localCluster,
      stale: registry.isStale(cluster),
      services: [...s.services.values()],
      endpoints: [...s.endpoints.values()].flat().map(flat),
      workloads: s.workloads.length,
      problems: [...s.problems],
    };
  });
  return {
    version: registry.version,
    localCluster: registry.localCluster,
    shards,
    services: registry.services().map((svc) => ({ ...svc, endpoints: registry.allEndpoints(svc.hostname).map(flat) })),
    conflicts: [...registry.conflicts()],
  };
}
