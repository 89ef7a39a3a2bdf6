/**
 * The mTLS port's limits with real idle sockets against a real control plane: a TCP connection
 * that never starts TLS, and a TLS connection without a client certificate that never asks for
 * one, are both closed; over the cap of unauthenticated connections a new one is closed at once
 * and logged; an authenticated proxy's stream outlives the deadlines.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { channel, inSync, meshPki, sidecarNode, SimProxy, startPlane, waitUntil, workloadCert, type Plane } from './helpers.js';

const sockets: net.Socket[] = [];
after(() => {
  for (const s of sockets) s.destroy();
});

function closed(s: net.Socket): Promise<void> {
  return new Promise((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));
}

function rawIdle(address: string): Promise<net.Socket> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const s = net.connect(port, host, () => resolve(s));
    // Flowing, so the server's close is seen (a paused socket never reads the FIN).
    s.resume();
    s.on('error', () => {});
    s.once('error', reject);
    sockets.push(s);
  });
}

function tlsIdle(address: string): Promise<tls.TLSSocket> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host, port, servername: 'isle-control-plane', rejectUnauthorized: false, ALPNProtocols: ['h2'] }, () => resolve(s));
    s.resume();
    s.on('error', () => {});
    s.once('error', reject);
    sockets.push(s);
  });
}

describe('control-plane port limits', () => {
  let plane: Plane;
  before(async () => {
    plane = await startPlane({ portLimits: { handshakeTimeoutMs: 300, authTimeoutMs: 900, maxUnauthenticated: 3 } });
  });

  it('a TCP connection that never starts TLS is closed', async () => {
    const s = await rawIdle(plane.cp.addresses.grpc);
    await closed(s);
    await waitUntil(() => plane.cp.portGuard!.unauthenticated === 0, 'slot released');
  });

  it('a TLS connection without a client certificate that asks for nothing is closed', async () => {
    const s = await tlsIdle(plane.cp.addresses.grpc);
    await closed(s);
    assert.ok(plane.logs.some((l) => /no client certificate or certificate request in time/.test(l.msg)));
  });

  it('over the cap, a new unauthenticated connection is closed at once and the cap is logged', async () => {
    const held = await Promise.all([rawIdle(plane.cp.addresses.grpc), rawIdle(plane.cp.addresses.grpc), rawIdle(plane.cp.addresses.grpc)]);
    await waitUntil(() => plane.cp.portGuard!.unauthenticated === 3, 'three held');
    const extra = await rawIdle(plane.cp.addresses.grpc);
    await closed(extra);
    assert.equal(held.filter((s) => s.destroyed).length, 0, 'the held ones were not the ones closed');
    assert.ok(plane.logs.some((l) => /unauthenticated connection cap reached \(3\)/.test(l.msg)));
    await Promise.all(held.map(closed));
  });

  it('an authenticated proxy (client certificate, ADS stream) is not closed by the deadlines', async () => {
    const { ca, root } = await meshPki();
    const cert = await workloadCert(ca, 'default', 'sleep');
    const p = new SimProxy('delta', channel(plane.cp.addresses.grpc, { rootPem: root.certPem, cert }), sidecarNode(7));
    try {
      await waitUntil(() => inSync(plane.cp, p.id), 'in sync');
      const streams = () => plane.cp.xdsServers[0]!.status().filter((s) => s.node.id === p.id).length;
      const before = streams();
      await new Promise((r) => setTimeout(r, 1500)); // past both deadlines
      assert.equal(streams(), before, 'still connected');
      assert.ok(before >= 1);
    } finally {
      p.close();
    }
  });
});
