/**
 * Who may open an xDS stream for which node (XdsServer's `authenticate` hook).
 *
 * On the mTLS port a proxy must present its workload certificate, and the node it speaks for must
 * be that identity: the node's NAMESPACE / SERVICE_ACCOUNT metadata (Istio's names; see
 * proxyFromNode) must equal the namespace and service account of the SPIFFE id in the client
 * certificate. Otherwise a workload holding any mesh certificate could ask for, and register
 * endpoints as, any other service account. grpc-js hands handlers a peer certificate only when
 * the TLS socket is `authorized` (the chain verified against the root bundle), so an absent
 * certificate and an unverifiable one look the same here: both are refused.
 *
 * The plaintext loopback port (off unless asked for) trusts node metadata: it exists for tests
 * and benchmarks on one machine, never for production.
 */
import type { PeerCertificate } from 'node:tls';
import { parseSpiffeId, spiffeIdFromCert, type WorkloadIdentity } from '../pki/index.js';
import type { NodeInfo } from '../xds/server.js';
import { proxyFromNode, type Proxy, type ProxyDefaults } from '../model/proxy.js';

export type XdsAuthenticator = (node: NodeInfo, call: unknown) => string | undefined;

/** NodeInfo (what the ADS server parsed) back into the NodeMsg shape proxyFromNode reads. */
export function proxyFromNodeInfo(node: NodeInfo, defaults: ProxyDefaults): Proxy {
  return proxyFromNode(
    { id: node.id, cluster: node.cluster, metadata: node.metadata, ...(node.locality ? { locality: node.locality } : {}) },
    defaults,
  );
}

function peerCertificate(call: unknown): PeerCertificate | undefined {
  const c = call as { getAuthContext?: () => { sslPeerCertificate?: PeerCertificate } | null };
  try {
    return c.getAuthContext?.()?.sslPeerCertificate ?? undefined;
  } catch {
    return undefined;
  }
}

export interface AuthOptions {
  trustDomain: string;
  /** Defaults for proxyFromNode (the control plane's cluster and network), read per stream: they follow MeshConfig. */
  defaults: () => ProxyDefaults;
  /** 'mtls': a verified client certificate must match the node. 'trust-metadata': plaintext loopback. */
  mode: 'mtls' | 'trust-metadata';
}

/**
 * The hook for one listener. Every refusal message says what was expected, so an operator reading
 * the proxy's log can fix its bootstrap; it never echoes certificates or tokens.
 */
export function xdsAuthenticator(opts: AuthOptions): XdsAuthenticator {
  return (node, call) => {
    let proxy: Proxy;
    try {
      proxy = proxyFromNodeInfo(node, opts.defaults());
    } catch (e) {
      return `invalid node: ${e instanceof Error ? e.message : String(e)}`;
    }
    if (opts.mode === 'trust-metadata') return undefined;
    const cert = peerCertificate(call);
    if (!cert) {
      return 'a verified client certificate is required on the mTLS xDS port: connect with the workload certificate issued by the certificate service (CreateCertificate with a bootstrap token)';
    }
    let id: string | undefined;
    let identity: WorkloadIdentity;
    try {
      id = spiffeIdFromCert(cert);
      if (!id) return 'the client certificate has no SPIFFE id (URI SAN spiffe://<trust-domain>/ns/<ns>/sa/<sa>)';
      identity = parseSpiffeId(id);
    } catch (e) {
      return `the client certificate's identity is not a workload SPIFFE id: ${e instanceof Error ? e.message : String(e)}`;
    }
    if (identity.trustDomain !== opts.trustDomain) {
      return `client certificate ${id} is for trust domain ${identity.trustDomain}; this control plane serves ${opts.trustDomain}`;
    }
    if (identity.namespace !== proxy.namespace || identity.serviceAccount !== proxy.serviceAccount) {
      return `node ${node.id} claims namespace ${proxy.namespace} and service account ${proxy.serviceAccount} (NAMESPACE / SERVICE_ACCOUNT metadata), but its client certificate is ${id}`;
    }
    return undefined;
  };
}
