/**
 * security.istio.io kinds. PeerAuthentication is enforced through the inbound listeners;
 * AuthorizationPolicy through Envoy RBAC filters (src/generate/authz.ts). The field lists below
 * say what Isle enforces; `isle analyze` reports every other accepted field as an error.
 */
import { arr, enumOf, isObject, isSet, mapOf, obj, str, type Check } from '../schema.js';
import { selector, type KindDescriptor, type WorkloadSelector } from './common.js';

export type MtlsMode = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT';

export interface PeerAuthenticationSpec {
  selector?: WorkloadSelector;
  mtls?: { mode?: MtlsMode };
  /** Keyed by port number (as a string, the way YAML/JSON map keys arrive). */
  portLevelMtls?: Record<string, { mode?: MtlsMode }>;
}

const mtls = obj({ mode: enumOf(['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT']) });

const peerAuthenticationSpec = obj(
  {
    selector,
    mtls,
    portLevelMtls: mapOf(mtls, (k) => (/^\d+$/.test(k) && Number(k) >= 1 && Number(k) <= 65535 ? undefined : `invalid port ${JSON.stringify(k)} (1-65535)`)),
  },
  {
    check: (c, v, p) => {
      // Istio applies port-level settings to a workload's ports, so there must be workloads.
      if (isSet(v.portLevelMtls) && !(isObject(v.selector) && isObject(v.selector.matchLabels) && Object.keys(v.selector.matchLabels).length > 0)) {
        c.error([...p, 'portLevelMtls'], 'requires a selector with matchLabels');
      }
    },
  },
);

export interface PolicyTargetReference {
  group?: string;
  kind?: string;
  name?: string;
  namespace?: string;
}

export interface AuthorizationPolicySpec {
  selector?: WorkloadSelector;
  /** Accepted by the schema; Isle does not enforce them (analyze error; such policies are not pushed). */
  targetRef?: PolicyTargetReference;
  targetRefs?: PolicyTargetReference[];
  action?: 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';
  provider?: { name: string };
  rules?: {
    from?: { source: Record<string, string[]> }[];
    to?: { operation: Record<string, string[]> }[];
    when?: { key: string; values?: string[]; notValues?: string[] }[];
  }[];
}

const strings: Check = arr(str());
const source = obj(
  Object.fromEntries(
    ['principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals', 'namespaces', 'notNamespaces', 'ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks', 'serviceAccounts', 'notServiceAccounts', 'trustDomains', 'notTrustDomains'].map((k) => [k, strings]),
  ),
);
const operation = obj(Object.fromEntries(['hosts', 'notHosts', 'ports', 'notPorts', 'methods', 'notMethods', 'paths', 'notPaths'].map((k) => [k, strings])));

const authorizationPolicySpec = obj(
  {
    selector,
    targetRef: obj({ group: str(), kind: str(), name: str(), namespace: str() }),
    targetRefs: arr(obj({ group: str(), kind: str(), name: str(), namespace: str() })),
    action: enumOf(['ALLOW', 'DENY', 'AUDIT', 'CUSTOM']),
    provider: obj({ name: str({ nonEmpty: true }) }, { required: ['name'] }),
    rules: arr(
      obj({
        from: arr(obj({ source }, { required: ['source'] })),
        to: arr(obj({ operation }, { required: ['operation'] })),
        when: arr(obj({ key: str({ nonEmpty: true }), values: strings, notValues: strings }, { required: ['key'] })),
      }),
    ),
  },
  {
    exclusive: [['selector', 'targetRef', 'targetRefs']],
    check: (c, v, p) => {
      if (v.action === 'CUSTOM' && !isSet(v.provider)) c.error([...p, 'provider'], 'missing required field (action is CUSTOM)');
      if (v.action !== 'CUSTOM' && isSet(v.provider)) c.error([...p, 'provider'], 'only allowed when action is CUSTOM');
    },
  },
);

const base = { group: 'security.istio.io', versions: ['v1', 'v1beta1'], namespaced: true, specRequired: false } as const;

export const peerAuthenticationKind: KindDescriptor<PeerAuthenticationSpec> = {
  ...base,
  kind: 'PeerAuthentication',
  exportToPeers: false,
  summary: 'inbound mTLS mode (mesh, namespace, workload, port)',
  spec: peerAuthenticationSpec,
};

export const authorizationPolicyKind: KindDescriptor<AuthorizationPolicySpec> = {
  ...base,
  kind: 'AuthorizationPolicy',
  exportToPeers: false,
  summary: 'access control, enforced on inbound by Envoy RBAC filters (ALLOW, DENY, AUDIT)',
  spec: authorizationPolicySpec,
};

// ------------------------------------------------------------------ what Isle enforces

/** `from.source` fields Isle enforces. */
export const ENFORCED_SOURCE_FIELDS: readonly string[] = ['principals', 'notPrincipals', 'namespaces', 'notNamespaces', 'ipBlocks', 'notIpBlocks'];
/** `to.operation` fields Isle enforces (all of Istio's). */
export const ENFORCED_OPERATION_FIELDS: readonly string[] = ['hosts', 'notHosts', 'ports', 'notPorts', 'methods', 'notMethods', 'paths', 'notPaths'];
/** Fields that need an HTTP request; on a TCP port a rule using them cannot be evaluated. */
export const HTTP_ONLY_OPERATION_FIELDS: readonly string[] = ['hosts', 'notHosts', 'methods', 'notMethods', 'paths', 'notPaths'];
export const HTTP_ONLY_SOURCE_FIELDS: readonly string[] = ['requestPrincipals', 'notRequestPrincipals'];
/** `when` keys Isle enforces besides `request.headers[<name>]`. */
export const ENFORCED_WHEN_KEYS: readonly string[] = ['source.principal', 'source.namespace', 'source.ip', 'destination.port', 'connection.sni'];
export const HEADER_WHEN_KEY = /^request\.headers\[([^\]]+)\]$/;
