/**
 * Which outbound clusters exist — (service, port, subset) keys and their names — shared by CDS,
 * which describes the clusters, and EDS, which fills them.
 */
import { endpointsFor, type PushContext } from '../model/pushcontext.js';
import type { Proxy } from '../model/proxy.js';
import type { Endpoint, Service, ServicePort } from '../registry/model.js';
import { outboundClusterName, outboundSni } from '../mesh/names.js';

export interface ClusterKey {
  readonly name: string;
  readonly hostname: string;
  readonly port: number;
  /** '' for the whole service. */
  readonly subset: string;
  readonly service: Service;
  readonly servicePort: ServicePort;
}

/** Service ports and subsets of `svc`, in a stable order: by port, the whole service first. */
export function clusterKeysOf(push: PushContext, svc: Service, name: (port: number, host: string, subset: string) => string): ClusterKey[] {
  const subsets = push.subsetsByHost.get(svc.hostname) ?? [];
  const out: ClusterKey[] = [];
  for (const sp of svc.ports) {
    for (const subset of ['', ...subsets.map((s) => s.name)]) {
      out.push({ name: name(sp.port, svc.hostname, subset), hostname: svc.hostname, port: sp.port, subset, service: svc, servicePort: sp });
    }
  }
  return out;
}

/**
 * Resolution NONE (headless Services, passthrough ServiceEntries) gets no cluster: it needs
 * original-destination routing, which an explicit HTTP proxy cannot do (no destination address).
 */
export function hasOutboundCluster(svc: Service): boolean {
  return svc.resolution !== 'NONE' && !(svc.resolution !== 'STATIC' && svc.hostname.includes('*'));
}

export function outboundClusterKeys(push: PushContext): ClusterKey[] {
  return push.services.filter(hasOutboundCluster).flatMap((s) => clusterKeysOf(push, s, outboundClusterName));
}

/** The outbound clusters that get their endpoints by EDS (the rest carry them inline). */
export function edsClusterKeys(push: PushContext): ClusterKey[] {
  return outboundClusterKeys(push).filter((k) => k.service.resolution === 'STATIC');
}

/** Endpoints the gateway forwards to: those on its own network (its cluster when unnamed). */
export function isLocalToGateway(ep: Endpoint, proxy: Proxy): boolean {
  if (ep.address === undefined) return false;
  return proxy.network !== '' ? ep.network === proxy.network : ep.cluster === proxy.cluster;
}

/** Mesh-internal services with at least one endpoint the gateway can reach itself. */
export function gatewayClusterKeys(push: PushContext, proxy: Proxy): ClusterKey[] {
  return push.services
    .filter((s) => s.location === 'MESH_INTERNAL' && s.resolution === 'STATIC')
    .filter((s) => s.ports.some((p) => endpointsFor(push, s.hostname, p.port).some((e) => isLocalToGateway(e, proxy))))
    .flatMap((s) => clusterKeysOf(push, s, outboundSni));
}
