/**
 * The registered traffic-policy scenarios of `isle demo --scenario NAME`, by name (no imports, so
 * demo.ts can list them without loading them). Implementations: index.ts.
 */
export const SCENARIO_CATALOG: Record<string, string> = {
  'strict-mtls': 'seed 002 — PeerAuthentication: plaintext accepted under PERMISSIVE, refused under mesh-wide and namespace STRICT; mTLS always works',
  routing: 'seed 003 — v1 local, v2/v3 in the other cluster as helloworld.hello.global; end-user jason → 70/30 v2/v3, everyone else → v1',
  distribute: 'seed 002 — three regions, DestinationRule distribute from region1: 70/20/10',
  'remote-control-plane': 'seed 001 — central control plane in cluster-1, two remote replicas in cluster-2 behind a 50 ms WAN: httpbin teapot, central VirtualService, asymmetric discovery, central down, a replica killed',
  failover: 'seed 002 — three regions, DestinationRule failover region1 → region2 with outlier detection; local app down → region2 → region3 → back',
  authz: 'seed 000 — AuthorizationPolicy in both clusters: allow-nothing → allow by principal (the caller\'s SPIFFE id through the east-west gateway) → deny by path',
};
