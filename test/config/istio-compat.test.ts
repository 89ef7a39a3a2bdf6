import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../src/config/parse.js';
import { analyze } from '../../src/config/analyze.js';
import { formatConfigError } from '../../src/config/types.js';
import { buildShard } from '../../src/registry/shard.js';

function problems(text: string, file = 'c.yaml'): string[] {
  return parseConfigText(file, text).errors.map(formatConfigError);
}

function analyzed(text: string, file = 'c.yaml'): string[] {
  const r = parseConfigText(file, text);
  return [...r.errors, ...analyze(r.resources)].map(formatConfigError);
}

/** Valid Istio config that Isle used to refuse (issue 17), and the number ranges Istio enforces. */
describe('valid Istio config Isle accepts', () => {
  it('a ServiceEntry port with protocol "" (detect the protocol), as in Istio\'s pilot benchmarks', () => {
    const se = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: sniffed}
spec:
  hosts: [sniffed.example.com]
  addresses: [240.0.0.3]
  ports:
  - number: 8080
    name: auto
    protocol: ""
  resolution: DNS
`;
    assert.deepEqual(problems(se), []);
    assert.deepEqual(problems(se.replace('protocol: ""', 'protocol: SNIFF')), ['c.yaml:10 ServiceEntry default/sniffed: spec.ports[0].protocol: must be one of HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, MONGO, REDIS, MYSQL, TCP, TLS, UDP (got "SNIFF")']);
  });

  it('a Service with 443/TCP and 443/UDP (QUIC); the same number twice on one protocol is still an error', () => {
    const svc = (second: string) => `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports:
  - {name: https, port: 443}
  - {name: quic, port: 443, ${second}}
`;
    assert.deepEqual(problems(svc('protocol: UDP')), []);
    assert.deepEqual(problems(svc('protocol: TCP')), ['c.yaml:7 Service default/web: spec.ports[1].port: duplicate port 443']);
  });

  it('a header match on @request.auth.claims.<name> says what is missing (RequestAuthentication), not "invalid header name"', () => {
    const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: claims}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers:
        "@request.auth.claims.groups":
          exact: admin
    route: [{destination: {host: reviews}}]
`;
    assert.deepEqual(problems(vs), [
      'c.yaml:9 VirtualService default/claims: spec.http[0].match[0].headers["@request.auth.claims.groups"]: "@request.auth.claims.groups": routing on JWT claims requires RequestAuthentication, which Isle does not support yet',
    ]);
  });

  it('a delegate VirtualService without hosts, when another one delegates to it; without that it is an error', () => {
    const root = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: root}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /api}}]
    delegate: {name: api, namespace: team}
  - route: [{destination: {host: reviews}}]
`;
    const delegate = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api, namespace: team}
spec:
  http:
  - route: [{destination: {host: reviews.default.svc.cluster.local}}]
`;
    const svc = 'apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec:\n  ports: [{name: http, port: 80}]\n';
    assert.deepEqual(analyzed(`${svc}---\n${root}---\n${delegate}`), []);
    assert.deepEqual(analyzed(`${svc}---\n${delegate}`), [
      'c.yaml:10 VirtualService team/api: spec.hosts: missing required field (only a delegate VirtualService may leave hosts out, and no VirtualService delegates to team/api)',
    ]);
  });

  it('AuthorizationPolicy source trustDomains and notTrustDomains', () => {
    const ap = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: td}
spec:
  rules:
  - from:
    - source:
        trustDomains: [cluster.local]
        notTrustDomains: [evil.example]
`;
    assert.deepEqual(problems(ap), []);
  });
});

describe('numbers in Istio\'s ranges', () => {
  const vs = (retries: string, weight = 100) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: n}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews}, weight: ${weight}}]
    ${retries}
`;

  it('a duration beyond google.protobuf.Duration is an error with the range', () => {
    assert.deepEqual(problems(vs('timeout: 99999999999999999999999s')), [
      'c.yaml:8 VirtualService default/n: spec.http[0].timeout: duration out of range: must be between 1ms and 315576000000s (got "99999999999999999999999s")',
    ]);
    assert.deepEqual(problems(vs('timeout: 315576000000s')), []);
  });

  it('attempts: 1e308 (and any integer beyond int32) is an error with the range', () => {
    assert.deepEqual(problems(vs('retries: {attempts: 1e308}')), [
      'c.yaml:8 VirtualService default/n: spec.http[0].retries.attempts: must be at most 2147483647 (got 1e+308)',
    ]);
    assert.deepEqual(problems(vs('retries: {attempts: 2147483647}')), []);
  });

  it('a route weight is a percentage', () => {
    assert.deepEqual(problems(vs('timeout: 1s', 101)), ['c.yaml:7 VirtualService default/n: spec.http[0].route[0].weight: must be between 0 and 100 (got 101)']);
  });

  it('a Gateway server port needs a name', () => {
    const gw = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  servers:
  - port: {number: 80, protocol: HTTP}
    hosts: ["*"]
`;
    assert.deepEqual(problems(gw), ['c.yaml:6 Gateway default/gw: spec.servers[0].port.name: missing required field']);
  });
});

describe('accepted config the registry can serve', () => {
  it('443/TCP + 443/UDP: the service keeps one port 443, the TCP one', () => {
    const r = parseConfigText('s.yaml', 'apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports:\n  - {name: https, port: 443}\n  - {name: quic, port: 443, protocol: UDP}\n  - {name: dns, port: 53, protocol: UDP}\n');
    assert.deepEqual(r.errors, []);
    const shard = buildShard('cluster-1', { network: 'n1', locality: { region: '', zone: '', subzone: '' } }, { resources: r.resources });
    const svc = shard.services.get('web.default.svc.cluster.local')!;
    assert.deepEqual(svc.ports.map((p) => `${p.name} ${p.port} ${p.protocol}`), ['dns 53 UDP', 'https 443 HTTPS']);
  });
});
