/**
 * Network RBAC (AuthorizationPolicy on a TCP port) in the inbound listener, over real sockets:
 * a connection the policy does not allow is closed before anything is proxied and counted; an
 * allowed one reaches the app.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import { InboundListener } from '../../../src/proxy/listeners/inbound.js';
import type { RbacFilterModel } from '../../../src/proxy/model.js';
import { ProxyStats } from '../../../src/proxy/stats.js';
import { UpstreamPools } from '../../../src/proxy/upstream/pool.js';
import { chain, cluster, emptyGraph, endpoint, endpoints, listener, roundRobinPicker, startApp } from '../net/fixtures.js';

const listeners: InboundListener[] = [];
const apps: { close(): Promise<void> }[] = [];
const pools: UpstreamPools[] = [];
after(async () => {
  for (const l of listeners) await l.drain({ timeoutMs: 100 });
  for (const p of pools) p.close();
  for (const a of apps) await a.close();
});

function allowFrom(cidr: string, len: number): RbacFilterModel[] {
  return [{ action: 'ALLOW', policies: [{ name: 'ns[default]-policy[tcp]-rule[0]', permissions: [{ kind: 'any' }], principals: [{ kind: 'ip', cidr: { address: cidr, prefixLen: len, family: 'ipv4' } }] }] }];
}

async function start(rbac: RbacFilterModel[], stats: ProxyStats): Promise<net.AddressInfo> {
  const app = await startApp('tcp-app');
  apps.push(app);
  const g = emptyGraph();
  g.clusters.set('inbound|7000||', cluster('inbound|7000||'));
  g.endpoints.set('inbound|7000||', endpoints('inbound|7000||', [endpoint('127.0.0.1', app.port)]));
  const c = { ...chain('plaintext', { kind: 'tcp', tcpProxy: { statPrefix: 'tcp', cluster: { kind: 'cluster', name: 'inbound|7000||' }, idleTimeoutMs: 0 } }), rbac };
  const p = new UpstreamPools({ stats, secrets: () => g.secrets });
  pools.push(p);
  const l = new InboundListener(listener('tcp_7000', '127.0.0.1', 0, [c], { kind: 'mixed', trafficDirection: 'INBOUND' }), { config: () => g, stats, pools: p, pick: roundRobinPicker() });
  listeners.push(l);
  return l.listen();
}

/** Sends a raw HTTP request over TCP; resolves with what came back before the connection closed. */
function exchange(addr: net.AddressInfo): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const s = net.connect(addr.port, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'));
    s.setEncoding('utf8').on('data', (d: string) => (got += d));
    s.on('error', () => {});
    s.on('close', () => resolve(got));
  });
}

test('network RBAC: a denied TCP connection is closed and counted, an allowed one is proxied', async () => {
  const denyStats = new ProxyStats();
  const denied = await start(allowFrom('10.0.0.0', 8), denyStats);
  assert.equal(await exchange(denied), '', 'nothing proxied');
  assert.match(await denyStats.metrics(), /isle_rbac_denied_total\{listener="tcp_7000",policy="\(no ALLOW matched\)",protocol="tcp"\} 1/);

  const allowed = await start(allowFrom('127.0.0.0', 8), new ProxyStats());
  assert.match(await exchange(allowed), /^HTTP\/1\.1 200/);
});
