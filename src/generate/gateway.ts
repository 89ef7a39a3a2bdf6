/**
 * The east-west gateway (Istio's AUTO_PASSTHROUGH): one listener on 15443 that reads the SNI of
 * the client's mTLS handshake, without terminating it, and forwards the bytes to a workload of
 * that service and subset on this network. The SNI is the cluster name
 * (`outbound_.<port>_.<subset>_.<fqdn>`), so the passthrough clusters and their endpoints come
 * from cds.ts / eds.ts; the workload's sidecar terminates the mTLS, end to end with the client.
 *
 * `.global` names (seed 003, Istio 1.x's multicluster gateways): a client whose ServiceEntry
 * `<name>.<ns>.global` points at this gateway sends `outbound_.<port>_.<subset>_.<name>.<ns>.global`.
 * Istio 1.x rewrote that SNI to `….svc.cluster.local` with a tcp_cluster_rewrite filter (not in
 * upstream Envoy); Isle lists the `.global` form as a second server name of the same chain, so
 * plain Envoy routes it to the same cluster. See docs/decisions/0015.
 */
import { bindAddress, type Proxy } from '../model/proxy.js';
import type { PushContext } from '../model/pushcontext.js';
import { TCP_PROXY_TYPE } from '../mesh/typeurls.js';
import { gatewayClusterKeys } from './cds.js';
import { socketAddress, tlsInspector, type EnvoyObject, type ResourceGroup } from './common.js';
import { listenerName, outboundSni } from '../mesh/names.js';

export const EAST_WEST_PORT = 15443;

/** `<name>.<ns>.svc.<suffix>` → `<name>.<ns>.global`; undefined for any other host. */
export function globalHostOf(hostname: string, domainSuffix: string): string | undefined {
  const suffix = `.svc.${domainSuffix}`;
  if (!hostname.endsWith(suffix)) return undefined;
  const parts = hostname.slice(0, -suffix.length).split('.');
  return parts.length === 2 ? `${parts[0]}.${parts[1]}.global` : undefined;
}

function globalAliases(push: PushContext, hostname: string, port: number, subset: string): string[] {
  const g = globalHostOf(hostname, push.mesh.domainSuffix);
  // A real service named like the alias owns that SNI itself.
  if (!g || push.servicesByHost.has(g)) return [];
  return [outboundSni(port, g, subset)];
}

/** Undefined while no local service exists: Envoy refuses a listener without filter chains. */
export function eastWestListener(push: PushContext, proxy: Proxy): EnvoyObject | undefined {
  const bind = bindAddress(proxy);
  const chains = gatewayClusterKeys(push, proxy).map((k) => ({
    filter_chain_match: { server_names: [k.name, ...globalAliases(push, k.hostname, k.port, k.subset)] },
    filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': TCP_PROXY_TYPE, stat_prefix: k.name, cluster: k.name } }],
  }));
  if (chains.length === 0) return undefined;
  // Unknown SNI: no chain matches and Envoy closes the connection, which is what we want.
  return {
    name: listenerName(bind, EAST_WEST_PORT),
    address: socketAddress(bind, EAST_WEST_PORT),
    listener_filters: [tlsInspector()],
    filter_chains: chains,
  };
}

export function gatewayListenerGroups(push: PushContext, proxy: Proxy): ResourceGroup[] {
  return [{ build: () => {
    const l = eastWestListener(push, proxy);
    return l ? [l] : [];
  } }];
}
