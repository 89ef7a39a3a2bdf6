/**
 * SDS. The private key of a workload must never leave its proxy: in Isle the proxy creates its
 * key and gets its certificate by CSR (issue 4), so the control plane sends only `ROOTCA`, the
 * trust bundle every sidecar validates peers against. `secretsFor` also builds `default` for a
 * caller that holds a certificate and key for a proxy (a test, or an agent serving its own Envoy
 * over SDS); key material is always supplied by the caller, never generated here.
 */
import type { Proxy } from '../model/proxy.js';
import type { PushContext } from '../model/pushcontext.js';
import type { EnvoyObject, ResourceGroup } from './common.js';
import { SECRET_DEFAULT, SECRET_ROOTCA } from '../mesh/names.js';
import { ingressSecrets, isIngress } from './ingress.js';

export function rootCaSecret(rootBundlePem: string): EnvoyObject {
  return { name: SECRET_ROOTCA, validation_context: { trusted_ca: { inline_string: rootBundlePem } } };
}

export function workloadSecret(certChainPem: string, keyPem: string): EnvoyObject {
  return {
    name: SECRET_DEFAULT,
    tls_certificate: { certificate_chain: { inline_string: certChainPem }, private_key: { inline_string: keyPem } },
  };
}

/** `default` (only when a key is given) and `ROOTCA`. */
export function secretsFor(opts: { certChainPem?: string; keyPem?: string; rootBundlePem: string }): EnvoyObject[] {
  const out: EnvoyObject[] = [];
  if (opts.certChainPem !== undefined && opts.keyPem !== undefined) out.push(workloadSecret(opts.certChainPem, opts.keyPem));
  out.push(rootCaSecret(opts.rootBundlePem));
  return out;
}

export function secretGroups(push: PushContext, proxy: Proxy): ResourceGroup[] {
  // Passthrough gateways never terminate TLS; an ingress gateway dials sidecars with mTLS and
  // serves its Gateways' credentials (the one place a private key crosses xDS: ADR 0060).
  const ingress = proxy.type === 'gateway' && isIngress(push, proxy);
  if (proxy.type !== 'sidecar' && !ingress) return [];
  const groups: ResourceGroup[] = [];
  const pem = push.trustBundlePem;
  if (pem !== undefined) groups.push({ shareKey: 'rootca', build: () => [rootCaSecret(pem)] });
  if (ingress) groups.push({ build: () => ingressSecrets(push, proxy) });
  return groups;
}

/** SDS for a proxy: what the control plane itself may send. */
export function generateSecrets(push: PushContext, proxy: Proxy): EnvoyObject[] {
  return secretGroups(push, proxy).flatMap((g) => g.build());
}
