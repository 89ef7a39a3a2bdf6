/**
 * istio_tcp_* on a real inbound TCP chain over mTLS: a client with its workload certificate →
 * the sidecar's TCP proxy → an echo server. The source labels come from the verified certificate.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { test } from 'node:test';
import { InboundListener } from '../../../src/proxy/listeners/inbound.js';
import { ProxyStats } from '../../../src/proxy/stats.js';
import { UpstreamPools } from '../../../src/proxy/upstream/pool.js';
import { chain, cluster, emptyGraph, endpoint, endpoints, ISTIO_DOWNSTREAM_MTLS, listener, roundRobinPicker, secretsFor, testPki } from '../net/fixtures.js';

test('istio_tcp_*: opened/closed and bytes both ways, labelled with the verified source', async () => {
  const pki = await testPki();
  const [sleep, db] = await Promise.all([pki.workload('default', 'sleep'), pki.workload('data', 'db')]);
  const echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const graph = emptyGraph();
  graph.secrets = secretsFor(db);
  const cl = 'inbound|5432||';
  graph.clusters.set(cl, cluster(cl, { type: 'STATIC', service: 'db.data.svc.cluster.local' }));
  graph.endpoints.set(cl, endpoints(cl, [endpoint('127.0.0.1', (echo.address() as net.AddressInfo).port)]));
  const stats = new ProxyStats();
  const l = new InboundListener(
    listener('127.1.0.7_5432', '127.1.0.7', 0, [chain('mtls', { kind: 'tcp', tcpProxy: { statPrefix: cl, cluster: { kind: 'cluster', name: cl }, idleTimeoutMs: 0 } }, { tls: ISTIO_DOWNSTREAM_MTLS, transport: 'tls' })], {
      trafficDirection: 'INBOUND',
      tlsInspector: true,
    }),
    { config: () => graph, stats, pools: new UpstreamPools({ stats, secrets: () => graph.secrets }), pick: roundRobinPicker(), identity: { workload: 'db-v1', namespace: 'data', serviceAccount: 'db', cluster: 'cluster-2', labels: { app: 'db' } } },
  );
  const a = await l.listen();
  try {
    const s = tls.connect({ host: a.address, port: a.port, cert: sleep.certChainPem, key: sleep.keyPem, ca: sleep.rootPem, checkServerIdentity: () => undefined, ALPNProtocols: ['istio-peer-exchange', 'istio'] });
    await new Promise((r) => s.once('secureConnect', r));
    s.write('0123456789');
    const got = await new Promise<string>((r) => s.once('data', (d: Buffer) => r(d.toString())));
    assert.equal(got, '0123456789');
    await new Promise<void>((r) => {
      s.once('close', () => r());
      s.end();
    });
    // The sidecar sees the close asynchronously.
    for (let i = 0; i < 50 && !/istio_tcp_connections_closed_total\{[^}]*\} 1/.test(await stats.metrics()); i++) await new Promise((r) => setTimeout(r, 20));
    const m = await stats.metrics();
    const who = 'reporter="destination",source_workload="unknown",source_workload_namespace="default",source_principal="spiffe://cluster.local/ns/default/sa/sleep"';
    const where = 'destination_workload="db-v1",destination_workload_namespace="data",[^}]*destination_cluster="cluster-2",destination_service="db.data.svc.cluster.local",destination_service_name="db",destination_service_namespace="data",request_protocol="tcp",response_flags="-",connection_security_policy="mutual_tls"';
    assert.match(m, new RegExp(`istio_tcp_connections_opened_total\\{${who},[^}]*${where}\\} 1`));
    assert.match(m, new RegExp(`istio_tcp_connections_closed_total\\{${who},[^}]*${where}\\} 1`));
    assert.match(m, new RegExp(`istio_tcp_received_bytes_total\\{${who},[^}]*\\} 10`));
    assert.match(m, new RegExp(`istio_tcp_sent_bytes_total\\{${who},[^}]*\\} 10`));
  } finally {
    await l.drain({ timeoutMs: 100 });
    echo.close();
  }
});
