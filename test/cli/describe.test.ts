// `isle describe` against a real control plane (its /debug/registryz) and a real config directory.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runIsle } from '../helpers/cli.js';
import { configDir, startPlane, waitUntil } from '../controlplane/helpers.js';

const DR = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: helloworld, namespace: default}
spec:
  host: helloworld
  subsets:
  - {name: v1, labels: {version: v1}}
`;
const PA = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
`;
const AP = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-ns, namespace: other}
spec: {}
`;

describe('isle describe', () => {
  it('service: the config that applies and the endpoints the control plane sees', async () => {
    const dir = configDir({ 'dr.yaml': DR, 'pa.yaml': PA, 'ap.yaml': AP });
    const plane = await startPlane({ configDir: dir });
    await waitUntil(() => plane.cp.registry.allEndpoints('helloworld.default.svc.cluster.local').length === 1, 'helloworld-v1 is in the registry');
    const r = await runIsle(['describe', 'service', 'helloworld', '--config', dir, '--control-plane', plane.debugUrl]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^Service: helloworld\.default\.svc\.cluster\.local\n/);
    assert.match(r.stdout, /DestinationRules:\n {2}default\/helloworld \(.*dr\.yaml:1\): host helloworld; subsets v1 \{"version":"v1"\}/);
    assert.match(r.stdout, /PeerAuthentication:\n {2}mesh: istio-system\/default .*: mtls STRICT/);
    assert.match(r.stdout, /AuthorizationPolicies: none/, 'a policy of another namespace does not apply');
    assert.match(r.stdout, /VirtualServices: none/);
    assert.match(r.stdout, /127\.1\.0\.10:5000 +cluster cluster-1, network network1, .*HEALTHY, helloworld-v1/);

    const pod = await runIsle(['describe', 'pod', 'helloworld-v1', '--config', dir, '--control-plane', plane.debugUrl]);
    assert.equal(pod.code, 0, pod.stdout + pod.stderr);
    assert.match(pod.stdout, /Workload: default\/helloworld-v1 \(WorkloadEntry/);
    assert.match(pod.stdout, /Services: helloworld\.default\.svc\.cluster\.local/);
    assert.match(pod.stdout, /endpoint of helloworld\.default\.svc\.cluster\.local:5000 in cluster cluster-1/);
  });

  it('an unknown service exits 1; no inputs is a usage error naming the flags', async () => {
    const dir = configDir();
    const r = await runIsle(['describe', 'service', 'nope', '--config', dir, '--control-plane', 'http://127.0.0.1:1']);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /no Service or ServiceEntry defines nope\.default\.svc\.cluster\.local/);
    const none = await runIsle(['describe', 'service', 'x'], { cwd: dir });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /--config DIR .* --control-plane/);
  });
});
