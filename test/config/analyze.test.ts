import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { analyze, ANALYZERS } from '../../src/config/analyze.js';
import { parseConfigText } from '../../src/config/parse.js';
import { formatConfigError, type Resource } from '../../src/config/types.js';

/** Parses `files` (name → text), which must be valid, and returns the formatted analysis. */
function run(files: Record<string, string>): string[] {
  const resources: Resource[] = [];
  for (const [f, text] of Object.entries(files)) {
    const r = parseConfigText(f, text);
    assert.deepEqual(r.errors.filter((e) => e.severity === 'error'), [], f);
    resources.push(...r.resources);
  }
  return analyze(resources).map(formatConfigError);
}

const SVC = (name: string, ns = 'default', port = 5000) => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: ${ns}
spec:
  ports:
  - port: ${port}
    name: http
`;

const DR = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: helloworld
spec:
  host: helloworld
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
`;

const VS = (dests: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: helloworld
spec:
  hosts:
  - helloworld
  http:
  - route:
${dests}`;

describe('analyze', () => {
  it('is a list of named analyzers', () => {
    assert.ok(ANALYZERS.length >= 5);
    assert.equal(new Set(ANALYZERS.map((a) => a.name)).size, ANALYZERS.length);
  });

  it('a consistent set is clean', () => {
    const vs = VS(`    - destination: {host: helloworld, subset: v1}
      weight: 50
    - destination: {host: helloworld.default.svc.cluster.local, subset: v2, port: {number: 5000}}
      weight: 50
`);
    assert.deepEqual(run({ 'svc.yaml': SVC('helloworld'), 'dr.yaml': DR, 'vs.yaml': vs }), []);
  });

  it('reports hosts no Service or ServiceEntry defines, resolving short names in the namespace', () => {
    const dr = DR.replace('name: helloworld\n', 'name: helloworld\n  namespace: other\n');
    const vs = VS(`    - destination: {host: helloworld}
      weight: 60
    - destination: {host: nothere.example.com}
      weight: 40
`);
    assert.deepEqual(run({ 'svc.yaml': SVC('helloworld'), 'dr.yaml': dr, 'vs.yaml': vs }), [
      'vs.yaml:12 VirtualService default/helloworld: spec.http[0].route[1].destination.host: no Service or ServiceEntry defines host nothere.example.com',
      'dr.yaml:7 DestinationRule other/helloworld: spec.host: no Service or ServiceEntry defines host helloworld.other.svc.cluster.local [IST0174]',
    ]);
  });

  it('wildcards and ServiceEntry hosts count', () => {
    const se = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hw}
spec:
  hosts: [helloworld.hello.global]
  location: MESH_INTERNAL
  ports: [{name: http1, number: 5000, protocol: http}]
  resolution: DNS
  endpoints: [{address: 127.2.0.1, ports: {http1: 15443}}]
`;
    const dr = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: all, namespace: istio-system}
spec:
  host: "*.global"
  subsets: [{name: v2, labels: {version: v2}}]
`;
    const drLocal = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: all-local, namespace: istio-system}
spec:
  host: "*.cluster.local"
`;
    const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: hw}
spec:
  hosts: [helloworld.hello.global]
  http:
  - route:
    - destination: {host: helloworld.hello.global, subset: v2}
`;
    assert.deepEqual(run({ 'se.yaml': se, 'dr.yaml': dr, 'vs.yaml': vs, 'dr2.yaml': drLocal }), [
      'dr2.yaml:5 DestinationRule istio-system/all-local: warning: spec.host: *.cluster.local matches no host of any Service or ServiceEntry [IST0174]',
    ]);
    assert.deepEqual(run({ 'se.yaml': se, 'dr.yaml': dr, 'vs.yaml': vs, 'dr2.yaml': drLocal, 'svc.yaml': SVC('x', 'hello') }), []);
  });

  it('reports a subset no DestinationRule for the host defines', () => {
    const vs = VS(`    - destination: {host: helloworld, subset: v1}
      weight: 70
    - destination: {host: helloworld, subset: v3}
      weight: 30
`);
    assert.deepEqual(run({ 'svc.yaml': SVC('helloworld'), 'dr.yaml': DR, 'vs.yaml': vs }), [
      'vs.yaml:12 VirtualService default/helloworld: spec.http[0].route[1].destination.subset: subset "v3" is not defined by any DestinationRule for host helloworld.default.svc.cluster.local',
    ]);
    // Without any DestinationRule, both subsets are unknown.
    assert.equal(run({ 'svc.yaml': SVC('helloworld'), 'vs.yaml': vs }).length, 2);
  });

  it('reports duplicates with both locations', () => {
    assert.deepEqual(run({ 'a/svc.yaml': SVC('helloworld'), 'b/svc.yaml': `# again\n${SVC('helloworld')}`, 'c/svc.yaml': SVC('helloworld', 'other') }), [
      'b/svc.yaml:2 Service default/helloworld: defined more than once (also at a/svc.yaml:1)',
    ]);
  });

  it('warns about ports a service does not have and two VirtualServices with catch-all routes for one host', () => {
    const vs = VS(`    - destination: {host: helloworld, port: {number: 8080}}
`);
    const vs2 = vs.replace('name: helloworld\nspec', 'name: helloworld-2\nspec');
    assert.deepEqual(run({ 'svc.yaml': SVC('helloworld'), 'vs.yaml': vs, 'vs2.yaml': vs2 }), [
      'vs.yaml:10 VirtualService default/helloworld: warning: spec.http[0].route[0].destination.port.number: host helloworld.default.svc.cluster.local has no port 8080 (ports: 5000)',
      'vs2.yaml:10 VirtualService default/helloworld-2: warning: spec.http[0].route[0].destination.port.number: host helloworld.default.svc.cluster.local has no port 8080 (ports: 5000)',
      'vs2.yaml:9 VirtualService default/helloworld-2: warning: spec.http[0]: host helloworld.default.svc.cluster.local: VirtualService default/helloworld (vs.yaml:1) also has a catch-all route, which comes first when they are merged; this route never matches [IST0109]',
    ]);
  });

  it('ingress VirtualService hosts are public names, not services', () => {
    const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ingress}
spec:
  hosts: [www.example.com]
  gateways: [istio-system/ingress]
  http:
  - route:
    - destination: {host: helloworld}
`;
    const gw = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingress, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*/www.example.com"]
`;
    assert.deepEqual(run({ 'svc.yaml': SVC('helloworld'), 'vs.yaml': vs, 'gw.yaml': gw }), []);
  });

  it('checks MeshConfig, RemoteCluster and namespace-wide PeerAuthentication', () => {
    const mesh = (name: string) => `apiVersion: mesh.isle.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: ${name}}\nspec: {clusterName: cluster-1}\n`;
    const peer = (name: string) => `apiVersion: mesh.isle.dev/v1alpha1\nkind: RemoteCluster\nmetadata: {name: ${name}}\nspec: {address: "127.0.0.1:15012"}\n`;
    const pa = (name: string) => `apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: ${name}, namespace: hello}\nspec: {mtls: {mode: STRICT}}\n`;
    assert.deepEqual(run({ 'm1.yaml': mesh('one'), 'm2.yaml': mesh('two'), 'p1.yaml': peer('cluster-1'), 'p2.yaml': peer('cluster-2'), 'pa1.yaml': pa('default'), 'pa2.yaml': pa('strict') }), [
      'pa2.yaml:1 PeerAuthentication hello/strict: warning: namespace hello already has a namespace-wide PeerAuthentication (default at pa1.yaml:1); only one applies',
      'm2.yaml:1 MeshConfig two: only one MeshConfig is allowed (another is one at m1.yaml:1)',
      'p1.yaml:3 RemoteCluster cluster-1: metadata.name: cluster-1 is this cluster (MeshConfig clusterName); a cluster cannot be its own peer',
      'p2.yaml:4 RemoteCluster cluster-2: warning: spec.address: same address as RemoteCluster cluster-1 (p1.yaml:1)',
    ]);
  });

  it('does not change its input', () => {
    const r = parseConfigText('svc.yaml', SVC('a')).resources;
    const copy = structuredClone(r);
    analyze(r);
    assert.deepEqual(r, copy);
  });
});
