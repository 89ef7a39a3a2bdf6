/**
 * The pure generators, one per xDS type: (PushContext, Proxy) → resource groups of plain Envoy v3
 * objects. Serializing them into the xDS cache's snapshots is the control plane's job
 * (src/controlplane/snapshots.ts), so this layer knows nothing of the transport.
 *
 * Shared groups: outbound CDS (all sidecars), EDS (per network), RDS `15001` (per namespace), SDS
 * ROOTCA (all sidecars), NDS name table (all sidecars), gateway CDS/EDS (per gateway network). Per
 * proxy: inbound CDS and every listener.
 */
import type { Proxy } from '../model/proxy.js';
import type { PushContext } from '../model/pushcontext.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, NAME_TABLE_TYPE, ROUTE_TYPE, SECRET_TYPE } from '../mesh/typeurls.js';
import { nameTableGroups } from './nds.js';
import { clusterGroups } from './cds.js';
import type { ResourceGroup } from './common.js';
import { endpointGroups } from './eds.js';
import { listenerGroups } from './lds.js';
import { routeGroups } from './rds.js';
import { secretGroups } from './sds.js';
import { grpcClusterGroups, grpcEndpointGroups, grpcListenerGroups, grpcRouteGroups, grpcSecretGroups } from './grpc.js';

export * from '../mesh/names.js';
export { flatten, type EnvoyObject, type ResourceGroup } from './common.js';
export { generateClusters, outboundClusters, inboundClusters, gatewayClusters } from './cds.js';
export { generateEndpoints, outboundLoadAssignments, gatewayLoadAssignments, sameEdsInputs, sameNetworkOnly, direct, type EndpointResolver } from './eds.js';
export { generateListeners, outboundListener, inboundListeners } from './lds.js';
export { generateRoutes, httpProxyRouteConfig, routeConfigForPort, defaultRetryPolicy } from './rds.js';
export { generateSecrets, secretsFor, rootCaSecret, workloadSecret } from './sds.js';
export { eastWestListener } from './gateway.js';
export { nameTable, nameTableGroups, REGISTRY_EXTERNAL, REGISTRY_KUBERNETES } from './nds.js';
export { grpcApiListener, grpcListenerName, GRPC_CERT_PROVIDER } from './grpc.js';

export type Grouper = (push: PushContext, proxy: Proxy) => ResourceGroup[];

export const GROUPERS: Readonly<Record<string, Grouper>> = Object.freeze({
  [CLUSTER_TYPE]: clusterGroups,
  [ENDPOINT_TYPE]: endpointGroups,
  [LISTENER_TYPE]: listenerGroups,
  [ROUTE_TYPE]: routeGroups,
  [SECRET_TYPE]: secretGroups,
  [NAME_TABLE_TYPE]: nameTableGroups,
});

/** Istio's grpcgen: what a proxyless gRPC client (GENERATOR=grpc) is served (grpc.ts). */
export const GRPC_GROUPERS: Readonly<Record<string, Grouper>> = Object.freeze({
  [CLUSTER_TYPE]: grpcClusterGroups,
  [ENDPOINT_TYPE]: grpcEndpointGroups,
  [LISTENER_TYPE]: (push) => grpcListenerGroups(push),
  [ROUTE_TYPE]: grpcRouteGroups,
  [SECRET_TYPE]: () => grpcSecretGroups(),
  [NAME_TABLE_TYPE]: () => [],
});

/** The generator set for a proxy, by its node's GENERATOR metadata. */
export function groupersFor(proxy: Proxy): Readonly<Record<string, Grouper>> {
  return proxy.generator === 'grpc' ? GRPC_GROUPERS : GROUPERS;
}
