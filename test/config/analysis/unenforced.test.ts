import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { analyze } from '../../../src/config/analyze.js';
import { parseConfigText } from '../../../src/config/parse.js';
import { formatConfigError, type Resource } from '../../../src/config/types.js';

function run(text: string): string[] {
  const r = parseConfigText('authz.yaml', text);
  assert.deepEqual(r.errors.filter((e) => e.severity === 'error'), [], 'valid config');
  return analyze(r.resources as Resource[]).map(formatConfigError);
}

const TCP_SVC = `apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: default
spec:
  selector: {app: db}
  ports:
  - port: 5432
    name: tcp-postgres
---
`;

describe('analyze: security fields Isle does not enforce', () => {
  it('CUSTOM, targetRef, requestPrincipals, remoteIpBlocks, serviceAccounts and unsupported when keys are errors naming the field', () => {
    const out = run(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: default}
spec:
  action: CUSTOM
  provider: {name: opa}
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: gw, namespace: default}
spec:
  targetRefs: [{kind: Gateway, group: gateway.networking.k8s.io, name: g}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: jwt, namespace: default}
spec:
  rules:
  - from:
    - source:
        requestPrincipals: ["issuer/subject"]
        remoteIpBlocks: ["1.2.3.4"]
        serviceAccounts: ["default/sleep"]
    when:
    - key: request.auth.claims[groups]
      values: ["admins"]
    - key: destination.port
      values: ["8080"]
`);
    const text = out.join('\n');
    assert.match(text, /AuthorizationPolicy default\/ext: spec\.action: CUSTOM \(external authorization\) is not supported by Isle: this policy is not pushed/);
    assert.match(text, /default\/gw: spec\.targetRefs: not supported by Isle \(use selector\): this policy is not pushed/);
    assert.match(text, /default\/jwt: spec\.rules\[0\]\.from\[0\]\.source\.requestPrincipals: not supported yet .*: the rule is ignored/);
    assert.match(text, /default\/jwt.*source\.remoteIpBlocks: not supported \(Isle trusts no X-Forwarded-For\)/);
    assert.match(text, /default\/jwt.*source\.serviceAccounts: not supported yet/);
    assert.match(text, /default\/jwt: spec\.rules\[0\]\.when\[0\]\.key: "request\.auth\.claims\[groups\]" is not supported by Isle/);
    assert.doesNotMatch(text, /when\[1\]/, 'destination.port is enforced');
    for (const line of out) assert.doesNotMatch(line, /: warning: /, `an error, not a warning: ${line}`);
  });

  it('HTTP-only fields on a TCP port: a warning saying what happens (ALLOW: rule ignored; DENY: conditions ignored)', () => {
    const out = run(`${TCP_SVC}apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db-allow, namespace: default}
spec:
  selector: {matchLabels: {app: db}}
  rules:
  - to: [{operation: {methods: ["GET"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: db-deny, namespace: default}
spec:
  selector: {matchLabels: {app: db}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/admin"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: other-app, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  rules:
  - to: [{operation: {methods: ["GET"]}}]
`);
    const text = out.join('\n');
    assert.match(text, /AuthorizationPolicy default\/db-allow: warning: spec\.rules\[0\]: uses HTTP-only fields \(to\.operation\.methods\) and may apply to TCP port\(s\) default\/db:5432: there the rule is ignored, as in Istio/);
    assert.match(text, /default\/db-deny: warning: spec\.rules\[0\]: .*there those conditions are ignored \(the DENY rule matches more\)/);
    assert.doesNotMatch(text, /other-app/, 'selects no pod of the TCP service');
  });

  it('a policy using only enforced fields is clean; bad CIDRs and WorkloadGroup addresses are errors', () => {
    assert.deepEqual(
      run(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ok, namespace: default}
spec:
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/sleep"], namespaces: ["default"], ipBlocks: ["10.0.0.0/8"]}}]
    to: [{operation: {methods: ["GET"], paths: ["/api/*"], ports: ["8080"], hosts: ["*.example.com"]}}]
    when: [{key: "request.headers[x-user]", values: ["a"]}, {key: connection.sni, values: ["x"]}]
`),
      [],
    );
    const bad = run(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: cidr, namespace: default}
spec:
  rules: [{from: [{source: {ipBlocks: ["10.0.0.0/99"]}}]}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata:
  name: g
  namespace: default
  annotations: {isle.dev/workload-addresses: "127.0.0.1, nope"}
spec:
  template: {serviceAccount: sleep}
`).join('\n');
    assert.match(bad, /default\/cidr: spec\.rules\[0\]: from\.source\.ipBlocks: invalid IP or CIDR "10\.0\.0\.0\/99"/);
    assert.match(bad, /WorkloadGroup default\/g: .*invalid IP or CIDR "nope": it allows no address/);
  });
});
