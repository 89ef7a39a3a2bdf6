/**
 * Route `rate_limits` → the descriptors sent to the rate limit service, as Envoy builds them: the
 * route's policies, else the virtual host's (VhRateLimitsOptions OVERRIDE; both with
 * `include_vh_rate_limits`), only those of the filter's stage. A policy yields a descriptor only
 * when every action yields its entry (a missing header drops the whole descriptor, unless the
 * action says `skip_if_absent`).
 */
import { ownHeader, type Headers } from '../http1/head.js';
import type { RateLimitActionModel, RateLimitPolicyModel, RouteModel, VirtualHostModel } from '../model.js';
import { matchHeader, type RouteRequest } from '../routing/match.js';
import type { RlsDescriptor, RlsEntry } from '../../xds/rls.js';

export interface DescriptorRequest {
  readonly method: string;
  readonly authority: string;
  readonly path: string;
  readonly scheme: string;
  readonly headers: Headers;
  readonly remoteAddress: string | undefined;
  /** The route's target cluster (destination_cluster). */
  readonly destinationCluster: string | undefined;
  /** The local service cluster (source_cluster). */
  readonly sourceCluster: string | undefined;
}

function headerValue(req: DescriptorRequest, name: string): string | undefined {
  switch (name) {
    case ':path':
      return req.path;
    case ':authority':
    case 'host':
      return req.authority;
    case ':method':
      return req.method;
    case ':scheme':
      return req.scheme;
  }
  const v = ownHeader(req.headers, name);
  return Array.isArray(v) ? v.join(',') : v;
}

/** The entry of one action; null: the descriptor is not generated; undefined: this entry is skipped. */
function entryOf(a: RateLimitActionModel, req: DescriptorRequest): RlsEntry | null | undefined {
  switch (a.kind) {
    case 'source-cluster':
      return req.sourceCluster ? { key: 'source_cluster', value: req.sourceCluster } : null;
    case 'destination-cluster':
      return req.destinationCluster ? { key: 'destination_cluster', value: req.destinationCluster } : null;
    case 'remote-address':
      return req.remoteAddress ? { key: 'remote_address', value: req.remoteAddress } : null;
    case 'generic-key':
      return { key: a.descriptorKey, value: a.descriptorValue };
    case 'request-headers': {
      const v = headerValue(req, a.headerName);
      if (v === undefined || v === '') return a.skipIfAbsent ? undefined : null;
      return { key: a.descriptorKey, value: v };
    }
    case 'header-value-match': {
      const rr: RouteRequest = { authority: req.authority, path: req.path, method: req.method, headers: req.headers, scheme: req.scheme };
      return a.headers.every((h) => matchHeader(h, rr)) === a.expectMatch
        ? { key: a.descriptorKey, value: a.descriptorValue }
        : null;
    }
  }
}

function fromPolicies(policies: readonly RateLimitPolicyModel[] | undefined, stage: number, req: DescriptorRequest, out: RlsDescriptor[]): void {
  for (const p of policies ?? []) {
    if (p.stage !== stage) continue;
    const entries: RlsEntry[] = [];
    let ok = true;
    for (const a of p.actions) {
      const e = entryOf(a, req);
      if (e === null) {
        ok = false;
        break;
      }
      if (e) entries.push(e);
    }
    if (ok && entries.length > 0) out.push({ entries });
  }
}

export function descriptorsFor(route: RouteModel, vhost: VirtualHostModel, stage: number, req: DescriptorRequest): RlsDescriptor[] {
  const out: RlsDescriptor[] = [];
  fromPolicies(route.rateLimits, stage, req, out);
  if (route.includeVhRateLimits || !route.rateLimits || route.rateLimits.length === 0) fromPolicies(vhost.rateLimits, stage, req, out);
  return out;
}
