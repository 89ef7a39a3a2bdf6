/** Kubernetes core kinds Isle reads: Namespace, Service, ServiceAccount. */
import { any, arr, dnsLabel, enumOf, int, isObject, isSet, labels, obj, port, str, type Check } from '../schema.js';
import { uniqueBy, type KindDescriptor, type Labels } from './common.js';

export type NamespaceSpec = Record<string, never>;
export type ServiceAccountSpec = Record<string, never>;

export interface ServicePort {
  name?: string;
  port: number;
  /** A number, or the name of a container port. Defaults to `port`. */
  targetPort?: number | string;
  protocol?: 'TCP' | 'UDP' | 'SCTP';
  appProtocol?: string;
  nodePort?: number;
}

export interface ServiceSpec {
  selector?: Labels;
  ports?: ServicePort[];
  type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
  clusterIP?: string;
  clusterIPs?: string[];
  externalName?: string;
  externalIPs?: string[];
  [field: string]: unknown;
}

const IANA_SVC_NAME = /^(?=.*[a-z])[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

const targetPort: Check = (c, v, p) => {
  if (typeof v === 'number') return port(c, v, p);
  if (typeof v === 'string') {
    if (v.length > 15 || !IANA_SVC_NAME.test(v) || v.includes('--')) {
      c.error(p, `invalid port name ${JSON.stringify(v)} (a port number or a name of at most 15 lowercase letters, digits and '-')`);
      return false;
    }
    return true;
  }
  c.error(p, `expected a port number or name (got ${JSON.stringify(v)})`);
  return false;
};

const servicePort = obj(
  {
    name: dnsLabel,
    port,
    targetPort,
    protocol: enumOf(['TCP', 'UDP', 'SCTP']),
    appProtocol: str(),
    nodePort: int({ min: 1, max: 65535 }),
  },
  { required: ['port'] },
);

const serviceSpec = obj(
  {
    selector: labels,
    ports: arr(servicePort),
    type: enumOf(['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName']),
    clusterIP: str(),
    clusterIPs: arr(str()),
    externalName: str(),
    externalIPs: arr(str()),
  },
  {
    passthrough: [
      'sessionAffinity', 'sessionAffinityConfig', 'ipFamilies', 'ipFamilyPolicy', 'loadBalancerIP', 'loadBalancerSourceRanges',
      'loadBalancerClass', 'externalTrafficPolicy', 'internalTrafficPolicy', 'healthCheckNodePort', 'publishNotReadyAddresses',
      'allocateLoadBalancerNodePorts', 'trafficDistribution',
    ],
    check: (c, v, p) => {
      const ports = v.ports;
      if (v.type === 'ExternalName') {
        if (!isSet(v.externalName)) c.error([...p, 'externalName'], 'missing required field (type is ExternalName)');
        return;
      }
      if (!isSet(ports) && v.clusterIP !== 'None') c.error([...p, 'ports'], 'missing required field');
      if (!Array.isArray(ports)) return;
      // Kubernetes' own rule: with more than one port, every port needs a name.
      if (ports.length > 1) {
        ports.forEach((sp, i) => {
          if (isObject(sp) && !isSet(sp.name)) c.error([...p, 'ports', i, 'name'], 'missing required field (a Service with several ports must name each one)');
        });
      }
      uniqueBy(c, ports, [...p, 'ports'], 'name', 'port name');
      // Kubernetes allows one number on two protocols (443/TCP and 443/UDP for QUIC).
      const seen = new Set<string>();
      ports.forEach((sp, i) => {
        if (!isObject(sp) || !isSet(sp.port)) return;
        const proto = sp.protocol === 'UDP' || sp.protocol === 'SCTP' ? sp.protocol : 'TCP';
        const key = `${String(sp.port)}/${proto}`;
        if (seen.has(key)) c.error([...p, 'ports', i, 'port'], `duplicate port ${String(sp.port)}${proto === 'TCP' ? '' : `/${proto}`}`);
        seen.add(key);
      });
    },
  },
);

export const namespaceKind: KindDescriptor<NamespaceSpec> = {
  kind: 'Namespace',
  group: '',
  versions: ['v1'],
  namespaced: false,
  exportToPeers: false,
  summary: 'a namespace (its labels select mesh behaviour)',
  spec: obj({ finalizers: arr(str()) }),
  specRequired: false,
  normalize: () => ({}),
};

export const serviceKind: KindDescriptor<ServiceSpec> = {
  kind: 'Service',
  group: '',
  versions: ['v1'],
  namespaced: true,
  exportToPeers: true,
  summary: 'a Kubernetes Service: the name, ports and selector of a mesh service',
  spec: serviceSpec,
  specRequired: true,
};

export const serviceAccountKind: KindDescriptor<ServiceAccountSpec> = {
  kind: 'ServiceAccount',
  group: '',
  versions: ['v1'],
  namespaced: true,
  exportToPeers: false,
  summary: 'a workload identity (spiffe://<trust-domain>/ns/<ns>/sa/<name>)',
  spec: any,
  specRequired: false,
  extraTopLevel: ['secrets', 'imagePullSecrets', 'automountServiceAccountToken'],
  normalize: () => ({}),
};
