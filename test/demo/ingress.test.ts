/**
 * The ingress gateway end to end: seed 000's two clusters (real processes on loopback), an
 * `isle proxy --mode ingress` in cluster-1 selected by a Gateway, and a client outside the mesh
 * (curl with --cacert/--resolve) calling it over HTTPS. The VirtualService bound to the Gateway
 * routes to helloworld, whose v1 runs in cluster-1 and v2 in cluster-2 (reached through
 * cluster-2's east-west gateway). Also: httpsRedirect, MUTUAL (client certificate required),
 * a wildcard host, and a VirtualService bound to `mesh` only that the ingress must not use.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runIsle } from '../helpers/cli.js';

const run = promisify(execFile);
const INGRESS_IP = '127.1.0.40';

/** A CA, a server certificate for hello.example.com and *.apps.example.com, and a client certificate, made with openssl. */
function makeCerts(dir: string): void {
  const o = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  o('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/O=example/CN=example root');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=DNS:hello.example.com,DNS:*.apps.example.com\nextendedKeyUsage=serverAuth\n');
  o('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'tls.key', '-out', 'server.csr', '-subj', '/CN=hello.example.com');
  o('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'tls.crt', '-days', '2', '-extfile', 'server.ext');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  o('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=client');
  o('x509', '-req', '-in', 'client.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'client.crt', '-days', '2', '-extfile', 'client.ext');
}

const GATEWAY_YAML = `apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata: {name: hello-gateway, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    tls: {mode: SIMPLE, credentialName: hello-cred}
    hosts: [hello.example.com, "*.apps.example.com"]
  - port: {number: 8080, name: http, protocol: HTTP}
    tls: {httpsRedirect: true}
    hosts: [hello.example.com]
  - port: {number: 9443, name: https-mtls, protocol: HTTPS}
    tls: {mode: MUTUAL, credentialName: hello-cred}
    hosts: [hello.example.com]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: hello-ingress, namespace: default}
spec:
  hosts: [hello.example.com, "*.apps.example.com"]
  gateways: [istio-system/hello-gateway]
  http:
  - match: [{uri: {prefix: /hello}}]
    route:
    - destination: {host: helloworld.default.svc.cluster.local, port: {number: 5000}}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: mesh-only, namespace: default}
spec:
  hosts: [hello.example.com]
  http:
  - route:
    - destination: {host: nowhere.default.svc.cluster.local}
`;

async function curl(args: string[]): Promise<{ code: number; out: string }> {
  try {
    const r = await run('curl', ['-sS', '--max-time', '5', ...args]);
    return { code: 0, out: r.stdout };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

/** istioctl-like surface on the same demo: Envoy-shaped /config_dump, admin pages, `isle proxy-config`. */
async function proxyConfigChecks(cwd: string, ingressIp: string): Promise<void> {
  const SLEEP_ADMIN = 'http://127.1.0.20:15000';
  const dump = (await (await fetch(`${SLEEP_ADMIN}/config_dump`)).json()) as { configs: { '@type': string }[]; isle: { xds: { connected: boolean } } };
  assert.deepEqual(
    dump.configs.map((c) => c['@type'].split('.').pop()),
    ['BootstrapConfigDump', 'ClustersConfigDump', 'ListenersConfigDump', 'RoutesConfigDump', 'SecretsConfigDump', 'EndpointsConfigDump'],
  );
  assert.equal(dump.isle.xds.connected, true, "Isle's extra facts under `isle`");
  const ingressDump = await (await fetch(`http://${ingressIp}:15000/config_dump`)).text();
  assert.match(ingressDump, /kubernetes:\/\/hello-cred/, 'the credential is listed');
  assert.doesNotMatch(ingressDump, /PRIVATE KEY/, 'no private key in any dump');
  assert.match(ingressDump, /"inline_bytes": "W3JlZGFjdGVkXQ=="/, "Envoy's redaction marker");

  // Admin pages.
  assert.match(await (await fetch(`${SLEEP_ADMIN}/listeners`)).text(), /^virtualOutbound::127\.1\.0\.20:15001$/m);
  const info = (await (await fetch(`${SLEEP_ADMIN}/server_info`)).json()) as { state: string };
  assert.equal(info.state, 'LIVE');
  assert.equal((await fetch(`${SLEEP_ADMIN}/logging?level=debug`)).status, 405, 'a change needs POST');
  assert.match(await (await fetch(`${SLEEP_ADMIN}/logging?level=debug`, { method: 'POST' })).text(), /isle: debug/);
  assert.match(await (await fetch(`${SLEEP_ADMIN}/logging?level=info`, { method: 'POST' })).text(), /isle: info/);

  // proxy-config by demo name: helloworld's cluster, and its endpoints in both clusters (cluster-2's through its east-west gateway).
  const clusters = await runIsle(['proxy-config', 'cluster', 'cluster-1/sleep'], { cwd });
  assert.equal(clusters.code, 0, clusters.stderr);
  assert.match(clusters.stdout, /^SERVICE FQDN\s+PORT\s+SUBSET\s+DIRECTION\s+TYPE$/m);
  assert.match(clusters.stdout, /^helloworld\.default\.svc\.cluster\.local\s+5000\s+-\s+outbound\s+EDS$/m);
  const eps = await runIsle(['proxy-config', 'endpoint', '127.1.0.20:15000', '--fqdn', 'helloworld'], { cwd });
  assert.equal(eps.code, 0, eps.stderr);
  assert.match(eps.stdout, /^127\.1\.0\.10:5000\s+HEALTHY\s+region1\/zone1\s+\S+\s+outbound\|5000\|\|helloworld/m, eps.stdout);
  assert.match(eps.stdout, /^127\.2\.255\.1:15443\s+HEALTHY\s+\S+\s+\S+\s+outbound\|5000\|\|helloworld/m, eps.stdout);
  const json = await runIsle(['proxy-config', 'route', 'cluster-1/sleep', '-o', 'json'], { cwd });
  assert.ok((JSON.parse(json.stdout) as { name: string }[]).some((r) => r.name === '15001'));
  const secret = await runIsle(['proxy-config', 'secret', 'cluster-1/sleep'], { cwd });
  assert.match(secret.stdout, /^default\s+Cert Chain\s+ACTIVE\s+true\s+[0-9a-f]+/m);
  const ambiguous = await runIsle(['proxy-config', 'cluster', 'sleep'], { cwd });
  assert.equal(ambiguous.code, 2);
  assert.match(ambiguous.stderr, /ambiguous: cluster-1\/sleep\.default, cluster-2\/sleep\.default/);
}

test('ingress gateway: HTTPS from outside the mesh reaches helloworld v1 (cluster-1) and v2 (cluster-2)', { timeout: 180_000 }, async (t) => {
  const { startDemo, startIngress } = await import('../../src/demo/demo.js');
  const cwd = mkdtempSync(join(tmpdir(), 'isle-ingress-'));
  const log: string[] = [];
  const prevCwd = process.cwd();
  process.chdir(cwd);
  const dir = join(cwd, 'demo');
  // A restart keeps what the user added to a config directory (issue 16 part 4.1), and says so.
  mkdirSync(join(dir, 'cluster-1', 'mine'), { recursive: true });
  writeFileSync(join(dir, 'cluster-1', 'mine', 'note.yaml'), '# my own notes\n');
  writeFileSync(join(dir, 'cluster-1', 'mesh.yaml'), 'stale copy of a demo file');
  const { running, ok, stop } = await startDemo({ dir, out: (s) => void log.push(s) });
  t.after(async () => {
    await stop();
    process.chdir(prevCwd);
    rmSync(cwd, { recursive: true, force: true });
  });
  assert.ok(ok, log.join(''));
  assert.equal(execFileSync('cat', [join(dir, 'cluster-1', 'mine', 'note.yaml')], { encoding: 'utf8' }), '# my own notes\n');
  assert.match(log.join(''), /kept 1 file\(s\) you added to the config directories: cluster-1\/mine\/note\.yaml/);
  assert.doesNotMatch(execFileSync('cat', [join(dir, 'cluster-1', 'mesh.yaml')], { encoding: 'utf8' }), /stale copy/, "the demo's own files are rewritten");

  const certs = join(cwd, 'certs');
  mkdirSync(certs);
  makeCerts(certs);
  const cred = join(dir, 'cluster-1', 'credentials', 'istio-system', 'hello-cred');
  mkdirSync(cred, { recursive: true });
  for (const f of ['tls.crt', 'tls.key', 'ca.crt']) writeFileSync(join(cred, f), execFileSync('cat', [join(certs, f)]));
  writeFileSync(join(dir, 'cluster-1', 'ingress.yaml'), GATEWAY_YAML);

  await startIngress(running, running.topo.clusters[0]!, INGRESS_IP);

  const https = (host: string, port = 8443, extra: string[] = []) =>
    curl(['--cacert', join(certs, 'ca.crt'), '--resolve', `${host}:${port}:${INGRESS_IP}`, ...extra, `https://${host}:${port}/hello`]);

  // Listeners come with the first config that carries the Gateway: retry until it answers.
  const versions = new Set<string>();
  const deadline = Date.now() + 60_000;
  let last = '';
  while (Date.now() < deadline && !(versions.has('v1') && versions.has('v2'))) {
    const r = await https('hello.example.com');
    last = r.out;
    const m = /Hello version: (v\d)/.exec(r.out);
    if (m) versions.add(m[1]!);
    else await new Promise((res) => setTimeout(res, 200));
  }
  assert.ok(versions.has('v1') && versions.has('v2'), `both versions through the ingress; saw ${[...versions]}; last answer: ${last}`);

  // A wildcard server host: any name under *.apps.example.com, same routes.
  const wild = await https('shop.apps.example.com');
  assert.match(wild.out, /Hello version: v[12]/);

  // A name the certificate and Gateway do not cover: no filter chain, the handshake fails.
  const other = await https('other.example.org');
  assert.notEqual(other.code, 0, `unknown SNI refused: ${other.out}`);

  // httpsRedirect: plaintext gets a 301 to https.
  const redirect = await curl(['-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', '--resolve', `hello.example.com:8080:${INGRESS_IP}`, 'http://hello.example.com:8080/hello']);
  assert.match(redirect.out, /^301 https:\/\/hello\.example\.com(:8080)?\/hello$/);

  // MUTUAL: without a client certificate the handshake fails; with one signed by ca.crt it passes.
  const noCert = await https('hello.example.com', 9443);
  assert.notEqual(noCert.code, 0, `MUTUAL without a client certificate: ${noCert.out}`);
  const withCert = await https('hello.example.com', 9443, ['--cert', join(certs, 'client.crt'), '--key', join(certs, 'client.key')]);
  assert.match(withCert.out, /Hello version: v[12]/);

  // Stats like the sidecars': requests counted by the ingress (reporter=source).
  const stats = await (await fetch(`http://${INGRESS_IP}:15000/stats/prometheus`)).text();
  assert.match(stats, /istio_requests_total\{[^}]*response_code="200"[^}]*\} [1-9]/);

  await proxyConfigChecks(cwd, INGRESS_IP);
});
