/** Host names as Istio resolves them. */

export const DEFAULT_DOMAIN_SUFFIX = 'cluster.local';

/**
 * A short name (no dot) is a Kubernetes Service in the referring resource's namespace; anything
 * with a dot is already fully qualified (Istio's rule, so `reviews.default` is NOT expanded).
 */
export function fqdn(host: string, namespace: string, domainSuffix = DEFAULT_DOMAIN_SUFFIX): string {
  if (host === '*' || host.includes('.')) return host.toLowerCase();
  return `${host}.${namespace}.svc.${domainSuffix}`.toLowerCase();
}

/** The host names of a Service. */
export function serviceHost(name: string, namespace: string, domainSuffix = DEFAULT_DOMAIN_SUFFIX): string {
  return `${name}.${namespace}.svc.${domainSuffix}`;
}

/** Whether two hosts, either of which may be a wildcard (`*.example.com`, `*`), can name the same service. */
export function hostMatches(a: string, b: string): boolean {
  a = a.toLowerCase();
  b = b.toLowerCase();
  if (a === b || a === '*' || b === '*') return true;
  const aw = a.startsWith('*.');
  const bw = b.startsWith('*.');
  if (aw && bw) return a.length <= b.length ? b.endsWith(a.slice(1)) : a.endsWith(b.slice(1));
  if (aw) return b.endsWith(a.slice(1));
  if (bw) return a.endsWith(b.slice(1));
  return false;
}

const DNS_LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** A DNS label as the sidecar's DNS proxy answers it: lower case letters, digits, '-', '_', 1–63 long. */
export function isDnsLabel(s: string): boolean {
  return DNS_LABEL.test(s);
}

/** A host name the DNS proxy can answer: lower-case labels (isDnsLabel), ≤ 253 in all, no trailing dot. */
export function isDnsName(s: string): boolean {
  return s.length > 0 && s.length <= 253 && s.split('.').every(isDnsLabel);
}
