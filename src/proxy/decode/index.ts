/** xDS resource (proto3-JSON from `decodeResource`) → validated proxy model. */
export { decodeListener } from './listener.js';
export { decodeRouteConfig, DEFAULT_ROUTE_TIMEOUT_MS } from './route.js';
export { decodeCluster } from './cluster.js';
export { decodeEndpoints, endpointKey, DEFAULT_OVERPROVISIONING_FACTOR } from './endpoints.js';
export { decodeSecret } from './secret.js';
export { resolveGraph, decodeAndResolve, type RawResources } from './graph.js';
export { translateRe2, parseDurationMs } from './util.js';
export { decodeNameTable, isDnsName, type NameEntryModel, type NameTableModel } from './nametable.js';
