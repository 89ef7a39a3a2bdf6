import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigStore } from '../../src/config/store.js';
import { MemorySource } from '../../src/config/sources/memory.js';
import { parseConfigText } from '../../src/config/parse.js';
import { MeshSettingsResolver, pickMeshConfig, resolveMeshSettings, type MeshSettings } from '../../src/mesh/settings.js';
import { meshDefaultsFrom } from '../../src/registry/shard.js';
import { proxyDefaultsFrom } from '../../src/model/proxy.js';
import { meshInfoFrom } from '../../src/model/pushcontext.js';

function mesh(name: string, extra = ''): string {
  return `apiVersion: mesh.isle.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: ${name}}\nspec:\n  clusterName: cluster-1\n${extra}`;
}

const parse = (text: string) => {
  const r = parseConfigText('mesh.yaml', text);
  assert.deepEqual(r.errors, []);
  return r.resources;
};

const settle = () => new Promise((res) => setTimeout(res, 20));

describe('mesh settings resolver', () => {
  it('defaults when there is no MeshConfig: one flat network, 100ms/10s debounce, 10s grace', () => {
    const s = resolveMeshSettings(undefined, { clusterName: 'cluster-1', trustDomain: 'cluster.local' });
    assert.deepEqual(s, { clusterName: 'cluster-1', trustDomain: 'cluster.local', network: '', rootNamespace: 'istio-system', debounce: { quietMs: 100, maxMs: 10_000 }, registrationGraceMs: 10_000, remoteClustersSeeCentral: false, tracing: { providers: {}, enabled: true, samplingPercent: 1 }, outboundTrafficPolicy: 'ALLOW_ANY' });
  });

  it('outboundTrafficPolicy: REGISTRY_ONLY reaches the push context; an unknown mode is refused', () => {
    const s = resolveMeshSettings(pickMeshConfig(parse(mesh('m', '  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n'))), { clusterName: 'cluster-1', trustDomain: 'cluster.local' });
    assert.equal(s.outboundTrafficPolicy, 'REGISTRY_ONLY');
    assert.equal(meshInfoFrom(s).outboundTrafficPolicy, 'REGISTRY_ONLY');
    const bad = parseConfigText('mesh.yaml', mesh('m', '  outboundTrafficPolicy: {mode: DENY}\n'));
    assert.match(JSON.stringify(bad.errors), /outboundTrafficPolicy.*mode.*must be ALLOW_ANY or REGISTRY_ONLY, got \\"DENY\\"/);
  });

  it('the first MeshConfig by name wins; --network overrides its network', () => {
    const all = [...parse(mesh('zeta', '  network: nz\n')), ...parse(mesh('alpha', '  network: na\n  registrationGracePeriod: 3s\n'))];
    assert.equal(pickMeshConfig(all)!.metadata.name, 'alpha');
    const s = resolveMeshSettings(pickMeshConfig(all), { clusterName: 'cluster-1', trustDomain: 'cluster.local' });
    assert.equal(s.network, 'na');
    assert.equal(s.registrationGraceMs, 3000);
    assert.match(s.source!, /^alpha \(mesh.yaml:1\)$/);
    assert.equal(resolveMeshSettings(pickMeshConfig(all), { clusterName: 'cluster-1', trustDomain: 'cluster.local', network: 'flag' }).network, 'flag');
  });

  it('registry, pusher and auth read the same network and locality from one settings value', () => {
    const s: MeshSettings = resolveMeshSettings(pickMeshConfig(parse(mesh('m', '  network: n1\n  defaultLocality: r1/z1\n'))), { clusterName: 'cluster-1', trustDomain: 'cluster.local' });
    assert.equal(meshDefaultsFrom(s).network, 'n1');
    assert.equal(proxyDefaultsFrom(s).network, 'n1');
    assert.equal(meshInfoFrom(s).network, 'n1');
    assert.deepEqual(meshDefaultsFrom(s).locality, proxyDefaultsFrom(s).locality);
  });

  it('follows MeshConfig live and notifies only on an effective change', async () => {
    const src = new MemorySource('mem');
    const store = new ConfigStore();
    store.addSource(src);
    src.replaceAll(mesh('m', '  network: n1\n'), 'mesh.yaml');
    await store.start();
    const r = new MeshSettingsResolver(store, { clusterName: 'cluster-1', trustDomain: 'cluster.local' });
    const seen: string[] = [];
    r.subscribe((next, prev) => seen.push(`${prev.network}->${next.network}:${next.debounce.quietMs}`));
    src.replaceAll(mesh('m', '  network: n2\n  debounce: {quiet: 20ms, max: 1s}\n'), 'mesh.yaml');
    await settle();
    assert.equal(r.current().network, 'n2');
    assert.deepEqual(r.current().debounce, { quietMs: 20, maxMs: 1000 });
    // Same settings under a new line number: no notification.
    src.replaceAll(`# moved\n${mesh('m', '  network: n2\n  debounce: {quiet: 20ms, max: 1s}\n')}`, 'mesh.yaml');
    await settle();
    src.replaceAll('', 'mesh.yaml');
    await settle();
    assert.deepEqual(seen, ['n1->n2:20', 'n2->:100']);
    r.stop();
    await store.stop();
  });
});
