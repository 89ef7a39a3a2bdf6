// Acceptance: real node:tls mutual TLS on 127.0.0.1 with Isle certificates, the peers checking
// each other's SPIFFE ID instead of a host name.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import tls from 'node:tls';
import { createIntermediate, mergeBundles, spiffeIdFromCert, type SignedWorkload } from '../../src/pki/index.js';
import { identity, meshCa, workload } from './fixtures.js';

type Peer = SignedWorkload & { keyPem: string };

interface Outcome {
  /** What the server read from the client certificate (undefined: no handshake completed). */
  serverSaw?: string | undefined;
  /** What the client read from the server certificate. */
  clientSaw?: string | undefined;
  /** The server's reply arrived over the established channel. */
  reply?: string | undefined;
  serverError?: Error | undefined;
  clientError?: Error | undefined;
}

/**
 * One connection between `server` and `client`, each trusting `bundle` (or its own root). The
 * client accepts the server only if it presents `expectServerId`.
 */
async function handshake(server: Peer, client: Peer, opts: { serverBundle?: string; clientBundle?: string; expectServerId?: string } = {}): Promise<Outcome> {
  const outcome: Outcome = {};
  const srv = tls.createServer({
    key: server.keyPem,
    cert: server.chainPem,
    ca: opts.serverBundle ?? server.rootBundlePem,
    requestCert: true,
    rejectUnauthorized: true,
  });
  srv.on('secureConnection', (socket) => {
    outcome.serverSaw = spiffeIdFromCert(socket.getPeerCertificate());
    socket.end(`hello ${outcome.serverSaw} from ${server.spiffeId}`);
  });
  srv.on('tlsClientError', (e) => (outcome.serverError = e));
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  const expected = opts.expectServerId ?? server.spiffeId;
  try {
    await new Promise<void>((resolve) => {
      const socket = tls.connect({
        host: '127.0.0.1',
        port,
        key: client.keyPem,
        cert: client.chainPem,
        ca: opts.clientBundle ?? client.rootBundlePem,
        checkServerIdentity: (_host, cert) => {
          const id = spiffeIdFromCert(cert);
          return id === expected ? undefined : new Error(`server is ${id ?? 'anonymous'}, expected ${expected}`);
        },
      });
      let data = '';
      const timer = setTimeout(() => socket.destroy(new Error('timeout')), 5000);
      socket.setEncoding('utf8');
      socket.on('secureConnect', () => (outcome.clientSaw = spiffeIdFromCert(socket.getPeerCertificate())));
      socket.on('data', (d: string) => (data += d));
      socket.on('error', (e) => (outcome.clientError = e));
      socket.on('close', () => {
        clearTimeout(timer);
        outcome.reply = data === '' ? undefined : data;
        resolve();
      });
    });
  } finally {
    await new Promise<void>((resolve) => srv.close(() => resolve()));
  }
  return outcome;
}

function assertAccepted(o: Outcome, server: Peer, client: Peer): void {
  assert.equal(o.clientError, undefined, `client error: ${o.clientError?.message}`);
  assert.equal(o.serverError, undefined, `server error: ${o.serverError?.message}`);
  assert.equal(o.serverSaw, client.spiffeId);
  assert.equal(o.clientSaw, server.spiffeId);
  assert.equal(o.reply, `hello ${client.spiffeId} from ${server.spiffeId}`);
}

function assertRefused(o: Outcome): void {
  assert.equal(o.reply, undefined, 'no application data may flow');
  assert.equal(o.serverSaw, undefined, 'the server must not accept the connection');
  assert.ok(o.serverError ?? o.clientError, 'one side reports the failure');
}

describe('mutual TLS across clusters', () => {
  it('cluster-1 and cluster-2 workloads accept each other, both ways', async () => {
    const { c1, c2 } = await meshCa();
    const a = await workload(c1, identity('sample', 'sleep'));
    const b = await workload(c2, identity('sample', 'helloworld'));
    assertAccepted(await handshake(a, b), a, b);
    assertAccepted(await handshake(b, a), b, a);
  });

  it('an RSA-2048 workload of an RSA intermediate talks to an EC one', async () => {
    const { root, c1 } = await meshCa();
    const rsaCa = await createIntermediate({ root, cluster: 'cluster-rsa', keyType: 'rsa-2048' });
    const a = await workload(c1, identity('a', 'ec'));
    const b = await workload(rsaCa, identity('b', 'rsa'), { keyType: 'rsa-2048' });
    assertAccepted(await handshake(a, b), a, b);
    assertAccepted(await handshake(b, a), b, a);
  });

  it('the server refuses a client of a foreign root', async () => {
    const { c1, foreignCa } = await meshCa();
    const server = await workload(c1, identity('sample', 'helloworld'));
    const intruder = await workload(foreignCa, identity('sample', 'sleep'));
    const o = await handshake(server, intruder, { clientBundle: server.rootBundlePem });
    assertRefused(o);
    assert.ok(o.serverError, 'the server saw the bad client certificate');
  });

  it('the client refuses a server of a foreign root', async () => {
    const { c1, foreignCa } = await meshCa();
    const impostor = await workload(foreignCa, identity('sample', 'helloworld'));
    const client = await workload(c1, identity('sample', 'sleep'));
    const o = await handshake(impostor, client, { serverBundle: client.rootBundlePem });
    assertRefused(o);
    assert.match(o.clientError?.message ?? '', /local issuer|self.signed|unable to verify/i);
  });

  it('the client refuses a server with the wrong SPIFFE ID', async () => {
    const { c1, c2 } = await meshCa();
    const server = await workload(c2, identity('sample', 'not-helloworld'));
    const client = await workload(c1, identity('sample', 'sleep'));
    const o = await handshake(server, client, { expectServerId: 'spiffe://cluster.local/ns/sample/sa/helloworld' });
    assert.equal(o.reply, undefined);
    assert.match(o.clientError?.message ?? '', /expected spiffe:\/\/cluster\.local\/ns\/sample\/sa\/helloworld/);
  });

  it('a bundle with two roots accepts peers of both', async () => {
    const { root, c1, foreignRoot, foreignCa } = await meshCa();
    const bundle = mergeBundles(root.certPem, foreignRoot.certPem);
    const server = await workload(c1, identity('sample', 'helloworld'));
    for (const ca of [c1, foreignCa]) {
      const client = await workload(ca, identity('sample', 'sleep'));
      const o = await handshake(server, client, { serverBundle: bundle, clientBundle: bundle });
      assertAccepted(o, server, client);
    }
  });
});
