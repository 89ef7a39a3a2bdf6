/**
 * Istio's proxy id, `<type>~<ip>~<workload>.<namespace>~<namespace>.svc.<suffix>`: written by the
 * proxy into its xDS node, parsed by the control plane.
 */
import { isIP } from 'node:net';
import { IsleError } from '../errors.js';

export type ProxyType = 'sidecar' | 'gateway';

export function badNode(message: string): never {
  throw new IsleError('ERR_IDENTITY', `xDS node: ${message}`);
}

export interface ParsedProxyId {
  readonly type: ProxyType;
  readonly ip: string;
  /** `<workload>.<namespace>`. */
  readonly podName: string;
  readonly namespace: string;
  readonly domain: string;
}


/** Parses Istio's node id. `router` (Istio's gateway type) and `gateway` both give 'gateway'. */
export function parseProxyId(id: string): ParsedProxyId {
  const parts = id.split('~');
  if (parts.length !== 4) badNode(`id ${JSON.stringify(id)} is not <type>~<ip>~<name>.<namespace>~<domain>`);
  const [t, ip, podName, domain] = parts as [string, string, string, string];
  let type: ProxyType;
  if (t === 'sidecar') type = 'sidecar';
  else if (t === 'router' || t === 'gateway') type = 'gateway';
  else return badNode(`unknown proxy type ${JSON.stringify(t)} in id (sidecar, router or gateway)`);
  if (!isIP(ip)) badNode(`invalid IP ${JSON.stringify(ip)} in id`);
  const dot = podName.lastIndexOf('.');
  // Istio takes the namespace from the last label of `<name>.<namespace>`, falling back to the domain.
  const namespace = dot > 0 ? podName.slice(dot + 1) : (domain.split('.')[0] ?? '');
  return { type, ip, podName, namespace, domain };
}

export function formatProxyId(type: ProxyType, ip: string, workload: string, namespace: string, domainSuffix = 'cluster.local'): string {
  return `${type === 'gateway' ? 'router' : 'sidecar'}~${ip}~${workload}.${namespace}~${namespace}.svc.${domainSuffix}`;
}
