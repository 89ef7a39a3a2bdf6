/**
 * The sidecar's rate limit client over mutual TLS: the service serves a mesh workload certificate
 * and requires a client certificate (what `isle ratelimit --tls-*` configures); the proxy's client
 * dials with its cluster's UpstreamTlsContext (client certificate, mesh root, expected SPIFFE id)
 * and refuses a service whose identity is not the expected one.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { loadRateLimitConfig } from '../../src/ratelimit/config.js';
import { RateLimitService } from '../../src/ratelimit/service.js';
import { MemoryCounterStore } from '../../src/ratelimit/store.js';
import { RateLimitClients } from '../../src/proxy/ratelimit/client.js';
import type { ConfigGraph, GlobalRateLimitModel, UpstreamTlsModel } from '../../src/proxy/model.js';
import { cluster, emptyGraph, endpoint, endpoints, roundRobinPicker } from '../proxy/net/fixtures.js';
import { makeMesh } from '../proxy/helpers.js';

const cfg = loadRateLimitConfig(['rl.yaml'], () => 'domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: minute, requests_per_unit: 1}\n');
const HOST = '127.90.4.1';

describe('rate limit service over mutual TLS', () => {
  let server: grpc.Server;
  let port: number;
  let tlsFor: (expectedSpiffe: string) => UpstreamTlsModel;
  let serviceId: string;

  before(async () => {
    const mesh = await makeMesh();
    const svc = await mesh.workload('default', 'ratelimit');
    const client = await mesh.workload('default', 'sleep');
    serviceId = svc.spiffeId;
    const root = mesh.ca.rootBundlePem;
    server = new grpc.Server();
    new RateLimitService({ config: () => cfg, store: new MemoryCounterStore() }).addToServer(server);
    const creds = grpc.ServerCredentials.createSsl(Buffer.from(root), [{ cert_chain: Buffer.from(svc.chainPem), private_key: Buffer.from(svc.keyPem) }], true);
    port = await new Promise<number>((res, rej) => server.bindAsync(`${HOST}:0`, creds, (e, p) => (e ? rej(e) : res(p))));
    tlsFor = (expected) => ({
      sni: undefined,
      certificates: [{ kind: 'inline', certificate: { certificateChain: { kind: 'inline', data: client.chainPem }, privateKey: { kind: 'inline', data: client.keyPem } } }],
      validation: { kind: 'inline', validation: { trustedCa: { kind: 'inline', data: root }, matchSans: [] } },
      expectedSans: [{ sanType: 'URI', matcher: { kind: 'exact', value: expected, ignoreCase: false } }],
      alpnProtocols: [],
    });
  });
  after(() => server?.forceShutdown());

  function graphWith(tls: UpstreamTlsModel): ConfigGraph {
    const g = emptyGraph();
    g.clusters.set('rls', cluster('rls', { tls }));
    g.endpoints.set('rls', endpoints('rls', [endpoint(HOST, port)]));
    return g as ConfigGraph;
  }

  const filter: GlobalRateLimitModel = {
    domain: 'd', stage: 0, failureModeDeny: false, timeoutMs: 5000, cluster: 'rls', authority: undefined, xRateLimitHeaders: true,
    rateLimitedStatus: 429, xEnvoyRateLimitedHeader: true, statusOnError: 500, requestType: 'both',
  };

  test('the expected service identity: counted, the second call is over the limit', async () => {
    const clients = new RateLimitClients(roundRobinPicker());
    try {
      const g = graphWith(tlsFor(serviceId));
      const d = [{ entries: [{ key: 'k', value: 'v' }] }];
      assert.equal((await clients.shouldRateLimit(g, filter, d)).overall_code, 'OK');
      assert.equal((await clients.shouldRateLimit(g, filter, d)).overall_code, 'OVER_LIMIT');
    } finally {
      clients.close();
    }
  });

  test('another identity than the cluster expects: the call fails (the filter then applies failure_mode_deny)', async () => {
    const clients = new RateLimitClients(roundRobinPicker());
    try {
      await assert.rejects(clients.shouldRateLimit(graphWith(tlsFor('spiffe://cluster.local/ns/default/sa/someone-else')), filter, [{ entries: [{ key: 'k', value: 'w' }] }]), /UNAVAILABLE/);
    } finally {
      clients.close();
    }
  });
});
