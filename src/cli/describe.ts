/**
 * `isle describe service|pod`, after `istioctl x describe`: for one service (or one workload),
 * which config applies to it — VirtualServices, DestinationRules, PeerAuthentications,
 * AuthorizationPolicies — read from the clusters' config directories, and which endpoints the
 * control planes see for it, in which cluster, network and locality, read from their debug APIs.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_DOMAIN_SUFFIX, fqdn, hostMatches, serviceHost } from '../config/hosts.js';
import type { ServiceSpec } from '../config/kinds/core.js';
import type { DestinationRuleSpec, ServiceEntrySpec, VirtualServiceSpec, WorkloadEntrySpec } from '../config/kinds/networking.js';
import type { AuthorizationPolicySpec, PeerAuthenticationSpec } from '../config/kinds/security.js';
import { isUnderDir, loadConfig } from '../config/load.js';
import type { Resource } from '../config/types.js';
import { DEMO_STATE_FILE, getJson, unreachable } from '../controlplane/status.js';
import { IsleError } from '../errors.js';
import type { CliIO } from './io.js';

type Labels = Readonly<Record<string, string>>;

export interface RegistryEndpoint {
  hostname: string;
  address?: string;
  port: number;
  servicePort: number;
  cluster: string;
  network: string;
  locality: string;
  health: string;
  serviceAccount: string;
  workload: string;
  labels: Labels;
}

interface Registryz {
  localCluster: string;
  services: { hostname: string; clusters: string[]; endpoints: RegistryEndpoint[] }[];
}

export interface Plane {
  cluster: string;
  debug: string;
}

async function demoState(): Promise<{ dir: string; planes: Plane[] } | undefined> {
  try {
    const s = JSON.parse(await readFile(DEMO_STATE_FILE, 'utf8')) as { dir?: string; controlPlanes?: { cluster: string; debug: string }[] };
    if (!s.dir || !s.controlPlanes) return undefined;
    return { dir: s.dir, planes: s.controlPlanes.map((c) => ({ cluster: c.cluster, debug: c.debug })) };
  } catch {
    return undefined;
  }
}

function selects(selector: Labels | undefined, labels: Labels | undefined): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels !== undefined && Object.hasOwn(labels, k) && labels[k] === v);
}

/** A policy's scope for workloads with `labels` in `namespace`: mesh, namespace or workload, or none. */
function policyScope(r: Resource<{ selector?: { matchLabels?: Labels } }>, namespace: string, labels: Labels | undefined, rootNamespace: string): string | undefined {
  const ns = r.metadata.namespace ?? 'default';
  const sel = r.spec.selector?.matchLabels;
  const hasSel = sel !== undefined && Object.keys(sel).length > 0;
  if (ns === rootNamespace && !hasSel) return 'mesh';
  if (ns !== namespace) return undefined;
  if (!hasSel) return 'namespace';
  return labels !== undefined && Object.entries(sel).every(([k, v]) => labels[k] === v) ? 'workload' : undefined;
}

function where(r: Resource): string {
  return `${r.metadata.namespace ?? 'default'}/${r.metadata.name} (${r.source.file}:${r.source.line})`;
}

export interface Described {
  lines: string[];
  found: boolean;
}

/** What applies to the service `host` (an FQDN) in `resources`, and its endpoints in `registries`. */
export function describeService(host: string, resources: readonly Resource[], registries: readonly { plane: Plane; reg?: Registryz; error?: string }[], rootNamespace = 'istio-system'): Described {
  const lines: string[] = [];
  const svcs = resources.filter((r): r is Resource<ServiceSpec> => r.kind === 'Service' && serviceHost(r.metadata.name, r.metadata.namespace ?? 'default') === host);
  const ses = resources.filter((r): r is Resource<ServiceEntrySpec> => r.kind === 'ServiceEntry' && (r as Resource<ServiceEntrySpec>).spec.hosts?.some((h) => fqdn(h, r.metadata.namespace ?? 'default', DEFAULT_DOMAIN_SUFFIX) === host) === true);
  const inRegistry = registries.some((x) => x.reg?.services.some((s) => s.hostname === host));
  if (svcs.length === 0 && ses.length === 0 && !inRegistry) return { lines: [`no Service or ServiceEntry defines ${host}`], found: false };
  const namespace = host.split('.')[1] ?? 'default';
  lines.push(`Service: ${host}`);
  for (const s of svcs) lines.push(`  defined by Service ${where(s)}: ports ${(s.spec.ports ?? []).map((p) => `${p.port}/${p.name ?? p.protocol ?? 'tcp'}${p.targetPort !== undefined ? `→${p.targetPort}` : ''}`).join(', ')}; selector ${JSON.stringify(s.spec.selector ?? {})}`);
  for (const s of ses) lines.push(`  defined by ServiceEntry ${where(s)}: ${s.spec.location ?? 'MESH_EXTERNAL'}, resolution ${s.spec.resolution ?? 'NONE'}`);
  const selector = svcs[0]?.spec.selector;

  const vss = resources.filter((r): r is Resource<VirtualServiceSpec> => r.kind === 'VirtualService' && ((r as Resource<VirtualServiceSpec>).spec.hosts ?? []).some((h) => hostMatches(host, fqdn(h, r.metadata.namespace ?? 'default', DEFAULT_DOMAIN_SUFFIX))));
  lines.push(vss.length === 0 ? 'VirtualServices: none (default route to every endpoint)' : 'VirtualServices:');
  for (const vs of vss) {
    const gws = vs.spec.gateways && vs.spec.gateways.length > 0 ? ` gateways ${vs.spec.gateways.join(', ')};` : '';
    lines.push(`  ${where(vs)}:${gws} ${(vs.spec.http ?? []).length} http, ${(vs.spec.tcp ?? []).length} tcp, ${(vs.spec.tls ?? []).length} tls route(s)`);
  }
  const drs = resources.filter((r): r is Resource<DestinationRuleSpec> => r.kind === 'DestinationRule' && hostMatches(host, fqdn((r as Resource<DestinationRuleSpec>).spec.host, r.metadata.namespace ?? 'default', DEFAULT_DOMAIN_SUFFIX)));
  lines.push(drs.length === 0 ? 'DestinationRules: none' : 'DestinationRules:');
  for (const dr of drs) {
    const subsets = (dr.spec.subsets ?? []).map((s) => `${s.name} ${JSON.stringify(s.labels ?? {})}`);
    const tp = dr.spec.trafficPolicy ? Object.keys(dr.spec.trafficPolicy).join(', ') : '';
    lines.push(`  ${where(dr)}: host ${dr.spec.host}${subsets.length > 0 ? `; subsets ${subsets.join(', ')}` : ''}${tp ? `; trafficPolicy: ${tp}` : ''}`);
  }
  const pas = resources.filter((r): r is Resource<PeerAuthenticationSpec> => r.kind === 'PeerAuthentication').map((r) => ({ r, scope: policyScope(r as never, namespace, selector, rootNamespace) })).filter((x) => x.scope);
  lines.push(pas.length === 0 ? 'PeerAuthentication: none (mTLS PERMISSIVE by default)' : 'PeerAuthentication:');
  for (const { r, scope } of pas) lines.push(`  ${scope}: ${where(r)}: mtls ${r.spec.mtls?.mode ?? 'UNSET (inherit)'}${r.spec.portLevelMtls ? `; ports ${Object.entries(r.spec.portLevelMtls).map(([p, m]) => `${p}=${m.mode ?? 'UNSET'}`).join(', ')}` : ''}`);
  const aps = resources.filter((r): r is Resource<AuthorizationPolicySpec> => r.kind === 'AuthorizationPolicy').map((r) => ({ r, scope: policyScope(r as never, namespace, selector, rootNamespace) })).filter((x) => x.scope);
  lines.push(aps.length === 0 ? 'AuthorizationPolicies: none (all requests allowed)' : 'AuthorizationPolicies:');
  for (const { r, scope } of aps) lines.push(`  ${scope}: ${where(r)}: ${r.spec.action ?? 'ALLOW'}, ${(r.spec.rules ?? []).length} rule(s)`);

  lines.push('Endpoints:');
  for (const x of registries) {
    if (x.error) {
      lines.push(`  ${x.plane.cluster} (${x.plane.debug}): unreachable: ${x.error}`);
      continue;
    }
    const svc = x.reg?.services.find((s) => s.hostname === host);
    const eps = svc?.endpoints ?? [];
    lines.push(`  as control plane ${x.plane.cluster} sees them (${eps.length}):`);
    for (const e of eps) {
      const addr = e.address !== undefined ? `${e.address}:${e.port}` : `via ${e.network}'s east-west gateway`;
      lines.push(`    ${addr.padEnd(26)} cluster ${e.cluster}, network ${e.network || '(none)'}, locality ${e.locality || '(none)'}, ${e.health}, ${e.workload} (sa ${e.serviceAccount})${e.labels['version'] ? `, version ${e.labels['version']}` : ''}`);
    }
  }
  return { lines, found: true };
}

/** What applies to the workload `name` in `namespace`: the services selecting it, and policies. */
export function describeWorkload(name: string, namespace: string, all: readonly Resource[], registries: readonly { plane: Plane; reg?: Registryz }[], configDirs: readonly string[] = [], rootNamespace = 'istio-system'): Described {
  const we = all.find((r): r is Resource<WorkloadEntrySpec> => r.kind === 'WorkloadEntry' && r.metadata.name === name && (r.metadata.namespace ?? 'default') === namespace);
  const eps = registries.flatMap((x) => (x.reg?.services ?? []).flatMap((s) => s.endpoints.filter((e) => e.workload === name && e.hostname.split('.')[1] === namespace)));
  if (!we && eps.length === 0) return { lines: [`no workload ${namespace}/${name} (no WorkloadEntry, and no control plane has an endpoint of it)`], found: false };
  const labels: Labels = we?.spec.labels ?? eps[0]?.labels ?? {};
  // Policies and services of the workload's own cluster: another cluster's config does not apply to it.
  const root = we ? configDirs.find((d) => isUnderDir(we.source.file, d)) : undefined;
  const resources = root === undefined ? all : all.filter((r) => isUnderDir(r.source.file, root));
  const lines = [`Workload: ${namespace}/${name}${we ? ` (WorkloadEntry ${where(we)})` : ' (auto-registered)'}`];
  lines.push(`  address ${we?.spec.address ?? eps[0]?.address ?? '?'}, labels ${JSON.stringify(labels)}`);
  const svcs = resources.filter((r): r is Resource<ServiceSpec> => r.kind === 'Service' && (r.metadata.namespace ?? 'default') === namespace && selects((r as Resource<ServiceSpec>).spec.selector, labels));
  lines.push(svcs.length === 0 ? 'Services: none select it' : `Services: ${[...new Set(svcs.map((s) => serviceHost(s.metadata.name, namespace)))].join(', ')}`);
  for (const kind of ['PeerAuthentication', 'AuthorizationPolicy'] as const) {
    const ps = resources.filter((r) => r.kind === kind).map((r) => ({ r, scope: policyScope(r as never, namespace, labels, rootNamespace) })).filter((x) => x.scope);
    lines.push(`${kind}: ${ps.length === 0 ? 'none' : ps.map((p) => `${p.scope} ${where(p.r)}`).join('; ')}`);
  }
  for (const e of eps) lines.push(`  endpoint of ${e.hostname}:${e.servicePort} in cluster ${e.cluster}, network ${e.network || '(none)'}, ${e.health}`);
  return { lines, found: true };
}

async function fetchRegistry(plane: Plane): Promise<{ plane: Plane; reg?: Registryz; error?: string }> {
  try {
    return { plane, reg: (await getJson(`${plane.debug.replace(/\/+$/, '')}/debug/registryz?pretty=false`, 3000)) as Registryz };
  } catch (e) {
    return { plane, error: unreachable(e) };
  }
}

interface DescribeOpts {
  namespace: string;
  config: string[];
  controlPlane: string[];
}

async function inputs(o: DescribeOpts): Promise<{ resources: Resource[]; configs: string[]; registries: { plane: Plane; reg?: Registryz; error?: string }[] }> {
  const demo = o.config.length === 0 || o.controlPlane.length === 0 ? await demoState() : undefined;
  const configs = o.config.length > 0 ? o.config : (demo?.planes.map((p) => join(demo.dir, p.cluster)) ?? []);
  const planes = o.controlPlane.length > 0 ? o.controlPlane.map((u, i) => ({ cluster: `#${i + 1}`, debug: u.includes('://') ? u : `http://${u}` })) : (demo?.planes ?? []);
  if (configs.length === 0 && planes.length === 0) {
    throw new IsleError('ERR_USAGE', `nothing to describe from: pass --config DIR (per cluster) and/or --control-plane http://HOST:15014, or start \`isle demo\` (it writes ${DEMO_STATE_FILE})`);
  }
  const loaded = configs.length > 0 ? await loadConfig(configs) : { resources: [] as Resource[] };
  return { resources: loaded.resources, configs, registries: await Promise.all(planes.map(fetchRegistry)) };
}

export function registerDescribe(program: Command, io: CliIO): void {
  const d = program.command('describe').description('what config applies to a service or workload, and where its endpoints are (like istioctl x describe)');
  const common = (c: Command) =>
    c
      .option('-n, --namespace <ns>', 'namespace', 'default')
      .option('--config <dir>', "a cluster's config directory (repeatable; default: the running demo's)", (v: string, acc: string[]) => [...acc, v], [] as string[])
      .option('--control-plane <url>', "a control plane's debug URL (repeatable; default: the running demo's)", (v: string, acc: string[]) => [...acc, v], [] as string[]);
  common(d.command('service').argument('<name>', 'service name, `name.namespace`, or a full host name')).action(async (name: string, o: DescribeOpts) => {
    const host = name.includes('.') ? fqdn(name, o.namespace, DEFAULT_DOMAIN_SUFFIX) : serviceHost(name, o.namespace);
    const { resources, registries } = await inputs(o);
    const r = describeService(host, resources, registries);
    io.out(`${r.lines.join('\n')}\n`);
    if (!r.found) process.exitCode = 1;
  });
  common(d.command('pod').alias('workload').argument('<name>', 'workload name (WorkloadEntry or auto-registered instance)')).action(async (name: string, o: DescribeOpts) => {
    const { resources, configs, registries } = await inputs(o);
    const r = describeWorkload(name, o.namespace, resources, registries, configs);
    io.out(`${r.lines.join('\n')}\n`);
    if (!r.found) process.exitCode = 1;
  });
}
