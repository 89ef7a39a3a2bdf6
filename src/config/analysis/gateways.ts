/** Checks between Gateways and the VirtualServices bound to them (istioctl analyze's gateway checks). */
import { hostMatches } from '../hosts.js';
import type { ConfigError, Resource } from '../types.js';
import type { GatewayServer, GatewaySpec, VirtualServiceSpec } from '../kinds/networking.js';
import { boundToMesh, canonicalJson, destinations, nsName, type AnalyzeContext, type Analyzer } from './context.js';

/** `name`, `ns/name` or the old `name.ns.svc.<suffix>` → `ns/name`, relative to the VirtualService's namespace. */
export function gatewayRef(ref: string, vs: Resource): string {
  if (ref.includes('/')) return ref;
  const dot = ref.indexOf('.');
  if (dot > 0) return `${ref.slice(dot + 1).split('.')[0]}/${ref.slice(0, dot)}`;
  return `${vs.metadata.namespace ?? 'default'}/${ref}`;
}

/** Every gateway reference of a VirtualService with its field path (spec.gateways and match gateways). */
function gatewayRefs(vs: Resource<VirtualServiceSpec>): { ref: string; path: (string | number)[] }[] {
  const out: { ref: string; path: (string | number)[] }[] = [];
  (vs.spec.gateways ?? []).forEach((g, i) => out.push({ ref: g, path: ['spec', 'gateways', i] }));
  for (const proto of ['http', 'tcp', 'tls'] as const) {
    (vs.spec[proto] ?? []).forEach((rule: { match?: { gateways?: string[] }[] }, i) =>
      (rule.match ?? []).forEach((m, j) => (m.gateways ?? []).forEach((g, k) => out.push({ ref: g, path: ['spec', proto, i, 'match', j, 'gateways', k] }))),
    );
  }
  return out.filter((x) => x.ref !== 'mesh');
}

function gatewaysByName(ctx: AnalyzeContext): Map<string, Resource<GatewaySpec>> {
  return new Map(ctx.of<GatewaySpec>('Gateway').map((g) => [nsName(g), g]));
}

/** IST0101 ReferencedResourceNotFound: a VirtualService naming a Gateway that does not exist. */
const missingGateways: Analyzer = {
  name: 'referenced-gateway-not-found',
  run: (ctx) => {
    const gateways = gatewaysByName(ctx);
    const out: ConfigError[] = [];
    for (const vs of ctx.of<VirtualServiceSpec>('VirtualService')) {
      for (const { ref, path } of gatewayRefs(vs)) {
        const key = gatewayRef(ref, vs);
        if (!gateways.has(key)) out.push(ctx.problem('error', vs, path, `referenced gateway not found: ${JSON.stringify(ref)} (no Gateway ${key})`, 'IST0101'));
      }
    }
    return out;
  },
};

/**
 * IST0101 for a server's `credentialName`: the Secret must be among the objects analyzed, in the
 * Gateway's namespace. A warning, not Istio's error: the control plane reads credentials from
 * `<config dir>/credentials/<ns>/<name>/` files (ADR 0060), which the analyzer does not see.
 */
const missingCredentials: Analyzer = {
  name: 'referenced-secret-not-found',
  run: (ctx) => {
    const secrets = new Set(ctx.others.filter((o) => o.kind === 'Secret').map((o) => `${o.namespace}/${o.name}`));
    const out: ConfigError[] = [];
    for (const gw of ctx.of<GatewaySpec>('Gateway')) {
      const ns = gw.metadata.namespace ?? 'default';
      (gw.spec.servers ?? []).forEach((s, i) => {
        const names: [string, (string | number)[]][] = [];
        if (s.tls?.credentialName) names.push([s.tls.credentialName, ['spec', 'servers', i, 'tls', 'credentialName']]);
        ((s.tls as { credentialNames?: string[] } | undefined)?.credentialNames ?? []).forEach((n, j) => names.push([n, ['spec', 'servers', i, 'tls', 'credentialNames', j]]));
        for (const [name, path] of names) {
          if (!secrets.has(`${ns}/${name}`)) out.push(ctx.problem('warning', gw, path, `referenced secret not found: ${JSON.stringify(name)} (no Secret ${ns}/${name} among the files analyzed; the control plane reads credentials/${ns}/${name}/tls.crt and tls.key in its config directory)`, 'IST0101'));
        }
      });
    }
    return out;
  },
};

/** A server host `ns/host` applies to VirtualServices of `ns` (`*` any, `.` the Gateway's own). */
function serverHostFor(serverHost: string, gw: Resource, vsNamespace: string): string | undefined {
  const slash = serverHost.indexOf('/');
  if (slash < 0) return serverHost;
  const ns = serverHost.slice(0, slash);
  const h = serverHost.slice(slash + 1);
  if (ns === '*' || ns === vsNamespace || (ns === '.' && (gw.metadata.namespace ?? 'default') === vsNamespace)) return h;
  return undefined;
}

/** IST0132 VirtualServiceHostNotFoundInGateway. */
const hostNotInGateway: Analyzer = {
  name: 'virtual-service-host-not-found-in-gateway',
  run: (ctx) => {
    const gateways = gatewaysByName(ctx);
    const out: ConfigError[] = [];
    for (const vs of ctx.of<VirtualServiceSpec>('VirtualService')) {
      const ns = vs.metadata.namespace ?? 'default';
      (vs.spec.gateways ?? []).forEach((ref, i) => {
        const gw = ref === 'mesh' ? undefined : gateways.get(gatewayRef(ref, vs));
        if (!gw) return;
        const served = (gw.spec.servers ?? []).flatMap((s) => s.hosts ?? []).map((h) => serverHostFor(h, gw, ns)).filter((h): h is string => h !== undefined);
        const missing = (vs.spec.hosts ?? []).filter((h) => !served.some((s) => hostMatches(h, s)));
        if (missing.length > 0) {
          out.push(ctx.problem('warning', vs, ['spec', 'gateways', i], `one or more host [${missing.join(', ')}] defined in VirtualService ${nsName(vs)} not found in Gateway ${nsName(gw)}`, 'IST0132'));
        }
      });
    }
    return out;
  },
};

/** Gateways selecting the same workload (the same selector labels), in namespace/name order. */
function byWorkload(ctx: AnalyzeContext): Resource<GatewaySpec>[][] {
  const groups = new Map<string, Resource<GatewaySpec>[]>();
  const sorted = [...ctx.of<GatewaySpec>('Gateway')].sort((a, b) => nsName(a).localeCompare(nsName(b)));
  for (const gw of sorted) {
    const key = canonicalJson(gw.spec.selector ?? {});
    const l = groups.get(key) ?? [];
    if (!l.some((x) => nsName(x) === nsName(gw))) l.push(gw);
    groups.set(key, l);
  }
  return [...groups.values()].filter((l) => l.length > 1);
}

function selectorText(gw: Resource<GatewaySpec>): string {
  const s = Object.entries(gw.spec.selector ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
  return s || '(none)';
}

/** IST0138 GatewayDuplicateCertificate: one certificate in several Gateways of one workload. */
const duplicateCertificate: Analyzer = {
  name: 'gateway-duplicate-certificate',
  run: (ctx) => {
    const out: ConfigError[] = [];
    for (const group of byWorkload(ctx)) {
      const users = new Map<string, { gw: Resource<GatewaySpec>; path: (string | number)[] }[]>();
      for (const gw of group) {
        (gw.spec.servers ?? []).forEach((s: GatewayServer, i) => {
          const t = s.tls;
          const key = t?.credentialName ? `secret ${t.credentialName}` : t?.serverCertificate && t.privateKey ? `files ${t.serverCertificate} ${t.privateKey}` : undefined;
          if (!key) return;
          const l = users.get(key) ?? [];
          if (!l.some((u) => u.gw === gw)) l.push({ gw, path: ['spec', 'servers', i, 'tls', t?.credentialName ? 'credentialName' : 'serverCertificate'] });
          users.set(key, l);
        });
      }
      for (const l of users.values()) {
        if (l.length < 2) continue;
        const names = l.map((u) => nsName(u.gw)).join(' ');
        for (const u of l) out.push(ctx.problem('warning', u.gw, u.path, `duplicate certificate in multiple gateways [${names}] may cause 404s if clients re-use HTTP/2 connections`, 'IST0138'));
      }
    }
    return out;
  },
};

const bareHost = (h: string) => (h.includes('/') ? h.slice(h.indexOf('/') + 1) : h);

/** IST0145 ConflictingGateways: Gateways of one workload with the same port and overlapping hosts. */
const conflictingGateways: Analyzer = {
  name: 'conflicting-gateways',
  run: (ctx) => {
    const out: ConfigError[] = [];
    for (const group of byWorkload(ctx)) {
      for (const gw of group) {
        (gw.spec.servers ?? []).forEach((s, i) => {
          const others = new Set<string>();
          const hosts = new Set<string>();
          for (const other of group) {
            if (other === gw) continue;
            for (const o of other.spec.servers ?? []) {
              if (o.port?.number !== s.port?.number) continue;
              for (const h of s.hosts ?? []) {
                if ((o.hosts ?? []).some((oh) => hostMatches(bareHost(h), bareHost(oh)))) {
                  others.add(nsName(other));
                  hosts.add(bareHost(h));
                }
              }
            }
          }
          if (others.size === 0) return;
          const msg = `conflict with gateways ${[...others].join(', ')} (workload selector ${selectorText(gw)}, port ${s.port.number}, hosts ${[...hosts].join(', ')})`;
          out.push(ctx.problem('error', gw, ['spec', 'servers', i], msg, 'IST0145'));
        });
      }
    }
    return out;
  },
};

/**
 * IST0140 IngressRouteRulesNotAffected: a gateway uses only the VirtualServices bound to it, so
 * another VirtualService's subsets for a host do nothing for requests that came through the gateway.
 */
const ingressRouteRulesNotAffected: Analyzer = {
  name: 'ingress-route-rules-not-affected',
  run: (ctx) => {
    const vss = ctx.of<VirtualServiceSpec>('VirtualService');
    const subsetRules = new Map<string, Resource<VirtualServiceSpec>[]>();
    for (const vs of vss) {
      if (!boundToMesh(vs)) continue;
      const hosts = new Set((vs.spec.hosts ?? []).map((h) => ctx.fqdn(h, vs)));
      for (const d of destinations(vs)) {
        const f = ctx.fqdn(d.dest.host, vs);
        if (d.dest.subset === undefined || !hosts.has(f)) continue;
        const l = subsetRules.get(f) ?? [];
        if (!l.includes(vs)) l.push(vs);
        subsetRules.set(f, l);
      }
    }
    const out: ConfigError[] = [];
    for (const vs of vss) {
      if (boundToMesh(vs)) continue;
      const reported = new Set<string>();
      for (const d of destinations(vs)) {
        if (d.dest.subset !== undefined) continue;
        const f = ctx.fqdn(d.dest.host, vs);
        for (const other of subsetRules.get(f) ?? []) {
          const key = `${nsName(other)} ${f}`;
          if (reported.has(key)) continue;
          reported.add(key);
          out.push(ctx.problem('warning', vs, [...d.path, 'host'], `subset in VirtualService ${nsName(other)} has no effect on requests through the gateways of VirtualService ${nsName(vs)} (they reach every version of ${f})`, 'IST0140'));
        }
      }
    }
    return out;
  },
};

export const GATEWAY_ANALYZERS: Analyzer[] = [
  missingGateways,
  missingCredentials,
  hostNotInGateway,
  duplicateCertificate,
  conflictingGateways,
  ingressRouteRulesNotAffected,
];

