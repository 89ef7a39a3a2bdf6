/**
 * The locality scenarios' topology (seed 002): one cluster whose helloworld workloads stand in
 * three regions — v1 in region1 (with the client, sleep), v2 in region2, v3 in region3 — so the
 * version that answers says which region served the request.
 */
import type { DemoTopology } from '../topology.js';

export function threeRegions(prefix: string): DemoTopology {
  return {
    clusters: [{ name: 'cluster-1', network: 'network1', region: 'region1', zone: 'zone1', controlPlane: `${prefix}.0.1:15012`, debug: `${prefix}.0.1:15014`, gatewayIp: `${prefix}.255.1` }],
    workloads: [
      { cluster: 'cluster-1', name: 'helloworld-v1', app: 'helloworld', version: 'v1', namespace: 'default', serviceAccount: 'helloworld', ip: `${prefix}.1.10`, port: 5000, locality: 'region1/zone1' },
      { cluster: 'cluster-1', name: 'helloworld-v2', app: 'helloworld', version: 'v2', namespace: 'default', serviceAccount: 'helloworld', ip: `${prefix}.2.10`, port: 5000, locality: 'region2/zone1' },
      { cluster: 'cluster-1', name: 'helloworld-v3', app: 'helloworld', version: 'v3', namespace: 'default', serviceAccount: 'helloworld', ip: `${prefix}.3.10`, port: 5000, locality: 'region3/zone1' },
      { cluster: 'cluster-1', name: 'sleep', app: 'sleep', namespace: 'default', serviceAccount: 'sleep', ip: `${prefix}.1.20`, locality: 'region1/zone1' },
    ],
  };
}

export const REGION_OF: Record<string, string> = { v1: 'region1', v2: 'region2', v3: 'region3' };
