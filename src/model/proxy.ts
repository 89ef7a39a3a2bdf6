/**
 * The proxy as the generators see it: who it is (from the ADS `node`), and which service ports
 * it serves (from the registry, per push).
 *
 * The node id uses Istio's format, `<type>~<ip>~<workload>.<namespace>~<namespace>.svc.<suffix>`,
 * and metadata uses Istio's node-metadata names (NAMESPACE, SERVICE_ACCOUNT, LABELS,
 * INSTANCE_IPS, NETWORK, CLUSTER_ID, WORKLOAD_NAME), so an istio-agent or hand-written Envoy
 * bootstrap works unchanged. Isle adds one key, APP_PORTS (see appPorts below). GENERATOR picks
 * the generator set, as in Istio: `grpc` is a proxyless gRPC client (src/generate/grpc.ts).
 */
import { isIP } from 'node:net';
import { fromConfigLocality, LABEL_CLUSTER, LABEL_NETWORK, localityFromLabels, type Labels, type Locality, type Protocol } from '../registry/model.js';
import type { MeshSettings } from '../mesh/settings.js';
import type { PushContext } from './pushcontext.js';
import { own, setOwn } from '../config/own.js';
import { proxyBindHost } from '../mesh/bindprobe.js';

import { badNode as bad, parseProxyId, type ProxyType } from '../mesh/proxyid.js';

export { formatProxyId, parseProxyId, type ParsedProxyId, type ProxyType } from '../mesh/proxyid.js';

/** One port the proxy's workload serves, for one service that selects it. */
export interface InboundPort {
  readonly hostname: string;
  readonly serviceName: string;
  readonly namespace: string;
  readonly portName: string;
  /** The service port (what clients dial). */
  readonly port: number;
  /** Where the sidecar listens for mTLS, on the workload's address. */
  readonly targetPort: number;
  readonly protocol: Protocol;
  /** Where the app listens on 127.0.0.1 (universal mode); APP_PORTS, default targetPort. */
  readonly appPort: number;
}

export interface Proxy {
  readonly id: string;
  readonly type: ProxyType;
  /** The first of `ips`: the workload's address. */
  readonly ip: string;
  readonly ips: readonly string[];
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly workloadName: string;
  readonly labels: Labels;
  readonly locality: Locality;
  readonly network: string;
  readonly cluster: string;
  /** targetPort → port the app listens on at 127.0.0.1. */
  readonly appPorts: Readonly<Record<number, number>>;
  /** Sorted by targetPort then hostname; empty until withInbound. */
  readonly inbound: readonly InboundPort[];
  /** Which generator set serves it: `envoy` (Envoy or `isle proxy`) or `grpc` (proxyless gRPC). */
  readonly generator: ProxyGenerator;
  /**
   * Istio's INTERCEPTION_MODE: `REDIRECT` when iptables capture sends the app's connections to the
   * proxy (its virtualOutbound then carries a chain per service port); `NONE` (the default in
   * universal mode) for an explicit proxy, which needs none of them.
   */
  readonly interception: 'REDIRECT' | 'NONE';
}

function interceptionOf(v: unknown): 'REDIRECT' | 'NONE' {
  if (v === undefined || v === null || v === '' || v === 'NONE') return 'NONE';
  if (v === 'REDIRECT') return v;
  return bad(`metadata.INTERCEPTION_MODE: unsupported ${JSON.stringify(v)} (supported: REDIRECT, NONE; TPROXY is not implemented)`);
}

export type ProxyGenerator = 'envoy' | 'grpc';

/** Istio's GENERATOR metadata; anything else is refused rather than served the wrong shapes. */
function generatorOf(v: unknown): ProxyGenerator {
  if (v === undefined || v === null || v === '') return 'envoy';
  if (v === 'grpc' || v === 'envoy') return v;
  return bad(`metadata.GENERATOR: unsupported ${JSON.stringify(v)} (supported: grpc, envoy)`);
}

/** What proxyFromNode reads of an xDS `Node` (structurally the codec's NodeMsg). */
export interface NodeMsg {
  id?: string;
  cluster?: string;
  metadata?: Record<string, unknown>;
  locality?: { region?: string; zone?: string; sub_zone?: string };
}

export interface ProxyDefaults {
  /** The control plane's cluster: a proxy connected to it is in it unless CLUSTER_ID says so. */
  cluster: string;
  network?: string;
  locality?: Locality;
}

/** The defaults a proxy of this control plane gets, from the one mesh settings resolver. */
export function proxyDefaultsFrom(settings: Pick<MeshSettings, 'clusterName' | 'network' | 'defaultLocality'>): ProxyDefaults {
  return {
    cluster: settings.clusterName,
    ...(settings.network ? { network: settings.network } : {}),
    ...(settings.defaultLocality ? { locality: fromConfigLocality(settings.defaultLocality) } : {}),
  };
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

function stringMap(v: unknown, what: string): Record<string, string> {
  if (v === undefined || v === null || v === '') return {};
  // Istio agents send LABELS as a Struct; some bootstraps put JSON in a string.
  let o = v;
  if (typeof v === 'string') {
    try {
      o = JSON.parse(v);
    } catch {
      bad(`${what} is not a JSON object`);
    }
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) bad(`${what} must be an object`);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(o as Record<string, unknown>)) {
    if (typeof x === 'string') setOwn(out, k, x);
    else if (typeof x === 'number' || typeof x === 'boolean') setOwn(out, k, String(x));
    else bad(`${what}.${k} must be a string`);
  }
  return out;
}

function port(v: string | number, what: string): number {
  const n = typeof v === 'number' ? v : /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 65535) bad(`${what}: invalid port ${JSON.stringify(v)}`);
  return n;
}

/**
 * A Proxy from the ADS node. Locality comes from `node.locality`, else the topology labels,
 * else the defaults, part by part. Inbound ports are empty: call withInbound for each push.
 */
export function proxyFromNode(node: NodeMsg, defaults: ProxyDefaults): Proxy {
  if (!node.id) bad('missing id');
  const parsed = parseProxyId(node.id);
  const metadata = node.metadata ?? {};
  // Metadata is whatever the proxy sent: read only its own keys.
  const md = (k: string): unknown => own(metadata, k);
  const labels = stringMap(md('LABELS'), 'metadata.LABELS');
  const instanceIps = (str(md('INSTANCE_IPS')) ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const ip of instanceIps) if (!isIP(ip)) bad(`metadata.INSTANCE_IPS: invalid IP ${JSON.stringify(ip)}`);
  const ips = [parsed.ip, ...instanceIps.filter((ip) => ip !== parsed.ip)];
  const namespace = str(md('NAMESPACE')) ?? parsed.namespace;
  if (!namespace) bad('no namespace (metadata.NAMESPACE or the id)');

  const appPorts: Record<number, number> = {};
  for (const [k, v] of Object.entries(stringMap(md('APP_PORTS'), 'metadata.APP_PORTS'))) {
    appPorts[port(k, 'metadata.APP_PORTS')] = port(v, `metadata.APP_PORTS.${k}`);
  }

  const fromNode: Locality = {
    region: node.locality?.region ?? '',
    zone: node.locality?.zone ?? '',
    subzone: node.locality?.sub_zone ?? '',
  };
  const fromLabels = localityFromLabels(labels);
  const dflt = defaults.locality ?? { region: '', zone: '', subzone: '' };
  const pick = (k: keyof Locality) => fromNode[k] || fromLabels[k] || dflt[k];

  const dot = parsed.podName.lastIndexOf('.');
  return Object.freeze({
    id: node.id,
    type: parsed.type,
    ip: parsed.ip,
    ips: Object.freeze(ips),
    namespace,
    serviceAccount: str(md('SERVICE_ACCOUNT')) ?? 'default',
    workloadName: str(md('WORKLOAD_NAME')) ?? (dot > 0 ? parsed.podName.slice(0, dot) : parsed.podName),
    labels: Object.freeze(labels),
    locality: Object.freeze({ region: pick('region'), zone: pick('zone'), subzone: pick('subzone') }),
    network: str(md('NETWORK')) ?? labels[LABEL_NETWORK] ?? defaults.network ?? '',
    cluster: str(md('CLUSTER_ID')) ?? labels[LABEL_CLUSTER] ?? defaults.cluster,
    appPorts: Object.freeze(appPorts),
    inbound: Object.freeze([]) as readonly InboundPort[],
    generator: generatorOf(md('GENERATOR')),
    interception: interceptionOf(md('INTERCEPTION_MODE')),
  });
}

/**
 * The proxy with the service ports its workload serves in this push: ports of services having an
 * endpoint at one of the proxy's addresses on its network (addresses are only unique per network).
 * Gateways serve no inbound ports.
 */
export function withInbound(proxy: Proxy, push: PushContext): Proxy {
  // Proxyless clients serve nothing through Isle (no inbound listeners of theirs).
  if (proxy.type !== 'sidecar' || proxy.generator === 'grpc') return proxy.inbound.length === 0 ? proxy : Object.freeze({ ...proxy, inbound: Object.freeze([]) });
  const seen = new Set<string>();
  const inbound: InboundPort[] = [];
  for (const ip of proxy.ips) {
    for (const e of push.endpointsByAddress.get(ip) ?? []) {
      if (e.network !== proxy.network && e.network !== '' && proxy.network !== '') continue;
      const svc = push.servicesByHost.get(e.hostname);
      const sp = svc?.ports.find((p) => p.port === e.servicePort);
      if (!svc || !sp) continue;
      const key = `${e.hostname}|${e.servicePort}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inbound.push({
        hostname: svc.hostname,
        serviceName: svc.name,
        namespace: svc.namespace,
        portName: sp.name,
        port: sp.port,
        targetPort: e.port,
        protocol: sp.protocol,
        appPort: proxy.appPorts[e.port] ?? e.port,
      });
    }
  }
  inbound.sort((a, b) => a.targetPort - b.targetPort || (a.hostname < b.hostname ? -1 : a.hostname > b.hostname ? 1 : a.port - b.port));
  return Object.freeze({ ...proxy, inbound: Object.freeze(inbound) });
}

/** Where the proxy's own listeners bind (mesh/bindprobe.ts: its own 127.x in universal mode, else the wildcard). */
export function bindAddress(proxy: Pick<Proxy, 'ip'>): string {
  return proxyBindHost(proxy.ip);
}
