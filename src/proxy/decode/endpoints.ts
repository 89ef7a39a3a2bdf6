/** ClusterLoadAssignment (EDS, or a STATIC/DNS cluster's load_assignment) → EndpointsModel. */
import { isIP } from 'node:net';
import type { DecodeResult, EndpointModel, EndpointsModel, HealthStatus, LocalityModel, PriorityModel } from '../model.js';
import { Errors, Reader, describe, isObj } from './util.js';

/** Envoy's default overprovisioning factor, in its units (percent). */
export const DEFAULT_OVERPROVISIONING_FACTOR = 140;

const HEALTH: readonly HealthStatus[] = ['UNKNOWN', 'HEALTHY', 'UNHEALTHY', 'DRAINING', 'TIMEOUT', 'DEGRADED'];

/** Envoy caps priorities at 128 levels. */
const MAX_PRIORITY = 128;

export function decodeEndpoints(obj: unknown): DecodeResult<EndpointsModel> {
  if (!isObj(obj)) return { errors: [`cluster_load_assignment: expected an object, got ${describe(obj)}`] };
  const name = typeof obj['cluster_name'] === 'string' ? obj['cluster_name'] : '';
  if (!name) return { errors: ['cluster_load_assignment without a cluster_name'] };
  const errs = new Errors(`cluster_load_assignment ${JSON.stringify(name)}`);
  const model = endpointsBody(new Reader(obj, '', errs), { allowHostnames: false });
  return errs.any ? { errors: errs.list } : { ok: model };
}

export function endpointKey(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * `allowHostnames`: DNS clusters name hosts to resolve; EDS and STATIC need IP literals, since
 * Envoy never resolves those.
 */
export function endpointsBody(r: Reader, opts: { allowHostnames: boolean }): EndpointsModel {
  const byPriority = new Map<number, LocalityModel[]>();
  const seenLocalities = new Map<string, number>();
  for (const l of r.objs('endpoints')) {
    const priority = l.int('priority', 0, 0, MAX_PRIORITY);
    const loc = l.obj_('locality');
    const region = loc?.str('region') ?? '';
    const zone = loc?.str('zone') ?? '';
    const subZone = loc?.str('sub_zone') ?? '';
    // Envoy rejects the same locality twice in one priority: its weight would be ambiguous.
    const lkey = `${priority}/${region}/${zone}/${subZone}`;
    if (seenLocalities.has(lkey)) {
      l.errs.add(l.p('locality'), `duplicate locality {region: ${JSON.stringify(region)}, zone: ${JSON.stringify(zone)}, sub_zone: ${JSON.stringify(subZone)}} in priority ${priority}`);
    }
    seenLocalities.set(lkey, 1);
    const weight = l.has('load_balancing_weight') ? l.int('load_balancing_weight', 0, 1) : 0;
    const endpoints: EndpointModel[] = [];
    for (const e of l.objs('lb_endpoints')) {
      if (e.has('endpoint_name')) {
        e.errs.add(e.p('endpoint_name'), 'named endpoints (LEDS) are not supported by isle proxy');
        continue;
      }
      const ep = e.obj_('endpoint');
      if (!ep) {
        e.errs.add(e.p('endpoint'), 'missing endpoint');
        continue;
      }
      const sa = ep.obj_('address')?.obj_('socket_address');
      if (!sa) {
        ep.errs.add(ep.p('address.socket_address'), 'missing socket address');
        continue;
      }
      const address = sa.str('address') ?? '';
      if (!address) sa.errs.add(sa.p('address'), 'missing address');
      else if (!opts.allowHostnames && isIP(address) === 0) sa.errs.add(sa.p('address'), `${JSON.stringify(address)} is not an IP address`);
      if (sa.has('named_port')) sa.errs.add(sa.p('named_port'), 'is not supported');
      const port = sa.int('port_value', 0, 0, 65535);
      if (port === 0) sa.errs.add(sa.p('port_value'), 'must be in [1, 65535]');
      endpoints.push({
        key: endpointKey(address, port),
        address,
        port,
        health: e.enum_('health_status', HEALTH, 'UNKNOWN'),
        weight: e.int('load_balancing_weight', 1, 1),
        hostname: ep.str('hostname') || undefined,
      });
    }
    const list = byPriority.get(priority) ?? [];
    list.push({ region, zone, subZone, weight, endpoints });
    byPriority.set(priority, list);
  }
  const max = byPriority.size ? Math.max(...byPriority.keys()) : -1;
  const priorities: PriorityModel[] = [];
  for (let p = 0; p <= max; p++) priorities.push({ priority: p, localities: byPriority.get(p) ?? [] });
  const policy = r.obj_('policy');
  let overprovisioningFactor = DEFAULT_OVERPROVISIONING_FACTOR;
  if (policy) {
    overprovisioningFactor = policy.int('overprovisioning_factor', DEFAULT_OVERPROVISIONING_FACTOR, 1);
    // Dropping a share of traffic silently would be worse than refusing the config.
    if (policy.arr('drop_overloads').length) policy.errs.add(policy.p('drop_overloads'), 'is not supported by isle proxy');
    if (policy.bool('weighted_priority_health', false)) policy.errs.add(policy.p('weighted_priority_health'), 'is not supported by isle proxy');
  }
  return { clusterName: r.str('cluster_name') ?? '', priorities, overprovisioningFactor };
}
