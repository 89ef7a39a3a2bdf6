// Config update → affected resources (issue 13, ADR 0120): a push regenerates per proxy only the
// types its changes can reach, and what it regenerates but did not change comes out as the very
// same objects (resource and TypeSnapshot), so nothing is re-encoded, re-diffed or resent.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { affectedTypes } from '../../src/generate/affected.js';
import { generateResources, generateTypeSnapshot } from '../../src/controlplane/snapshots.js';
import { decodeResource } from '../../src/xds/codec.js';
import { diffTypeSnapshots, layersOf } from '../../src/xds/cache.js';
import { CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SERVED_TYPES } from '../../src/mesh/typeurls.js';
import { CONNECT_REQUEST, PushRequest } from '../../src/model/pushrequest.js';
import type { PushContext } from '../../src/model/pushcontext.js';
import type { Proxy } from '../../src/model/proxy.js';
import type { Kind, Resource } from '../../src/config/types.js';
import type { DestinationRuleSpec, VirtualServiceSpec } from '../../src/config/kinds/networking.js';
import { helloworldDr, push, sidecar, sleepSidecar } from './fixtures.js';

const src = { file: 'affected.yaml', line: 1 };
const HW = 'helloworld.sample.svc.cluster.local';

function hwVs(timeout: string, exportTo?: string[]): Resource<VirtualServiceSpec> {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: 'helloworld', namespace: 'sample' },
    spec: { hosts: [HW], ...(exportTo ? { exportTo } : {}), http: [{ timeout, route: [{ destination: { host: HW } }] }] },
    source: src,
  } as Resource<VirtualServiceSpec>;
}

function hwDr(subsets: string[]): Resource<DestinationRuleSpec> {
  return { ...helloworldDr, spec: { host: 'helloworld', subsets: subsets.map((s) => ({ name: s, labels: { version: s } })) } };
}

const configPush = (...kinds: Kind[]) => new PushRequest({ full: true, reasons: ['config'], configKinds: kinds });

const reviewsSidecar = (p: PushContext): Proxy => sidecar(p, '127.120.0.30', 'reviews-v1', 'bookinfo', { LABELS: { app: 'reviews' } });
const captureSidecar = (p: PushContext): Proxy => sleepSidecar(p, { INTERCEPTION_MODE: 'REDIRECT' });

/** Every type the request does not name must come out of a fresh generation at the same version. */
function assertUnaffectedUnchanged(before: PushContext, after: PushContext, request: PushRequest, make: (p: PushContext) => Proxy): void {
  const affected = new Set(affectedTypes(request, make(after)));
  for (const t of SERVED_TYPES) {
    if (affected.has(t)) continue;
    const a = generateTypeSnapshot(before, make(before), t);
    const b = generateTypeSnapshot(after, make(after), t);
    assert.equal(b.version, a.version, `${t} changed although ${[...request.configKinds].join(',')} cannot affect it`);
  }
}

describe('affected types', () => {
  it('a VirtualService push regenerates RDS only (and LDS for capturing sidecars); a DestinationRule push CDS and EDS', () => {
    const p = push();
    assert.deepEqual(affectedTypes(configPush('VirtualService'), sleepSidecar(p)), [ROUTE_TYPE]);
    assert.deepEqual(affectedTypes(configPush('VirtualService'), captureSidecar(p)), [LISTENER_TYPE, ROUTE_TYPE].sort((a, b) => SERVED_TYPES.indexOf(a) - SERVED_TYPES.indexOf(b)));
    assert.deepEqual(new Set(affectedTypes(configPush('DestinationRule'), sleepSidecar(p))), new Set([CLUSTER_TYPE, ENDPOINT_TYPE]));
    assert.equal(affectedTypes(configPush('VirtualService', 'AuthorizationPolicy'), sleepSidecar(p)), SERVED_TYPES);
  });

  it('connects, unscoped config pushes and anything merged with them regenerate every type', () => {
    const p = push();
    assert.equal(affectedTypes(CONNECT_REQUEST, sleepSidecar(p)), SERVED_TYPES);
    const unscoped = new PushRequest({ full: true, reasons: ['config'] });
    assert.equal(unscoped.allTypes, true);
    assert.equal(affectedTypes(configPush('VirtualService').merge(unscoped), sleepSidecar(p)), SERVED_TYPES);
    assert.equal(affectedTypes(configPush('VirtualService').merge(new PushRequest({ full: true, reasons: ['services'] })), sleepSidecar(p)), SERVED_TYPES);
    const withEndpoints = configPush('VirtualService').merge(new PushRequest({ full: false, reasons: ['endpoints'], hosts: [HW] }));
    assert.equal(withEndpoints.allTypes, false);
    assert.deepEqual(new Set(affectedTypes(withEndpoints, sleepSidecar(p))), new Set([CLUSTER_TYPE, ENDPOINT_TYPE, ROUTE_TYPE]));
  });

  it('the table holds: a VirtualService change leaves every other type of every kind of sidecar unchanged', () => {
    const before = push({ virtualServices: [hwVs('5s')] });
    const after = push({ version: 'v2', virtualServices: [hwVs('7s')] });
    for (const make of [sleepSidecar, captureSidecar, reviewsSidecar]) assertUnaffectedUnchanged(before, after, configPush('VirtualService'), make);
  });

  it('the table holds: a DestinationRule change (a subset more) leaves RDS, LDS, SDS and NDS unchanged', () => {
    const before = push({ destinationRules: [hwDr(['v1'])] });
    const after = push({ version: 'v2', destinationRules: [hwDr(['v1', 'v2'])] });
    for (const make of [sleepSidecar, captureSidecar, reviewsSidecar]) assertUnaffectedUnchanged(before, after, configPush('DestinationRule'), make);
  });
});

describe('carrying unchanged resources over pushes', () => {
  it('a VirtualService change on one host: the namespace that sees it gets one new route config; everything else is the same object', () => {
    const before = push({ virtualServices: [hwVs('5s', ['.'])] });
    const after = push({ version: 'v2', virtualServices: [hwVs('7s', ['.'])] });
    const rdsBefore = generateTypeSnapshot(before, sleepSidecar(before), ROUTE_TYPE);
    const otherBefore = generateTypeSnapshot(before, reviewsSidecar(before), ROUTE_TYPE);
    const cdsBefore = generateTypeSnapshot(before, sleepSidecar(before), CLUSTER_TYPE);
    const rdsAfter = generateTypeSnapshot(after, sleepSidecar(after), ROUTE_TYPE);
    // bookinfo does not see the VirtualService (exportTo "."): its scope is the previous object.
    assert.equal(generateTypeSnapshot(after, reviewsSidecar(after), ROUTE_TYPE), otherBefore);
    // CDS regenerated anyway (e.g. by a proxy that connects now) is the same shared snapshot.
    assert.equal(layersOf(generateTypeSnapshot(after, sleepSidecar(after), CLUSTER_TYPE))!.base, layersOf(cdsBefore)!.base);
    // The changed route config is right: helloworld's route carries the new timeout.
    assert.notEqual(rdsAfter.version, rdsBefore.version);
    assert.deepEqual(diffTypeSnapshots(rdsBefore, rdsAfter), { changed: ['15001'], removed: [] });
    const rc = decodeResource(rdsAfter.resources.get('15001')!.any);
    const vhosts = rc['virtual_hosts'] as { name: string; routes: { route?: { timeout?: string } }[] }[];
    assert.equal(vhosts.find((v) => v.name === `${HW}:5000`)!.routes[0]!.route!.timeout, '7s');
    assert.equal(vhosts.find((v) => v.name === 'sleep.sample.svc.cluster.local:80')!.routes[0]!.route!.timeout, '0s');
  });

  it('a DestinationRule subset more: one new cluster (and its load assignment); every other resource the same object', () => {
    const before = push({ destinationRules: [hwDr(['v1'])] });
    const after = push({ version: 'v2', destinationRules: [hwDr(['v1', 'v2'])] });
    for (const t of [CLUSTER_TYPE, ENDPOINT_TYPE]) {
      const a = generateResources(before, sleepSidecar(before), t);
      const b = generateResources(after, sleepSidecar(after), t);
      const old = new Map(a.map((r) => [r.name, r]));
      const fresh = b.filter((r) => old.get(r.name) !== r).map((r) => r.name);
      assert.deepEqual(fresh, [`outbound|5000|v2|${HW}`, `outbound|9000|v2|${HW}`], t);
      const ta = generateTypeSnapshot(before, sleepSidecar(before), t);
      const tb = generateTypeSnapshot(after, sleepSidecar(after), t);
      assert.deepEqual([...diffTypeSnapshots(ta, tb).changed].sort(), fresh, t);
    }
    const rds = generateTypeSnapshot(before, sleepSidecar(before), ROUTE_TYPE);
    assert.equal(generateTypeSnapshot(after, sleepSidecar(after), ROUTE_TYPE), rds);
  });
});
