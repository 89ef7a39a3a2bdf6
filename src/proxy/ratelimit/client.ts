/**
 * The proxy's client of the rate limit service: `ShouldRateLimit` to an endpoint of the cluster the
 * filter names (`rate_limit_service.grpc_service.envoy_grpc.cluster_name`), picked by the proxy's
 * load balancer from the xDS graph, with the cluster's upstream TLS (mTLS for ISTIO_MUTUAL) when it
 * has one. One grpc-js channel per endpoint and TLS material, reused across requests.
 */
import * as grpc from '@grpc/grpc-js';
import type { ClusterModel, ConfigGraph, EndpointModel, EndpointsModel, GlobalRateLimitModel } from '../model.js';
import { cachedUpstreamTlsSettings } from '../net/tls.js';
import { rlsServiceDefinition, type RlsDescriptor, type RlsResponse } from '../../xds/rls.js';

// Built on first use: parsing rls.proto and its imports costs a sidecar without a rate-limit filter ~1.8 MB (ADR 0125).
let rlsClient: grpc.ServiceClientConstructor | undefined;
const RlsClient = (): grpc.ServiceClientConstructor => (rlsClient ??= grpc.makeGenericClientConstructor(rlsServiceDefinition(), 'RateLimitService'));
type RlsStub = grpc.Client & {
  ShouldRateLimit(req: unknown, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: RlsResponse) => void): grpc.ClientUnaryCall;
};

/** The proxy's load balancer (ListenerDeps.pick), as far as this client uses it. */
export type RlsEndpointPicker = (
  cluster: ClusterModel,
  endpoints: EndpointsModel | undefined,
  ctx: { previous: ReadonlySet<string>; avoidPrevious: boolean; attempt: number },
) => EndpointModel | undefined;

/** Why a call failed, for the failure-mode log line. */
export class RlsError extends Error {}

export class RateLimitClients {
  private readonly stubs = new Map<string, RlsStub>();

  constructor(private readonly pick: RlsEndpointPicker) {}

  private stubFor(graph: ConfigGraph, cfg: GlobalRateLimitModel): RlsStub {
    const cluster = graph.clusters.get(cfg.cluster);
    if (!cluster) throw new RlsError(`rate limit cluster ${JSON.stringify(cfg.cluster)} is unknown`);
    const ep = this.pick(cluster, graph.endpoints.get(cluster.name) ?? cluster.loadAssignment ?? undefined, { previous: new Set(), avoidPrevious: false, attempt: 0 });
    if (!ep) throw new RlsError(`no healthy endpoint in rate limit cluster ${cfg.cluster}`);
    const target = ep.address.includes(':') ? `[${ep.address}]:${ep.port}` : `${ep.address}:${ep.port}`;
    let creds: grpc.ChannelCredentials;
    let key = target;
    // Envoy's default :authority is the cluster name, which Istio's `outbound|…` names make an
    // invalid HTTP/2 authority for Node's server: only an explicit envoy_grpc.authority is sent.
    const options: grpc.ChannelOptions = cfg.authority ? { 'grpc.default_authority': cfg.authority } : {};
    if (cluster.tls) {
      const s = cachedUpstreamTlsSettings(cluster.tls, graph.secrets);
      creds = grpc.credentials.createFromSecureContext(s.options.secureContext!, { checkServerIdentity: s.options.checkServerIdentity! });
      if (s.options.servername) options['grpc.ssl_target_name_override'] = s.options.servername;
      key += `|${s.id}`;
    } else {
      creds = grpc.credentials.createInsecure();
    }
    let stub = this.stubs.get(key);
    if (!stub) {
      stub = new (RlsClient())(target, creds, options) as unknown as RlsStub;
      this.stubs.set(key, stub);
    }
    return stub;
  }

  /** ShouldRateLimit with the filter's timeout; rejects on any failure (the filter applies failure_mode_deny). */
  shouldRateLimit(graph: ConfigGraph, cfg: GlobalRateLimitModel, descriptors: RlsDescriptor[]): Promise<RlsResponse> {
    let stub: RlsStub;
    try {
      stub = this.stubFor(graph, cfg);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      stub.ShouldRateLimit({ domain: cfg.domain, descriptors }, new grpc.Metadata(), { deadline: Date.now() + cfg.timeoutMs }, (e, r) => {
        if (e) reject(new RlsError(`${grpc.status[e.code] ?? e.code}: ${e.details || e.message}`));
        else resolve(r ?? { overall_code: 'UNKNOWN' });
      });
    });
  }

  close(): void {
    for (const s of this.stubs.values()) s.close();
    this.stubs.clear();
  }
}
