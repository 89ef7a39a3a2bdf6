/**
 * `isle proxy-config cluster|listener|route|endpoint|secret|all PROXY [-o short|json|yaml]`,
 * modelled on `istioctl proxy-config`: reads the proxy's admin /config_dump (Envoy's ConfigDump
 * shape, src/proxy/configdump.ts) and prints one kind of resource. PROXY is an admin address
 * (`127.1.0.20:15000`, `http://…`) or a workload of the running demo (`sleep`, `sleep.default`,
 * `cluster-2/sleep`), found through its control planes' /debug/syncz; a demo proxy's admin is on
 * `<its ip>:15000`.
 */
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { DEMO_STATE_FILE } from '../controlplane/status.js';
import { IsleError } from '../errors.js';
import type { CliIO } from './io.js';

type Obj = Record<string, unknown>;
const KINDS = ['cluster', 'listener', 'route', 'endpoint', 'secret', 'all'] as const;
type Kind = (typeof KINDS)[number];

const usage = (m: string): never => {
  throw new IsleError('ERR_USAGE', m);
};

const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): Obj[] => (Array.isArray(v) ? (v as Obj[]) : []);

function section(dump: Obj, type: string): Obj {
  return arr(dump['configs']).find((c) => String(c['@type']).endsWith(`.${type}`)) ?? {};
}

/** The resources of one kind, as Envoy objects (what `-o json` prints). */
export function resourcesOf(dump: Obj, kind: Exclude<Kind, 'all'>): Obj[] {
  switch (kind) {
    case 'cluster':
      return arr(section(dump, 'ClustersConfigDump')['dynamic_active_clusters']).map((c) => obj(c['cluster']));
    case 'listener':
      return arr(section(dump, 'ListenersConfigDump')['dynamic_listeners']).map((l) => obj(obj(l['active_state'])['listener']));
    case 'route':
      return arr(section(dump, 'RoutesConfigDump')['dynamic_route_configs']).map((r) => obj(r['route_config']));
    case 'endpoint':
      return arr(section(dump, 'EndpointsConfigDump')['dynamic_endpoint_configs']).map((e) => obj(e['endpoint_config']));
    case 'secret':
      return arr(section(dump, 'SecretsConfigDump')['dynamic_active_secrets']).map((s) => obj(s['secret']));
  }
}

function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('   ').trimEnd();
  return [line(head), ...rows.map(line)].join('\n') + '\n';
}

/** `outbound|5000|v1|helloworld.default.svc.cluster.local` → its parts (istioctl's columns). */
function clusterParts(name: string): { fqdn: string; port: string; subset: string; direction: string } {
  const p = name.split('|');
  if (p.length === 4) return { direction: p[0]!, port: p[1]!, subset: p[2] || '-', fqdn: p[3] || '-' };
  const sni = /^outbound_\.(\d+)_\.([^_]*)_\.(.+)$/.exec(name);
  if (sni) return { direction: 'passthrough', port: sni[1]!, subset: sni[2] || '-', fqdn: sni[3]! };
  return { direction: '-', port: '-', subset: '-', fqdn: name };
}

function sockAddr(a: unknown): string {
  const sa = obj(obj(a)['socket_address']);
  return sa['address'] !== undefined ? `${String(sa['address'])}:${String(sa['port_value'] ?? 0)}` : '-';
}

function shortClusters(cs: Obj[]): string {
  return table(
    ['SERVICE FQDN', 'PORT', 'SUBSET', 'DIRECTION', 'TYPE'],
    cs.map((c) => {
      const p = clusterParts(String(c['name']));
      return [p.fqdn, p.port, p.subset, p.direction, String(c['type'] ?? 'EDS')];
    }),
  );
}

function chainDestination(fc: Obj): string {
  const f = arr(fc['filters']).at(-1) ?? {};
  const tc = obj(f['typed_config']);
  if (obj(tc['rds'])['route_config_name'] !== undefined) return `Route: ${String(obj(tc['rds'])['route_config_name'])}`;
  if (tc['route_config'] !== undefined) return `Inline Route: ${String(obj(tc['route_config'])['name'] ?? '')}`;
  if (tc['cluster'] !== undefined) return `Cluster: ${String(tc['cluster'])}`;
  if (tc['weighted_clusters'] !== undefined) return `Clusters: ${arr(obj(tc['weighted_clusters'])['clusters']).map((c) => String(c['name'])).join(',')}`;
  return '-';
}

function shortListeners(ls: Obj[]): string {
  const rows: string[][] = [];
  for (const l of ls) {
    const [addr, port] = (() => {
      const s = sockAddr(l['address']);
      const i = s.lastIndexOf(':');
      return [s.slice(0, i), s.slice(i + 1)];
    })();
    for (const fc of arr(l['filter_chains'])) {
      const m = obj(fc['filter_chain_match']);
      const parts: string[] = [];
      const sn = (m['server_names'] as string[] | undefined) ?? [];
      if (sn.length) parts.push(`SNI: ${sn.join(',')}`);
      if (m['transport_protocol']) parts.push(`Trans: ${String(m['transport_protocol'])}`);
      if (fc['transport_socket']) parts.push('TLS');
      rows.push([String(l['name']), addr!, port!, parts.join('; ') || 'ALL', chainDestination(fc)]);
    }
  }
  return table(['NAME', 'ADDRESS', 'PORT', 'MATCH', 'DESTINATION'], rows);
}

function routeMatch(r: Obj): string {
  const m = obj(r['match']);
  if (m['path'] !== undefined) return String(m['path']);
  if (m['safe_regex'] !== undefined) return `~${String(obj(m['safe_regex'])['regex'])}`;
  return `${String(m['prefix'] ?? '/')}*`;
}

function routeTarget(r: Obj): string {
  const ra = obj(r['route']);
  if (ra['cluster'] !== undefined) return String(ra['cluster']);
  if (ra['weighted_clusters'] !== undefined) return arr(obj(ra['weighted_clusters'])['clusters']).map((c) => `${String(c['name'])} ${String(c['weight'])}`).join(', ');
  if (r['redirect'] !== undefined) return 'redirect';
  if (r['direct_response'] !== undefined) return `direct ${String(obj(r['direct_response'])['status'])}`;
  return '-';
}

function shortRoutes(rcs: Obj[]): string {
  const rows: string[][] = [];
  for (const rc of rcs) {
    for (const vh of arr(rc['virtual_hosts'])) {
      const domains = ((vh['domains'] as string[] | undefined) ?? []);
      const d = domains.length > 2 ? `${domains[0]} +${domains.length - 1} more...` : domains.join(', ');
      for (const r of arr(vh['routes'])) rows.push([String(rc['name']), String(vh['name']), d, routeMatch(r), routeTarget(r)]);
    }
  }
  return table(['NAME', 'VHOST NAME', 'DOMAINS', 'MATCH', 'DESTINATION'], rows);
}

function shortEndpoints(clas: Obj[]): string {
  const rows: string[][] = [];
  for (const cla of clas) {
    for (const loc of arr(cla['endpoints'])) {
      const l = obj(loc['locality']);
      const where = [l['region'], l['zone'], l['sub_zone']].filter((x) => x).join('/') || '-';
      for (const e of arr(loc['lb_endpoints'])) {
        rows.push([sockAddr(obj(e['endpoint'])['address']), String(e['health_status'] ?? 'HEALTHY'), where, String(e['load_balancing_weight'] ?? 1), String(cla['cluster_name'])]);
      }
    }
  }
  return table(['ENDPOINT', 'STATUS', 'LOCALITY', 'WEIGHT', 'CLUSTER'], rows);
}

function shortSecrets(ss: Obj[]): string {
  const rows = ss.map((s) => {
    const tc = obj(s['tls_certificate']);
    const vc = obj(s['validation_context']);
    const pem = String(obj(tc['certificate_chain'])['inline_string'] ?? obj(vc['trusted_ca'])['inline_string'] ?? '');
    let valid = '-', serial = '-', notAfter = '-', notBefore = '-';
    try {
      const c = new X509Certificate(pem);
      const now = Date.now();
      valid = String(now >= Date.parse(c.validFrom) && now <= Date.parse(c.validTo));
      serial = c.serialNumber.toLowerCase();
      notAfter = new Date(c.validTo).toISOString();
      notBefore = new Date(c.validFrom).toISOString();
    } catch {
      // not a certificate we can read: leave the columns empty
    }
    return [String(s['name']), s['tls_certificate'] ? 'Cert Chain' : s['validation_context'] ? 'CA' : '-', 'ACTIVE', valid, serial, notAfter, notBefore];
  });
  return table(['RESOURCE NAME', 'TYPE', 'STATUS', 'VALID CERT', 'SERIAL NUMBER', 'NOT AFTER', 'NOT BEFORE'], rows);
}

const SHORT: Record<Exclude<Kind, 'all'>, (o: Obj[]) => string> = {
  cluster: shortClusters,
  listener: shortListeners,
  route: shortRoutes,
  endpoint: shortEndpoints,
  secret: shortSecrets,
};

/** The text `isle proxy-config` prints for a dump. */
export function formatProxyConfig(dump: Obj, kind: Kind, output: 'short' | 'json' | 'yaml', yamlStringify: (v: unknown) => string, filter: { fqdn?: string } = {}): string {
  const kinds = kind === 'all' ? (['cluster', 'listener', 'route', 'endpoint', 'secret'] as const) : [kind];
  const pick = (k: Exclude<Kind, 'all'>): Obj[] => {
    let rs = resourcesOf(dump, k);
    if (filter.fqdn && (k === 'cluster' || k === 'endpoint')) rs = rs.filter((r) => String(r['name'] ?? r['cluster_name']).includes(filter.fqdn!));
    return rs;
  };
  if (output === 'json' || output === 'yaml') {
    const v = kind === 'all' ? Object.fromEntries(kinds.map((k) => [`${k}s`, pick(k)])) : pick(kind);
    return output === 'json' ? `${JSON.stringify(v, null, 2)}\n` : yamlStringify(v);
  }
  return kinds.map((k) => SHORT[k](pick(k))).join(kind === 'all' ? '\n' : '');
}

interface SynczLite {
  id: string;
  cluster: string;
}

/** A demo workload name → its admin address, via the demo's control planes. */
async function resolveDemoProxy(name: string, stateFile: string): Promise<string> {
  let planes: { cluster: string; debug: string }[];
  try {
    planes = (JSON.parse(await readFile(stateFile, 'utf8')) as { controlPlanes?: { cluster: string; debug: string }[] }).controlPlanes ?? [];
  } catch {
    return usage(`${JSON.stringify(name)} is not an admin address (HOST:PORT) and no demo is running (${stateFile} not found)`);
  }
  const slash = name.indexOf('/');
  const wantCluster = slash > 0 ? name.slice(0, slash) : undefined;
  const workload = slash > 0 ? name.slice(slash + 1) : name;
  const found: { cluster: string; id: string; ip: string; pod: string }[] = [];
  for (const p of planes) {
    if (wantCluster && p.cluster !== wantCluster) continue;
    try {
      const r = await fetch(`${p.debug}/debug/syncz?pretty=false`, { signal: AbortSignal.timeout(3000) });
      for (const e of (await r.json()) as SynczLite[]) {
        const [, ip, pod] = e.id.split('~');
        if (!ip || !pod) continue;
        if (pod === workload || pod.split('.')[0] === workload) found.push({ cluster: p.cluster, id: e.id, ip, pod });
      }
    } catch {
      // a control plane that is down: the others may know the proxy
    }
  }
  const uniq = [...new Map(found.map((f) => [`${f.cluster}/${f.ip}`, f])).values()];
  if (uniq.length === 0) return usage(`no proxy named ${JSON.stringify(name)} in the demo (try \`isle status\` for the names)`);
  if (uniq.length > 1) return usage(`${JSON.stringify(name)} is ambiguous: ${uniq.map((f) => `${f.cluster}/${f.pod}`).join(', ')}`);
  return `${uniq[0]!.ip}:15000`;
}

export function registerProxyConfig(program: Command, io: CliIO): void {
  program
    .command('proxy-config')
    .alias('pc')
    .description("a proxy's clusters, listeners, routes, endpoints or secrets from its admin /config_dump (like istioctl proxy-config)")
    .argument('<kind>', KINDS.join('|'))
    .argument('<proxy>', 'admin address (HOST:PORT or http://…) or a demo workload (sleep, sleep.default, cluster-2/sleep)')
    .option('-o, --output <format>', 'short, json or yaml', 'short')
    .option('--fqdn <name>', 'only clusters/endpoints whose name contains this')
    .option('--demo-state <file>', 'the demo state file naming its control planes', DEMO_STATE_FILE)
    .action(async (kindArg: string, proxy: string, o: { output: string; fqdn?: string; demoState: string }) => {
      const kind = (KINDS as readonly string[]).includes(kindArg.replace(/s$/, '')) ? (kindArg.replace(/s$/, '') as Kind) : usage(`unknown kind ${JSON.stringify(kindArg)} (${KINDS.join(', ')})`);
      if (!['short', 'json', 'yaml'].includes(o.output)) usage(`--output: short, json or yaml (got ${JSON.stringify(o.output)})`);
      const admin = /^https?:\/\//.test(proxy) ? proxy : proxy.includes(':') ? `http://${proxy}` : `http://${await resolveDemoProxy(proxy, o.demoState)}`;
      let dump: Obj;
      try {
        const r = await fetch(`${admin}/config_dump`, { signal: AbortSignal.timeout(5000) });
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        dump = (await r.json()) as Obj;
      } catch (e) {
        throw new IsleError('ERR_USAGE', `cannot read ${admin}/config_dump: ${e instanceof Error ? e.message : String(e)}`);
      }
      const { stringify } = await import('yaml');
      io.out(formatProxyConfig(dump, kind, o.output as 'short' | 'json' | 'yaml', (v) => stringify(v), o.fqdn !== undefined ? { fqdn: o.fqdn } : {}));
    });
}
