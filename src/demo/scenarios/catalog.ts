/**
 * The registered traffic-policy scenarios of `isle demo --scenario NAME`, by name (no imports, so
 * demo.ts can list them without loading them). Implementations: index.ts.
 */
export const SCENARIO_CATALOG: Record<string, string> = {
  'strict-mtls': 'seed 002 — PeerAuthentication: plaintext accepted under PERMISSIVE, refused under mesh-wide and namespace STRICT; mTLS always works',
  routing: 'seed 003 — v1 local, v2/v3 in the other cluster as helloworld.hello.global; end-user jason → 70/30 v2/v3, everyone else → v1',
  distribute: 'seed 002 — three regions, DestinationRule distribute from region1: 70/20/10',
  failover: 'seed 002 — three regions, DestinationRule failover region1 → region2 with outlier detection; local app down → region2 → region3 → back',
};
