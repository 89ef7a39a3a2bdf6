/** `isle proxy`: the xDS-driven sidecar and east-west gateway. */
export { IsleProxy, trustDomainFor, type ProxyOptions, type ProxyLocality } from './proxy.js';
export { ProxyRuntime, EMPTY_GRAPH, type ApplyReport, type ListenerRole, type RuntimeOptions } from './runtime.js';
export { Identity, controlPlaneCredentials, controlPlaneSpiffeId, type CertMaterial, type IdentityOptions } from './identity.js';
export * from './xds/index.js';
export type * from './model.js';
