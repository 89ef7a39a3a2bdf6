import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { analyze, ANALYZERS } from '../../src/config/analyze.js';
import { parseConfigText } from '../../src/config/parse.js';
import { formatConfigError, type ObjectRef, type Resource } from '../../src/config/types.js';

/**
 * istioctl analyze's checks, each with the example configuration of its page in Istio's reference
 * (istio.io/latest/docs/reference/config/analysis/istNNNN/), plus the case that must stay quiet.
 */
function run(files: Record<string, string>, code?: string): string[] {
  const resources: Resource[] = [];
  const others: ObjectRef[] = [];
  for (const [f, text] of Object.entries(files)) {
    const r = parseConfigText(f, text);
    assert.deepEqual(r.errors.filter((e) => e.severity === 'error').map(formatConfigError), [], f);
    resources.push(...r.resources);
    others.push(...(r.others ?? []));
  }
  const lines = analyze(resources, { others }).map(formatConfigError);
  return code ? lines.filter((l) => l.endsWith(`[${code}]`)) : lines;
}

const svc = (name: string, ns = 'default', ports = '  - {name: http, port: 80}') => `apiVersion: v1
kind: Service
metadata: {name: ${name}, namespace: ${ns}}
spec:
  ports:
${ports}
`;

/** The Gateway of Istio's IST0138 and IST0145 examples: one server on the ingress gateway workload. */
const ingressGateway = (name: string, port: number, protocol: string, host: string, tls = '') => `apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: ${name}
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: ${port}
      name: ${protocol}
      protocol: ${protocol.toUpperCase()}
    hosts:
    - ${host}
${tls}`;

describe('istioctl analyze checks (with Istio\'s documented examples)', () => {
  it('IST0101: a VirtualService names a Gateway that does not exist', () => {
    const gw = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: httpbin-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http2
      protocol: HTTP2
    hosts:
    - "*"
`;
    const vs = (gateway: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: httpbin
spec:
  hosts:
  - "*"
  gateways:
  - ${gateway}
  http:
  - route:
    - destination:
        host: httpbin
`;
    assert.deepEqual(run({ 'svc.yaml': svc('httpbin'), 'gw.yaml': gw, 'vs.yaml': vs('httpbin-gateway-bogus') }), [
      'vs.yaml:9 VirtualService default/httpbin: spec.gateways[0]: referenced gateway not found: "httpbin-gateway-bogus" (no Gateway default/httpbin-gateway-bogus) [IST0101]',
    ]);
    assert.deepEqual(run({ 'svc.yaml': svc('httpbin'), 'gw.yaml': gw, 'vs.yaml': vs('httpbin-gateway') }), []);
    assert.deepEqual(run({ 'svc.yaml': svc('httpbin'), 'gw.yaml': gw, 'vs.yaml': vs('default/httpbin-gateway') }), []);
  });

  it('IST0101: a Gateway server\'s credentialName names no Secret (a warning: Isle reads no Secrets)', () => {
    const gw = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*.example.com"]
    tls: {mode: SIMPLE, credentialName: example-cert}
`;
    const secret = (ns: string) => `apiVersion: v1\nkind: Secret\nmetadata: {name: example-cert, namespace: ${ns}}\ntype: kubernetes.io/tls\n`;
    assert.deepEqual(run({ 'gw.yaml': gw }), [
      'gw.yaml:9 Gateway istio-system/gw: warning: spec.servers[0].tls.credentialName: referenced secret not found: "example-cert" (no Secret istio-system/example-cert among the files analyzed; the control plane reads credentials/istio-system/example-cert/tls.crt and tls.key in its config directory) [IST0101]',
    ]);
    assert.equal(run({ 'gw.yaml': gw, 'secret.yaml': secret('default') }).length, 1, 'a Secret in another namespace does not count');
    assert.deepEqual(run({ 'gw.yaml': gw, 'secret.yaml': secret('istio-system') }), []);
  });

  it('IST0101: AuthorizationPolicy sources naming unknown namespaces (warnings)', () => {
    const ap = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: shop}
spec:
  rules:
  - from:
    - source:
        namespaces: [shop, shpo, "prod-*"]
        principals: [cluster.local/ns/billing/sa/api, cluster.local/ns/shop/sa/web, "*"]
`;
    assert.deepEqual(run({ 'ap.yaml': ap }), [
      'ap.yaml:8 AuthorizationPolicy shop/allow: warning: spec.rules[0].from[0].source.namespaces[1]: namespace not found: "shpo" [IST0101]',
      'ap.yaml:9 AuthorizationPolicy shop/allow: warning: spec.rules[0].from[0].source.principals[0]: namespace "billing" of principal "cluster.local/ns/billing/sa/api" not found [IST0101]',
    ]);
    const ns = 'apiVersion: v1\nkind: Namespace\nmetadata: {name: shpo}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: billing}\n';
    assert.deepEqual(run({ 'ap.yaml': ap, 'ns.yaml': ns }), []);
  });

  it('IST0109: two mesh VirtualServices for one host, unless exportTo keeps them apart', () => {
    const vs = (name: string, ns: string, dest: string, exportTo = '') => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ${name}
  namespace: ${ns}
spec:
${exportTo}  hosts:
  - productpage.default.svc.cluster.local
  http:
  - route:
    - destination:
        host: ${dest}
`;
    const services = { 's1.yaml': svc('productpage'), 's2.yaml': svc('productpage', 'team-1'), 's3.yaml': svc('productpage', 'team-2') };
    const found = run({ ...services, 'a.yaml': vs('productpage', 'team-1', 'productpage'), 'b.yaml': vs('custom', 'team-2', 'productpage.team-2.svc.cluster.local') }, 'IST0109');
    assert.equal(found.length, 1, found.join('\n'));
    assert.match(found[0]!, /^b\.yaml:10 VirtualService team-2\/custom: warning: spec\.http\[0\]: host productpage\.default\.svc\.cluster\.local: VirtualService team-1\/productpage .* also has a catch-all route/);
    const only = '  exportTo:\n  - "."\n';
    assert.deepEqual(run({ ...services, 'a.yaml': vs('productpage', 'team-1', 'productpage', only), 'b.yaml': vs('custom', 'team-2', 'productpage.team-2.svc.cluster.local', only) }, 'IST0109'), []);
  });

  it('IST0128 / IST0129: TLS to the server without caCertificates', () => {
    const dr = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: db-tls
spec:
  host: mydbserver.prod.svc.cluster.local
  trafficPolicy:
    tls:
      mode: SIMPLE
      clientCertificate: /etc/certs/myclientcert.pem
      privateKey: /etc/certs/client_private_key.pem
    portLevelSettings:
    - port:
        number: 443
      tls:
        mode: SIMPLE
        sni: my-nginx.mesh-external.svc.cluster.local
`;
    assert.deepEqual(run({ 'svc.yaml': svc('mydbserver', 'prod'), 'dr.yaml': dr }), [
      'dr.yaml:9 DestinationRule default/db-tls: spec.trafficPolicy.tls.mode: DestinationRule default/db-tls has TLS mode set to SIMPLE but no caCertificates are set to validate server identity for host: mydbserver.prod.svc.cluster.local [IST0128]',
      'dr.yaml:16 DestinationRule default/db-tls: spec.trafficPolicy.portLevelSettings[0].tls.mode: DestinationRule default/db-tls has TLS mode set to SIMPLE but no caCertificates are set to validate server identity for host: mydbserver.prod.svc.cluster.local at port number:443 [IST0129]',
    ]);
    const fixed = dr.replace('      privateKey: /etc/certs/client_private_key.pem\n', '      privateKey: /etc/certs/client_private_key.pem\n      caCertificates: /etc/certs/ca.pem\n').replace('        sni:', '        insecureSkipVerify: true\n        sni:');
    assert.deepEqual(run({ 'svc.yaml': svc('mydbserver', 'prod'), 'dr.yaml': fixed }), []);
  });

  it('IST0130: a rule after one without matches is never used', () => {
    const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: sample-foo-cluster01
  namespace: foo
spec:
  hosts:
  - sample.foo.svc.cluster.local
  http:
  - fault:
      delay:
        fixedDelay: 5s
        percentage:
          value: 100
    route:
    - destination:
        host: sample.foo.svc.cluster.local
  - mirror:
      host: sample.bar.svc.cluster.local
    route:
    - destination:
        host: sample.bar.svc.cluster.local
        subset: v1
`;
    const dr = 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: bar, namespace: bar}\nspec:\n  host: sample\n  subsets: [{name: v1, labels: {version: v1}}]\n';
    assert.deepEqual(run({ 'foo.yaml': svc('sample', 'foo'), 'bar.yaml': svc('sample', 'bar'), 'dr.yaml': dr, 'vs.yaml': vs }), [
      'vs.yaml:18 VirtualService foo/sample-foo-cluster01: warning: spec.http[1]: http rule #1 is never used (only the last rule can have no matches) [IST0130]',
    ]);
    // The same match twice makes the second rule dead, too.
    const twice = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: twice, namespace: foo}
spec:
  hosts: [sample]
  http:
  - match: [{uri: {prefix: /a}}]
    route: [{destination: {host: sample}}]
  - match: [{uri: {prefix: /a}, name: again}]
    route: [{destination: {host: sample, port: {number: 80}}}]
  - route: [{destination: {host: sample}}]
`;
    assert.deepEqual(run({ 'foo.yaml': svc('sample', 'foo'), 'vs.yaml': twice }), [
      'vs.yaml:9 VirtualService foo/twice: warning: spec.http[1].match: http rule #1 is never used (its matches duplicate rule #0) [IST0130]',
    ]);
  });

  it('IST0131: one match entry duplicates an earlier rule\'s', () => {
    const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: tls-routing
spec:
  hosts:
  - www1.googleapis.com
  - api1.facebook.com
  tls:
  - match:
    - port: 2443
      sniHosts:
      - www1.googleapis.com
    route:
    - destination:
        host: www1.googleapis.com
  - match:
    - port: 2443
      sniHosts:
      - www1.googleapis.com
    - port: 2443
      sniHosts:
      - api1.facebook.com
    route:
    - destination:
        host: api1.facebook.com
`;
    const se = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec:
  hosts: [www1.googleapis.com, api1.facebook.com]
  addresses: [240.0.0.1]
  ports: [{number: 2443, name: tls, protocol: TLS}]
  resolution: DNS
`;
    assert.deepEqual(run({ 'se.yaml': se, 'vs.yaml': vs }), [
      'vs.yaml:18 VirtualService default/tls-routing: warning: spec.tls[1].match[0]: tls rule #1 match #0 is never used (duplicates a match in rule #0) [IST0131]',
    ]);
  });

  it('IST0132: a VirtualService host its Gateway does not serve', () => {
    const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: testing-service
  namespace: default
spec:
  gateways:
  - istio-system/testing-gateway
  hosts:
  - wrong.com
  http:
  - match:
    - uri:
        prefix: /
    route:
    - destination:
        host: ratings
`;
    const gw = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: testing-gateway
  namespace: istio-system
spec:
  selector:
    istio: ingressgateway
  servers:
  - hosts:
    - testing.com
    port:
      name: http
      number: 80
      protocol: HTTP
`;
    assert.deepEqual(run({ 'svc.yaml': svc('ratings'), 'vs.yaml': vs, 'gw.yaml': gw }), [
      'vs.yaml:8 VirtualService default/testing-service: warning: spec.gateways[0]: one or more host [wrong.com] defined in VirtualService default/testing-service not found in Gateway istio-system/testing-gateway [IST0132]',
    ]);
    assert.deepEqual(run({ 'svc.yaml': svc('ratings'), 'vs.yaml': vs.replace('wrong.com', 'testing.com'), 'gw.yaml': gw }), []);
    // `ns/host` on the server limits which namespaces' VirtualServices it serves.
    assert.equal(run({ 'svc.yaml': svc('ratings'), 'vs.yaml': vs.replace('wrong.com', 'testing.com'), 'gw.yaml': gw.replace('- testing.com', '- prod/testing.com') }, 'IST0132').length, 1);
  });

  it('IST0134: a TCP (or protocol-less) ServiceEntry port without addresses', () => {
    const se = (protocol: string) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: service-entry
  namespace: default
spec:
  hosts:
    - 'istio.io'
  exportTo:
    - "."
  ports:
    - number: 443
      name: https
${protocol}  location: MESH_EXTERNAL
  resolution: DNS
`;
    assert.deepEqual(run({ 'se.yaml': se('') }), [
      'se.yaml:12 ServiceEntry default/service-entry: warning: spec.ports[0]: ServiceEntry addresses are required for this protocol (unset): without them every connection to port 443 matches, whatever its host [IST0134]',
    ]);
    assert.equal(run({ 'se.yaml': se('      protocol: TCP\n') }, 'IST0134').length, 1);
    assert.deepEqual(run({ 'se.yaml': se('      protocol: TLS\n') }), []);
  });

  it('IST0138: one certificate in two Gateways of one workload', () => {
    const tls = '    tls:\n      mode: SIMPLE\n      credentialName: example-com-cert\n';
    const gw = (name: string, host: string) => ingressGateway(name, 443, 'https', host, tls);
    const secret = 'apiVersion: v1\nkind: Secret\nmetadata: {name: example-com-cert}\n';
    assert.deepEqual(run({ 'a.yaml': gw('gateway-a', 'a.example.com'), 'b.yaml': gw('gateway-b', 'b.example.com'), 's.yaml': secret }), [
      'a.yaml:17 Gateway default/gateway-a: warning: spec.servers[0].tls.credentialName: duplicate certificate in multiple gateways [default/gateway-a default/gateway-b] may cause 404s if clients re-use HTTP/2 connections [IST0138]',
      'b.yaml:17 Gateway default/gateway-b: warning: spec.servers[0].tls.credentialName: duplicate certificate in multiple gateways [default/gateway-a default/gateway-b] may cause 404s if clients re-use HTTP/2 connections [IST0138]',
    ]);
    assert.deepEqual(run({ 'a.yaml': gw('gateway-a', 'a.example.com'), 'b.yaml': gw('gateway-b', 'b.example.com').replace('istio: ingressgateway', 'istio: other'), 's.yaml': secret }), []);
  });

  it('IST0140: another VirtualService\'s subsets do not apply to gateway traffic', () => {
    const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
        subset: v1
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-ingress
spec:
  hosts:
  - "reviews.example.com"
  gateways:
  - reviews-gateway
  http:
  - route:
    - destination:
        host: reviews
`;
    const rest = {
      'svc.yaml': svc('reviews'),
      'dr.yaml': 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec:\n  host: reviews\n  subsets: [{name: v1, labels: {version: v1}}]\n',
      'gw.yaml': 'apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: reviews-gateway}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [reviews.example.com]\n',
    };
    assert.deepEqual(run({ ...rest, 'vs.yaml': vs }), [
      'vs.yaml:26 VirtualService default/reviews-ingress: warning: spec.http[0].route[0].destination.host: subset in VirtualService default/reviews has no effect on requests through the gateways of VirtualService default/reviews-ingress (they reach every version of reviews.default.svc.cluster.local) [IST0140]',
    ]);
    assert.deepEqual(run({ ...rest, 'vs.yaml': vs.replace(/host: reviews\n$/, 'host: reviews\n        subset: v1\n') }), []);
  });

  it('IST0145: Gateways of one workload with the same port and overlapping hosts', () => {
    const gw = (name: string, host: string) => ingressGateway(name, 80, 'http', `"${host}"`);
    assert.deepEqual(run({ 'a.yaml': gw('alpha', 'foo.example.com'), 'b.yaml': gw('beta', '*.example.com') }), [
      'a.yaml:9 Gateway default/alpha: spec.servers[0]: conflict with gateways default/beta (workload selector istio=ingressgateway, port 80, hosts foo.example.com) [IST0145]',
      'b.yaml:9 Gateway default/beta: spec.servers[0]: conflict with gateways default/alpha (workload selector istio=ingressgateway, port 80, hosts *.example.com) [IST0145]',
    ]);
    assert.deepEqual(run({ 'a.yaml': gw('alpha', 'foo.example.com'), 'b.yaml': gw('beta', 'bar.example.com') }), []);
  });

  it('IST0174: a DestinationRule for a host no service has (an error in Isle, as every unknown host)', () => {
    const dr = 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: reviews\nspec:\n  host: reveiws\n';
    assert.deepEqual(run({ 'svc.yaml': svc('reviews'), 'dr.yaml': dr }), [
      'dr.yaml:6 DestinationRule default/reviews: spec.host: no Service or ServiceEntry defines host reveiws.default.svc.cluster.local [IST0174]',
    ]);
  });

  it('IST0177: one host and port with two protocols (ServiceEntries, or a ServiceEntry and a Service)', () => {
    const se = (name: string, port: string, protocol: string) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: ${name}
spec:
  hosts:
  - api.example.com
  addresses: [240.0.0.9]
  ports:
  - number: 443
    name: ${port}
    protocol: ${protocol}
  resolution: DNS
`;
    const msg = 'multiple ServiceEntries (default/api-http, default/api-tls) define the same host "api.example.com" and port 443 with conflicting protocols (HTTP, TLS) [IST0177]';
    assert.deepEqual(run({ 'a.yaml': se('api-http', 'http', 'HTTP'), 'b.yaml': se('api-tls', 'tls', 'TLS') }), [
      `a.yaml:12 ServiceEntry default/api-http: warning: spec.ports[0].protocol: ${msg}`,
      `b.yaml:12 ServiceEntry default/api-tls: warning: spec.ports[0].protocol: ${msg}`,
    ]);
    assert.deepEqual(run({ 'a.yaml': se('api-http', 'http', 'HTTP'), 'b.yaml': se('api-tls', 'http-2', 'http') }), []);
    const kube = se('reviews', 'http', 'TCP').replace('api.example.com', 'reviews.default.svc.cluster.local').replace('443', '9080');
    assert.deepEqual(run({ 'svc.yaml': svc('reviews', 'default', '  - {name: http, port: 9080}'), 'se.yaml': kube }), [
      'se.yaml:12 ServiceEntry default/reviews: warning: spec.ports[0].protocol: host "reviews.default.svc.cluster.local" port 9080 is HTTP in Service default/reviews, but TCP here [IST0177]',
    ]);
  });

  it('counts its analyzers (the issue 17 note: 9 before)', () => {
    // 22 after issue 17, plus the unenforced-security-fields analyzer of issue 11 and the
    // tracing-providers one of issue 15.
    assert.equal(ANALYZERS.length, 24);
    assert.equal(new Set(ANALYZERS.map((a) => a.name)).size, ANALYZERS.length);
  });
});
