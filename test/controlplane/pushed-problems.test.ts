/**
 * Issue 16 part 4.4: a VirtualService routing to a subset no DestinationRule defines is pushed
 * (Istio's behaviour: the route names a cluster that does not exist, 503 NR), and the control
 * plane lists it on /debug/configz and in `isle status`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeResource, ROUTE_TYPE } from '../../src/xds/index.js';
import { fetchPlane, formatStatus } from '../../src/controlplane/status.js';
import { channel, configDir, getJson, sidecarNode, SimProxy, startPlane, waitUntil } from './helpers.js';

const DR = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: helloworld, namespace: default}
spec:
  host: helloworld
  subsets: [{name: v1, labels: {version: v1}}]
`;
const VS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: helloworld, namespace: default}
spec:
  hosts: [helloworld]
  http:
  - route:
    - destination: {host: helloworld, subset: v1}
      weight: 50
    - destination: {host: helloworld, subset: v3}
      weight: 50
`;

test('undefined subset: pushed, listed by /debug/configz and isle status; gone when the subset is defined', async (t) => {
  const dir = configDir({ 'dr.yaml': DR, 'vs.yaml': VS });
  const plane = await startPlane({ configDir: dir, plaintextListen: '127.0.0.1:0' });
  const sleep = new SimProxy('delta', channel(plane.cp.addresses.plaintext!), sidecarNode(1));
  t.after(() => sleep.close());

  const routeText = () => {
    const res = plane.cp.cache.get(sleep.id, ROUTE_TYPE)?.resources.get('15001');
    return res ? JSON.stringify(decodeResource(res.any)) : '';
  };
  await waitUntil(() => routeText().includes('outbound|5000|v3|helloworld.default.svc.cluster.local'), 'the route to the undefined subset is pushed');

  const cz = await getJson<{ pushed: { resource: string; file: string; line: number; text: string }[] }>(`${plane.debugUrl}/debug/configz`);
  assert.equal(cz.body.pushed.length, 1, JSON.stringify(cz.body.pushed));
  assert.equal(cz.body.pushed[0]!.resource, 'VirtualService default/helloworld');
  assert.match(cz.body.pushed[0]!.text, /vs\.yaml:1 VirtualService default\/helloworld: http\[0\]\.route\[1\]: subset "v3" of helloworld\.default\.svc\.cluster\.local is not defined by any DestinationRule; pushed anyway, requests get 503 \(NR\)/);

  const status = formatStatus([await fetchPlane(plane.debugUrl)]);
  assert.match(status, /pushed with problems \(requests on these routes fail\):\n {2}\S+: .*vs\.yaml:1 VirtualService default\/helloworld: http\[0\]\.route\[1\]: subset "v3"/);

  writeFileSync(join(dir, 'dr.yaml'), DR.replace('subsets: [{name: v1, labels: {version: v1}}]', 'subsets: [{name: v1, labels: {version: v1}}, {name: v3, labels: {version: v3}}]'));
  await waitUntil(() => plane.cp.pusher.pushContext.subsetsByHost.get('helloworld.default.svc.cluster.local')?.length === 2, 'v3 defined');
  assert.equal((await getJson<{ pushed: unknown[] }>(`${plane.debugUrl}/debug/configz`)).body.pushed.length, 0, 'listed no more once v3 is defined');
});
