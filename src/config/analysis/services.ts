/** Checks of ServiceEntries and DestinationRules against each other and against Services. */
import { serviceHost } from '../hosts.js';
import type { ConfigError, Resource } from '../types.js';
import type { ClientTLSSettings, DestinationRuleSpec, ServiceEntrySpec, TrafficPolicy } from '../kinds/networking.js';
import type { ServiceSpec } from '../kinds/core.js';
import { PROTOCOLS } from '../kinds/common.js';
import { nsName, visibleTogether, type Analyzer } from './context.js';

/** IST0134 ServiceEntryAddressesRequired: without addresses a TCP port matches all traffic to it, whatever the host. */
const addressesRequired: Analyzer = {
  name: 'service-entry-addresses-required',
  run: (ctx) => {
    const out: ConfigError[] = [];
    for (const se of ctx.of<ServiceEntrySpec>('ServiceEntry')) {
      if ((se.spec.addresses ?? []).length > 0) continue;
      const i = (se.spec.ports ?? []).findIndex((p) => !p.protocol || p.protocol.toUpperCase() === 'TCP');
      if (i < 0) continue;
      const proto = se.spec.ports![i]!.protocol ? 'TCP' : 'unset';
      out.push(ctx.problem('warning', se, ['spec', 'ports', i], `ServiceEntry addresses are required for this protocol (${proto}): without them every connection to port ${se.spec.ports![i]!.number} matches, whatever its host`, 'IST0134'));
    }
    return out;
  },
};

const KNOWN_PROTOCOLS: ReadonlySet<string> = new Set(PROTOCOLS);

/** A Kubernetes port's protocol as Istio reads it (appProtocol, then the name's prefix); undefined when Istio would detect it. */
function kubePortProtocol(p: { name?: string; appProtocol?: string }): string | undefined {
  const app = p.appProtocol?.toUpperCase();
  if (app && KNOWN_PROTOCOLS.has(app)) return app;
  const prefix = (p.name ?? '').split('-', 1)[0]!.toUpperCase();
  return KNOWN_PROTOCOLS.has(prefix) ? prefix : undefined;
}

/**
 * IST0177 ConflictingServiceEntryProtocol: one host and port, two protocols. Istio compares
 * ServiceEntries visible in one namespace; a ServiceEntry for a Kubernetes Service's host is compared
 * with the Service's port too.
 */
const conflictingProtocols: Analyzer = {
  name: 'conflicting-service-entry-protocol',
  run: (ctx) => {
    const uses = new Map<string, { se: Resource<ServiceEntrySpec>; protocol: string; i: number }[]>();
    for (const se of ctx.of<ServiceEntrySpec>('ServiceEntry')) {
      for (const h of se.spec.hosts ?? []) {
        (se.spec.ports ?? []).forEach((p, i) => {
          if (!p.protocol) return;
          const key = `${ctx.fqdn(h, se)}:${p.number}`;
          const l = uses.get(key) ?? [];
          if (!l.some((u) => u.se === se)) l.push({ se, protocol: p.protocol.toUpperCase(), i });
          uses.set(key, l);
        });
      }
    }
    const out: ConfigError[] = [];
    for (const [key, l] of uses) {
      const colon = key.lastIndexOf(':');
      const [host, port] = [key.slice(0, colon), key.slice(colon + 1)];
      for (const u of l) {
        const clash = l.filter((o) => o !== u && o.protocol !== u.protocol && visibleTogether(o.se, u.se));
        if (clash.length === 0) continue;
        const all = [u, ...clash].sort((a, b) => nsName(a.se).localeCompare(nsName(b.se)));
        out.push(ctx.problem('warning', u.se, ['spec', 'ports', u.i, 'protocol'], `multiple ServiceEntries (${all.map((x) => nsName(x.se)).join(', ')}) define the same host ${JSON.stringify(host)} and port ${port} with conflicting protocols (${[...new Set(all.map((x) => x.protocol))].sort().join(', ')})`, 'IST0177'));
      }
    }
    for (const svc of ctx.of<ServiceSpec>('Service')) {
      const host = serviceHost(svc.metadata.name, svc.metadata.namespace ?? 'default', ctx.domainSuffix);
      for (const sp of svc.spec.ports ?? []) {
        const proto = kubePortProtocol(sp);
        if (!proto) continue;
        for (const u of uses.get(`${host}:${sp.port}`) ?? []) {
          if (u.protocol === proto) continue;
          out.push(ctx.problem('warning', u.se, ['spec', 'ports', u.i, 'protocol'], `host ${JSON.stringify(host)} port ${sp.port} is ${proto} in Service ${nsName(svc)}, but ${u.protocol} here`, 'IST0177'));
        }
      }
    }
    return out;
  },
};

/**
 * IST0128 / IST0129 NoServerCertificateVerification{DestinationLevel,PortLevel}: TLS to the server
 * without a CA to check its certificate against.
 */
const serverCertificateNotVerified: Analyzer = {
  name: 'no-server-certificate-verification',
  run: (ctx) => {
    const out: ConfigError[] = [];
    for (const dr of ctx.of<DestinationRuleSpec>('DestinationRule')) {
      const check = (tls: ClientTLSSettings | undefined, path: (string | number)[], code: string, where: string) => {
        if (!tls || (tls.mode !== 'SIMPLE' && tls.mode !== 'MUTUAL')) return;
        if (tls.caCertificates || tls.credentialName || tls.insecureSkipVerify === true) return;
        out.push(ctx.problem('error', dr, [...path, 'mode'], `DestinationRule ${nsName(dr)} has TLS mode set to ${tls.mode} but no caCertificates are set to validate server identity for host: ${dr.spec.host}${where}`, code));
      };
      const policy = (tp: TrafficPolicy | undefined, path: (string | number)[]) => {
        if (!tp) return;
        check(tp.tls, [...path, 'tls'], 'IST0128', '');
        (tp.portLevelSettings ?? []).forEach((pl, i) => check(pl.tls, [...path, 'portLevelSettings', i, 'tls'], 'IST0129', ` at port number:${pl.port?.number ?? '?'}`));
      };
      policy(dr.spec.trafficPolicy, ['spec', 'trafficPolicy']);
      (dr.spec.subsets ?? []).forEach((s, i) => policy(s.trafficPolicy, ['spec', 'subsets', i, 'trafficPolicy']));
    }
    return out;
  },
};

export const SERVICE_ANALYZERS: Analyzer[] = [addressesRequired, conflictingProtocols, serverCertificateNotVerified];
