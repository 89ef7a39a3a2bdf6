/**
 * Ingress gateway generation (generate/ingress.ts): listeners per Gateway port with a chain per
 * server, RDS named as Istio names it, credentials by SDS only from the gateway's namespace, and
 * the whole result accepted by Isle's own proxy decoder (a graph the proxy would apply).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { GatewaySpec, VirtualServiceSpec } from '../../src/config/kinds/networking.js';
import type { Resource } from '../../src/config/types.js';
import { formatProxyId, proxyFromNode, withInbound, type Proxy } from '../../src/model/proxy.js';
import type { GatewayCredential, PushContext } from '../../src/model/pushcontext.js';
import { generateClusters, generateEndpoints, generateListeners, generateRoutes, generateSecrets } from '../../src/generate/index.js';
import { gatewayProblems, ingressProblems, isEastWest, isIngress } from '../../src/generate/ingress.js';
import { decodeAndResolve, decodeListener } from '../../src/proxy/decode/index.js';
import { selectFilterChain } from '../../src/proxy/listeners/chains.js';
import type { ListenerModel } from '../../src/proxy/model.js';
import { eastWestGateway, push } from './fixtures.js';

const src = { file: 'test.yaml', line: 1 };
type R = Record<string, unknown>;

const gw = (name: string, namespace: string, spec: GatewaySpec): Resource<GatewaySpec> => ({ apiVersion: 'networking.istio.io/v1', kind: 'Gateway', metadata: { name, namespace }, spec, source: src });
const vs = (name: string, namespace: string, spec: VirtualServiceSpec): Resource<VirtualServiceSpec> => ({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name, namespace }, spec, source: src });

const CERT = '-----BEGIN CERTIFICATE-----\nTUlJQnRlc3Q=\n-----END CERTIFICATE-----\n';
const KEY = '-----BEGIN PRIVATE KEY-----\nTUlJQnRlc3Q=\n-----END PRIVATE KEY-----\n';
const cred: GatewayCredential = { certChainPem: CERT, keyPem: KEY, caPem: CERT };

const GATEWAY = gw('web', 'istio-system', {
  selector: { istio: 'ingressgateway' },
  servers: [
    { port: { number: 8080, name: 'http', protocol: 'HTTP' }, hosts: ['*.example.com'], tls: { httpsRedirect: true } },
    { port: { number: 8443, name: 'https', protocol: 'HTTPS' }, hosts: ['hello.example.com'], tls: { mode: 'SIMPLE', credentialName: 'hello' } },
    { port: { number: 8443, name: 'https-mtls', protocol: 'HTTPS' }, hosts: ['secure.example.com'], tls: { mode: 'MUTUAL', credentialName: 'hello' } },
    { port: { number: 9443, name: 'tls', protocol: 'TLS' }, hosts: ['*.pass.example.com'], tls: { mode: 'PASSTHROUGH' } },
    { port: { number: 8444, name: 'https-missing', protocol: 'HTTPS' }, hosts: ['x.example.com'], tls: { mode: 'SIMPLE', credentialName: 'absent' } },
  ],
});

const ROUTES = vs('hello', 'sample', {
  hosts: ['hello.example.com', 'secure.example.com'],
  gateways: ['istio-system/web', 'mesh'],
  http: [
    { match: [{ uri: { prefix: '/only-mesh' }, gateways: ['mesh'] }], route: [{ destination: { host: 'reviews.bookinfo.svc.cluster.local' } }] },
    { route: [{ destination: { host: 'helloworld', subset: 'v1', port: { number: 5000 } }, weight: 50 }, { destination: { host: 'helloworld', subset: 'v2', port: { number: 5000 } }, weight: 50 }] },
  ],
  tls: [{ match: [{ sniHosts: ['db.pass.example.com'] }], route: [{ destination: { host: 'helloworld', port: { number: 5000 } } }] }],
});

function ingress(p: PushContext, namespace = 'istio-system'): Proxy {
  return withInbound(
    proxyFromNode(
      { id: formatProxyId('gateway', '127.1.0.40', 'istio-ingressgateway', namespace), metadata: { NAMESPACE: namespace, NETWORK: 'network1', CLUSTER_ID: 'cluster-1', LABELS: { istio: 'ingressgateway' } } },
      { cluster: 'cluster-1' },
    ),
    p,
  );
}

const setup = (over: { gateways?: Resource<GatewaySpec>[]; credentials?: Map<string, GatewayCredential> } = {}): PushContext =>
  push({ gateways: over.gateways ?? [GATEWAY], virtualServices: [ROUTES], credentials: over.credentials ?? new Map([['istio-system/hello', cred]]) });

describe('ingress gateway generation', () => {
  it('one listener per port: redirect on 8080, an SNI chain per HTTPS server, passthrough by SNI', () => {
    const p = setup();
    const proxy = ingress(p);
    assert.ok(isIngress(p, proxy));
    assert.ok(!isEastWest(p, proxy), 'selected by a Gateway without AUTO_PASSTHROUGH: no east-west listener');
    const ls = generateListeners(p, proxy);
    assert.deepEqual(ls.map((l) => l['name']), ['127.1.0.40_8080', '127.1.0.40_8443', '127.1.0.40_9443'], 'no listener for the server whose credential is missing');
    const https = ls[1]!;
    const chains = https['filter_chains'] as R[];
    assert.deepEqual(chains.map((c) => (c['filter_chain_match'] as R)['server_names']), [['hello.example.com'], ['secure.example.com']]);
    assert.deepEqual(chains.map((c) => c['name']), ['https.8443.https.web.istio-system', 'https.8443.https-mtls.web.istio-system']);
    const mtls = (chains[1]!['transport_socket'] as R)['typed_config'] as R;
    assert.equal(mtls['require_client_certificate'], true);
    assert.deepEqual((mtls['common_tls_context'] as R)['validation_context_sds_secret_config'], { name: 'kubernetes://hello-cacert', sds_config: { ads: {}, resource_api_version: 'V3' } });
    const pass = (ls[2]!['filter_chains'] as R[])[0]!;
    assert.deepEqual((pass['filter_chain_match'] as R)['server_names'], ['db.pass.example.com']);
    assert.equal(((pass['filters'] as R[])[0]!['typed_config'] as R)['cluster'], 'outbound|5000||helloworld.sample.svc.cluster.local');
  });

  it('passthrough tls matches: sourceLabels/sourceNamespace are the gateway\'s own; destinationSubnets become prefix_ranges the proxy matches', () => {
    const routes = vs('pass', 'sample', {
      hosts: ['a.pass.example.com', 'b.pass.example.com', 'c.pass.example.com'],
      gateways: ['istio-system/web'],
      tls: [
        { match: [{ sniHosts: ['a.pass.example.com'], destinationSubnets: ['127.1.0.0/24'] }], route: [{ destination: { host: 'helloworld', port: { number: 5000 } } }] },
        { match: [{ sniHosts: ['a.pass.example.com'] }], route: [{ destination: { host: 'helloworld', subset: 'v2', port: { number: 5000 } } }] },
        { match: [{ sniHosts: ['b.pass.example.com'], sourceLabels: { istio: 'other' } }], route: [{ destination: { host: 'helloworld', port: { number: 5000 } } }] },
        { match: [{ sniHosts: ['c.pass.example.com'], sourceNamespace: 'elsewhere' }], route: [{ destination: { host: 'helloworld', port: { number: 5000 } } }] },
      ],
    });
    const p = push({ gateways: [GATEWAY], virtualServices: [routes], credentials: new Map([['istio-system/hello', cred]]) });
    const l = generateListeners(p, ingress(p)).find((x) => x['name'] === '127.1.0.40_9443')!;
    const chains = (l['filter_chains'] as R[]).map((c) => [(c['filter_chain_match'] as R)['server_names'], (c['filter_chain_match'] as R)['prefix_ranges']]);
    assert.deepEqual(chains, [
      [['a.pass.example.com'], [{ address_prefix: '127.1.0.0', prefix_len: 24 }]],
      [['a.pass.example.com'], undefined],
    ]);
    // As the proxy decodes and selects them: the gateway's own address is in 127.1.0.0/24.
    const d = decodeListener(l);
    if ('errors' in d) assert.fail(d.errors.join('; '));
    const model: ListenerModel = d.ok;
    const pick = (ip: string) => {
      const c = selectFilterChain(model, { destinationPort: 9443, destinationIp: ip, transportProtocol: 'tls', serverName: 'a.pass.example.com', alpn: [] });
      return c?.filter.kind === 'tcp' && c.filter.tcpProxy.cluster.kind === 'cluster' ? c.filter.tcpProxy.cluster.name : undefined;
    };
    assert.equal(pick('127.1.0.40'), 'outbound|5000||helloworld.sample.svc.cluster.local');
    assert.equal(pick('127.9.0.40'), 'outbound|5000|v2|helloworld.sample.svc.cluster.local');
    assert.equal(model.sniClusters.get('a.pass.example.com'), 'outbound|5000|v2|helloworld.sample.svc.cluster.local', 'the SNI shortcut only from chains without addresses');
  });

  it('RDS: http.<port> redirects, https.<port>.<name>.<gateway>.<ns> routes by the bound VirtualService (gateway matches only)', () => {
    const p = setup();
    const routes = generateRoutes(p, ingress(p));
    assert.deepEqual(routes.map((r) => r['name']), ['http.8080', 'https.8443.https.web.istio-system', 'https.8443.https-mtls.web.istio-system']);
    const http = (routes[0]!['virtual_hosts'] as R[])[0]!;
    // The VirtualService's exact host is narrower than the server's wildcard: it is the domain.
    assert.deepEqual(http['domains'], ['hello.example.com', 'hello.example.com:8080']);
    assert.deepEqual((http['routes'] as R[])[0]!['redirect'], { https_redirect: true });
    const vh = (routes[1]!['virtual_hosts'] as R[])[0]!;
    const rs = vh['routes'] as R[];
    assert.equal(rs.length, 1, 'the mesh-only match is not on the gateway');
    const wc = ((rs[0]!['route'] as R)['weighted_clusters'] as R)['clusters'] as R[];
    assert.deepEqual(wc.map((c) => c['name']), ['outbound|5000|v1|helloworld.sample.svc.cluster.local', 'outbound|5000|v2|helloworld.sample.svc.cluster.local']);
  });

  it('the sidecars keep the mesh rules; a gateway-only VirtualService does not program them', () => {
    const p = push({ virtualServices: [vs('gw-only', 'sample', { hosts: ['helloworld'], gateways: ['istio-system/web'], http: [{ route: [{ destination: { host: 'reviews.bookinfo.svc.cluster.local' } }] }] })], gateways: [GATEWAY] });
    const sc = generateRoutes(p, withInbound(proxyFromNode({ id: formatProxyId('sidecar', '127.1.0.20', 'sleep', 'sample'), metadata: { NAMESPACE: 'sample' } }, { cluster: 'cluster-1' }), p));
    const hw = ((sc[0]!['virtual_hosts'] as R[]).find((v) => String(v['name']).startsWith('helloworld.')))!;
    assert.match(JSON.stringify(hw['routes']), /outbound\|5000\|\|helloworld/);
  });

  it('SDS: the credential (key included) and its CA go to gateways of its namespace only; ROOTCA for upstream mTLS', () => {
    const p = setup();
    assert.deepEqual(generateSecrets(p, ingress(p)).map((s) => s['name']), ['ROOTCA', 'kubernetes://hello', 'kubernetes://hello-cacert']);
    const elsewhere = ingress(p, 'other');
    assert.deepEqual(generateSecrets(p, elsewhere).map((s) => s['name']), ['ROOTCA']);
    assert.ok(generateListeners(p, elsewhere).every((l) => !JSON.stringify(l).includes('kubernetes://')), 'no chain without the credential');
  });

  it('a missing credential and an unserved mode are listed as problems', () => {
    const p = setup({ gateways: [gw('web', 'istio-system', { ...GATEWAY.spec, servers: [...GATEWAY.spec.servers, { port: { number: 15443, name: 'im', protocol: 'HTTPS' }, hosts: ['*'], tls: { mode: 'ISTIO_MUTUAL' } }] })] });
    const probs = ingressProblems(p, ingress(p));
    assert.equal(probs.length, 2, probs.join('\n'));
    assert.match(probs[0]!, /credential istio-system\/absent not found/);
    assert.match(probs[1]!, /ISTIO_MUTUAL is not served/);
    // The control plane's list (/debug/configz, isle status): per Gateway, with its file.
    const listed = gatewayProblems(p);
    assert.deepEqual(listed.map((x) => x.resource), ['Gateway istio-system/web', 'Gateway istio-system/web']);
    assert.match(listed[0]!.message, /server port 8444 \(https-missing\): credential istio-system\/absent not found/);
  });

  it('the east-west gateway is unchanged unless a Gateway selects it; AUTO_PASSTHROUGH keeps its listener', () => {
    const p = setup();
    const ew = eastWestGateway(p);
    assert.ok(isEastWest(p, ew) && !isIngress(p, ew));
    const p2 = setup({ gateways: [gw('cross', 'istio-system', { selector: { istio: 'eastwestgateway' }, servers: [{ port: { number: 15443, name: 'tls', protocol: 'TLS' }, hosts: ['*.local'], tls: { mode: 'AUTO_PASSTHROUGH' } }] })] });
    const ew2 = eastWestGateway(p2);
    assert.ok(isEastWest(p2, ew2) && !isIngress(p2, ew2));
    assert.deepEqual(generateListeners(p2, ew2).map((l) => l['name']), generateListeners(p, ew).map((l) => l['name']));
  });

  it("Isle's proxy accepts the whole ingress config as one graph", () => {
    const p = setup();
    const proxy = ingress(p);
    const secrets = [...generateSecrets(p, proxy), { name: 'default', tls_certificate: { certificate_chain: { inline_string: CERT }, private_key: { inline_string: KEY } } }];
    const r = decodeAndResolve({ listeners: generateListeners(p, proxy), routes: generateRoutes(p, proxy), clusters: generateClusters(p, proxy), endpoints: generateEndpoints(p, proxy), secrets });
    assert.ok('ok' in r, 'errors' in r ? r.errors.join('\n') : '');
  });
});
