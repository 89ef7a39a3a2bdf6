/**
 * In-process cost of generation alone (no sockets, no other process): `node dist/bench/generate-cost.js
 * [proxies] [services] [endpoints]` builds a PushContext like cp-scale's (one namespace, HTTP port 80
 * per service), then measures the CPU of
 *   - connect: every proxy's first snapshot (all types), as the pusher's onConnect does;
 *   - a VirtualService push and a DestinationRule push: the types affectedTypes() names, per proxy,
 *     from a new PushContext, counting the proxies whose snapshot of a type got a new version.
 * CPU time is process.cpuUsage(), so it is less sensitive to other load than wall time. ADR 0120.
 */
import { buildPushContext, type PushContext } from '../src/model/pushcontext.js';
import { formatProxyId, proxyFromNode, withInbound } from '../src/model/proxy.js';
import { generateTypeSnapshot } from '../src/controlplane/snapshots.js';
import { affectedTypes } from '../src/generate/affected.js';
import { PushRequest } from '../src/model/pushrequest.js';
import { SERVED_TYPES } from '../src/mesh/typeurls.js';
import { topologyLabels, type Endpoint, type Service } from '../src/registry/model.js';
import type { Kind, Resource } from '../src/config/types.js';
import type { DestinationRuleSpec, VirtualServiceSpec } from '../src/config/kinds/networking.js';
import type { TypeSnapshot } from '../src/xds/cache.js';

const [proxies = 1000, services = 1000, endpoints = 10_000] = process.argv.slice(2).map(Number);
const host = (i: number) => `svc-${i}.default.svc.cluster.local`;
const src = { file: 'bench', line: 1 };
const locality = { region: '', zone: '', subzone: '' };

const svcs: Service[] = Array.from({ length: services }, (_, i) => ({
  hostname: host(i), name: `svc-${i}`, namespace: 'default', ports: [{ name: 'http', port: 80, targetPort: 8080, protocol: 'HTTP' }],
  addresses: [], clusterAddresses: {}, resolution: 'STATIC', location: 'MESH_INTERNAL', kind: 'Service', clusters: ['cluster-1'],
}) as Service);
const eps: Endpoint[] = Array.from({ length: endpoints }, (_, i) => ({
  hostname: host(i % services), portName: 'http', servicePort: 80, address: `127.200.${(i >> 8) & 255}.${i & 255}`, port: 8080,
  cluster: 'cluster-1', network: 'network1', locality, serviceAccount: { namespace: 'default', name: `svc-${i % services}` },
  labels: topologyLabels({ app: `svc-${i % services}` }, { locality, network: 'network1', cluster: 'cluster-1' }), health: 'HEALTHY', workload: `ep-${i}`,
}) as Endpoint);
const vs = (t: number): Resource<VirtualServiceSpec> => ({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'svc-1', namespace: 'default' }, spec: { hosts: [host(1)], http: [{ timeout: `${t}s`, route: [{ destination: { host: host(1) } }] }] }, source: src }) as Resource<VirtualServiceSpec>;
const dr = (n: number): Resource<DestinationRuleSpec> => ({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'svc-2', namespace: 'default' }, spec: { host: host(2), subsets: Array.from({ length: n }, (_, k) => ({ name: `v${k + 1}`, labels: { version: `v${k + 1}` } })) }, source: src }) as Resource<DestinationRuleSpec>;

let seq = 0;
const pushOf = (t: number, subsets: number): PushContext => buildPushContext({
  version: String(++seq), mesh: { trustDomain: 'cluster.local', clusterName: 'cluster-1', network: 'network1' },
  services: svcs, endpoints: eps, virtualServices: [vs(t)], destinationRules: [dr(subsets)], trustBundlePem: 'root',
});

const bases = Array.from({ length: proxies }, (_, i) => proxyFromNode({ id: formatProxyId('sidecar', `127.150.${(i >> 8) & 255}.${i & 255}`, `bench-${i}`, 'default'), metadata: { NAMESPACE: 'default', LABELS: { app: 'bench-client' } } }, { cluster: 'cluster-1' }));
const held = bases.map(() => new Map<string, TypeSnapshot>());

function cpu<T>(f: () => T): [T, number] {
  const a = process.cpuUsage();
  const r = f();
  const d = process.cpuUsage(a);
  return [r, (d.user + d.system) / 1e6];
}

function round(push: PushContext, request: PushRequest | undefined): number {
  let changed = 0;
  bases.forEach((b, i) => {
    const proxy = withInbound(b, push);
    for (const t of request ? affectedTypes(request, proxy) : SERVED_TYPES) {
      const ts = generateTypeSnapshot(push, proxy, t);
      if (held[i]!.get(t)?.version !== ts.version) changed++;
      held[i]!.set(t, ts);
    }
  });
  return changed;
}

const [, connect] = cpu(() => round(pushOf(1, 0), undefined));
const rows: string[] = [`connect (all types, ${proxies} proxies): ${connect.toFixed(2)} s CPU`];
for (let k = 0; k < 3; k++) {
  const [n, s] = cpu(() => round(pushOf(2 + k, k), new PushRequest({ full: true, reasons: ['config'], configKinds: ['VirtualService' as Kind] })));
  rows.push(`VirtualService push ${k + 1}: ${s.toFixed(3)} s CPU, ${n} type snapshots changed`);
  const [m, d] = cpu(() => round(pushOf(2 + k, k + 1), new PushRequest({ full: true, reasons: ['config'], configKinds: ['DestinationRule' as Kind] })));
  rows.push(`DestinationRule push ${k + 1}: ${d.toFixed(3)} s CPU, ${m} type snapshots changed`);
}
const sizes = [...held[0]!].map(([t, ts]) => `${t.split('.').pop()} ${Math.round([...ts.resources.values()].reduce((n, r) => n + r.any.value.length, 0) / 1024)} KB`);
rows.push(`one proxy's snapshot: ${sizes.join(', ')}`);
console.log(rows.join('\n'));
