import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fieldLine, parseConfigText } from '../../src/config/parse.js';
import { formatConfigError, resourceKey, type Resource } from '../../src/config/types.js';
import type { MeshConfigSpec, RemoteClusterSpec, VirtualServiceSpec } from '../../src/config/index.js';
import { DESCRIPTORS, exportedKinds } from '../../src/config/descriptors.js';

const MULTI = `# two services and a rule
apiVersion: v1
kind: Service
metadata:
  name: a
  namespace: hello
spec:
  ports: [{port: 80, name: http}]
---
apiVersion: v1
kind: Service
metadata:
  name: b
spec:
  ports: [{port: 80, name: http}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: b
spec:
  hosts:
  - b
  http:
  - route:
    - destination:
        host: b
`;

describe('parseConfigText', () => {
  it('reads several documents with their first lines and default namespace', () => {
    const r = parseConfigText('m.yaml', MULTI);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(
      r.resources.map((x) => `${resourceKey(x)}@${x.source.file}:${x.source.line}`),
      ['Service/hello/a@m.yaml:2', 'Service/default/b@m.yaml:10', 'VirtualService/default/b@m.yaml:17'],
    );
  });

  it('maps field paths to their lines, also in later documents', () => {
    const vs = parseConfigText('m.yaml', MULTI).resources[2]!;
    assert.equal(fieldLine(vs, ['spec', 'hosts', 0]), 23);
    assert.equal(fieldLine(vs, ['spec', 'http', 0, 'route', 0, 'destination', 'host']), 27);
    assert.equal(fieldLine(vs, ['spec', 'nothing', 'here']), 21);
    // A copy has no positions: it falls back to the resource's first line.
    assert.equal(fieldLine({ ...vs }, ['spec', 'hosts']), 17);
  });

  it('keeps the typed spec as written', () => {
    const vs = parseConfigText('m.yaml', MULTI).resources[2] as Resource<VirtualServiceSpec>;
    assert.equal(vs.spec.http?.[0]?.route?.[0]?.destination.host, 'b');
  });

  it('reports errors in every document, not only the first', () => {
    const text = MULTI.replace('port: 80, name: http', 'port: 0, name: http').replace('host: b\n', 'host: B_\n');
    assert.deepEqual(parseConfigText('m.yaml', text).errors.map(formatConfigError), [
      'm.yaml:8 Service hello/a: spec.ports[0].port: must be between 1 and 65535 (got 0)',
      'm.yaml:27 VirtualService default/b: spec.http[0].route[0].destination.host: invalid host "B_"',
    ]);
    assert.equal(parseConfigText('m.yaml', text).resources.length, 1);
  });

  it('skips unknown kinds with a warning, and other APIs\' kinds of the same name', () => {
    const r = parseConfigText('k8s.yaml', `apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w}
`);
    assert.deepEqual(r.resources, []);
    assert.deepEqual(r.errors.map(formatConfigError), [
      'k8s.yaml:1: warning: kind Deployment (apps/v1) is not used by Isle; ignored',
      'k8s.yaml:5: warning: kind Gateway (gateway.networking.k8s.io/v1) is not used by Isle; ignored',
      'k8s.yaml:9: warning: kind Widget (example.com/v1) is not used by Isle; ignored',
    ]);
  });

  it('accepts every listed apiVersion of a kind', () => {
    for (const v of ['v1alpha3', 'v1beta1', 'v1']) {
      const r = parseConfigText('d.yaml', `apiVersion: networking.istio.io/${v}\nkind: DestinationRule\nmetadata: {name: d}\nspec: {host: d}\n`);
      assert.deepEqual(r.errors, [], v);
      assert.equal(r.resources[0]!.apiVersion, `networking.istio.io/${v}`);
    }
  });

  it('expands kind: List and JSON arrays', () => {
    const list = parseConfigText('l.yaml', `apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Namespace, metadata: {name: hello}}
- {apiVersion: v1, kind: ServiceAccount, metadata: {name: sleep, namespace: hello}}
`);
    assert.deepEqual(list.errors, []);
    assert.deepEqual(list.resources.map((x) => `${resourceKey(x)}:${x.source.line}`), ['Namespace//hello:4', 'ServiceAccount/hello/sleep:5']);
    const arr = parseConfigText('a.json', '[\n{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}},\n{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "y"}}\n]');
    assert.deepEqual(arr.resources.map((x) => `${x.metadata.name}:${x.source.line}`), ['x:2', 'y:3']);
  });

  it('reads tab-indented JSON', () => {
    const r = parseConfigText('t.json', '{\n\t"apiVersion": "v1",\n\t"kind": "Service",\n\t"metadata": {\n\t\t"name": "x"\n\t},\n\t"spec": {"ports": [{"port": "80"}]}\n}');
    assert.deepEqual(r.errors.map(formatConfigError), ['t.json:7 Service default/x: spec.ports[0].port: expected an integer (got "80")']);
  });

  it('never throws on junk', () => {
    for (const junk of ['', '---\n---\n', '\u0000\u0001', ':::', '[', '{"a":', 'null', '42', '"str"', '*alias', '\t\tx: 1', 'a: &x [*x]', '%YAML 9.9\n---\n']) {
      assert.doesNotThrow(() => parseConfigText('j.yaml', junk), JSON.stringify(junk));
    }
    assert.deepEqual(parseConfigText('e.yaml', '# only a comment\n').errors, []);
  });

  it('fills MeshConfig defaults and normalizes the locality', () => {
    const r = parseConfigText('mesh.yaml', `apiVersion: mesh.isle.dev/v1alpha1
kind: MeshConfig
metadata: {name: cluster-1}
spec:
  clusterName: cluster-1
  network: network1
  defaultLocality: us-east-1/us-east-1a
`);
    assert.deepEqual(r.errors, []);
    const m = r.resources[0] as Resource<MeshConfigSpec>;
    assert.equal(m.metadata.namespace, undefined);
    assert.deepEqual(m.spec, {
      clusterName: 'cluster-1',
      network: 'network1',
      defaultLocality: { region: 'us-east-1', zone: 'us-east-1a' },
      trustDomain: 'cluster.local',
      rootNamespace: 'istio-system',
      debounce: { quiet: '100ms', max: '10s' },
      registrationGracePeriod: '10s',
    });
    const obj = parseConfigText('mesh.yaml', `apiVersion: mesh.isle.dev/v1alpha1
kind: MeshConfig
metadata: {name: c}
spec:
  defaultLocality: {region: eu, zone: eu-1, subZone: rack1}
  debounce: {quiet: 50ms}
`).resources[0] as Resource<MeshConfigSpec>;
    assert.deepEqual(obj.spec.defaultLocality, { region: 'eu', zone: 'eu-1', subZone: 'rack1' });
    assert.deepEqual(obj.spec.debounce, { quiet: '50ms', max: '10s' });
  });

  it('MeshConfig remoteClustersSeeCentralNamespaces: namespace names, only with remoteClustersSeeCentral: true', () => {
    const mesh = (extra: string) => parseConfigText('mesh.yaml', `apiVersion: mesh.isle.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: c}\nspec:\n${extra}`);
    const ok = mesh('  remoteClustersSeeCentral: true\n  remoteClustersSeeCentralNamespaces: [ops, shop]\n');
    assert.deepEqual(ok.errors, []);
    assert.deepEqual((ok.resources[0] as Resource<MeshConfigSpec>).spec.remoteClustersSeeCentralNamespaces, ['ops', 'shop']);
    const alone = mesh('  remoteClustersSeeCentralNamespaces: [ops]\n').errors.map(formatConfigError);
    assert.match(alone.join('\n'), /mesh\.yaml:\d+ MeshConfig c: spec\.remoteClustersSeeCentralNamespaces: only applies with remoteClustersSeeCentral: true/);
    const bad = mesh('  remoteClustersSeeCentral: true\n  remoteClustersSeeCentralNamespaces: [Not_A_Label]\n').errors.map(formatConfigError);
    assert.match(bad.join('\n'), /spec\.remoteClustersSeeCentralNamespaces\[0\]/);
  });

  it('reads a RemoteCluster (discovery only by default)', () => {
    const r = parseConfigText('peer.yaml', `apiVersion: mesh.isle.dev/v1alpha1
kind: RemoteCluster
metadata: {name: cluster-2}
spec: {address: "127.2.0.1:15012", network: network2}
`);
    assert.deepEqual(r.errors, []);
    assert.deepEqual((r.resources[0] as Resource<RemoteClusterSpec>).spec, { address: '127.2.0.1:15012', network: 'network2', discoveryOnly: true });
  });

  it('RemoteCluster address: one host:port or the peer replicas as host:port,host:port of one IP family', () => {
    const rc = (address: string) => parseConfigText('peer.yaml', `apiVersion: mesh.isle.dev/v1alpha1\nkind: RemoteCluster\nmetadata: {name: cluster-2}\nspec: {address: "${address}"}\n`).errors.map(formatConfigError).join('\n');
    assert.equal(rc('127.2.0.1:15012,127.2.0.2:15012'), '');
    assert.match(rc('127.2.0.1:15012,[::1]:15012'), /spec\.address: several addresses must all be IPv4 or all IPv6/);
    assert.match(rc('127.2.0.1:15012,nope'), /spec\.address: invalid address "nope"/);
  });

  it('warns about unknown top-level and metadata fields but keeps the resource', () => {
    const r = parseConfigText('w.yaml', `apiVersion: v1
kind: ServiceAccount
metadata:
  name: sleep
  uid: 1234
  lables: {a: b}
secrets: []
sepc: {}
`);
    assert.equal(r.resources.length, 1);
    assert.deepEqual(r.errors.map(formatConfigError), [
      'w.yaml:6 ServiceAccount default/sleep: warning: metadata.lables: unknown field (did you mean "labels"?)',
      'w.yaml:8 ServiceAccount default/sleep: warning: sepc: unknown field',
    ]);
  });
});

describe('descriptors', () => {
  it('one per kind, with groups and versions', () => {
    assert.equal(new Set(DESCRIPTORS.map((d) => d.kind)).size, DESCRIPTORS.length);
    assert.equal(DESCRIPTORS.length, 15);
    const mesh = DESCRIPTORS.filter((d) => d.group === 'mesh.isle.dev');
    assert.deepEqual(mesh.map((d) => [d.kind, d.namespaced]), [['MeshConfig', false], ['RemoteCluster', false]]);
  });

  it('a discovery-only peer receives services and workloads, not routing policy', () => {
    assert.deepEqual(exportedKinds(), ['Service', 'WorkloadEntry']);
  });
});
