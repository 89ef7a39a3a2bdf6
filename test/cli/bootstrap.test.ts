// `isle bootstrap grpc`: the file grpc-js-xds reads (node in Istio's id format, GENERATOR=grpc,
// the certificate provider when asked), and bad input named by flag.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runIsle } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'isle-bootstrap-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('isle bootstrap grpc', () => {
  it('writes the bootstrap, refuses to overwrite it without --force', async () => {
    const out = join(dir, 'b.json');
    const args = ['bootstrap', 'grpc', '--namespace', 'shop', '--service-account', 'cart', '--label', 'app=cart', '--label', 'version=v2', '--network', 'network1', '--cert-dir', dir, '--out', out];
    const r = await runIsle(args);
    assert.equal(r.code, 0, r.stderr);
    const b = JSON.parse(readFileSync(out, 'utf8')) as { node: { id: string; metadata: unknown }; xds_servers: unknown; certificate_providers: { default: { plugin_name: string; config: { certificate_file: string } } } };
    assert.equal(b.node.id, 'sidecar~127.0.0.1~cart.shop~shop.svc.cluster.local');
    assert.deepEqual(b.node.metadata, { GENERATOR: 'grpc', NAMESPACE: 'shop', SERVICE_ACCOUNT: 'cart', INSTANCE_IPS: '127.0.0.1', LABELS: { app: 'cart', version: 'v2' }, NETWORK: 'network1' });
    assert.deepEqual(b.xds_servers, [{ server_uri: '127.0.0.1:15010', channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }]);
    assert.equal(b.certificate_providers.default.plugin_name, 'file_watcher');
    assert.equal(b.certificate_providers.default.config.certificate_file, join(dir, 'cert-chain.pem'));
    const again = await runIsle(args);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /exists \(use --force/);
    assert.equal((await runIsle([...args, '--force'])).code, 0);
  });

  it('bad input names the flag', async () => {
    const bad = await runIsle(['bootstrap', 'grpc', '--namespace', 'Not_A_Label', '--service-account', 'cart']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--namespace: "Not_A_Label" is not a DNS label/);
    const addr = await runIsle(['bootstrap', 'grpc', '--namespace', 'shop', '--service-account', 'cart', '--xds-address', 'nohost']);
    assert.match(addr.stderr, /--xds-address: "nohost" is not host:port/);
    const label = await runIsle(['bootstrap', 'grpc', '--namespace', 'shop', '--service-account', 'cart', '--label', 'novalue']);
    assert.match(label.stderr, /--label "novalue": expected key=value/);
    const relay = await runIsle(['bootstrap', 'grpc', '--namespace', 'shop', '--service-account', 'cart', '--xds-relay', '127.0.0.1:0']);
    assert.match(relay.stderr, /--xds-relay: needs --control-plane/);
    const open = await runIsle(['bootstrap', 'grpc', '--namespace', 'shop', '--service-account', 'cart', '--cert-dir', dir, '--out', join(dir, 'x.json'), '--control-plane', '127.0.0.1:1', '--xds-relay', '0.0.0.0:0']);
    assert.equal(open.code, 2);
    assert.match(open.stderr, /--xds-relay: "0\.0\.0\.0:0" must be a loopback host:port/);
    const noToken = await runIsle(['bootstrap', 'grpc', '--namespace', 'shop', '--service-account', 'cart', '--cert-dir', dir, '--out', join(dir, 'y.json'), '--control-plane', '127.0.0.1:1']);
    assert.match(noToken.stderr, /--control-plane needs --token FILE and --ca-bundle FILE/);
  });
});
