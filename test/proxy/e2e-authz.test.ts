/**
 * AuthorizationPolicy through two real sidecars (control plane, helloworld app + sidecar, sleep
 * sidecar as separate processes): each step writes policies into the config directory and checks
 * a table of requests, including plain HTTP to the PERMISSIVE port (no principal).
 */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { configDir, curlProxy, getText, makeMesh, run, startApp, startControlPlane, startProxy, waitFor, type Child, type ProxyChild } from './helpers.js';

const HELLO_IP = '127.1.79.10';
const SLEEP_IP = '127.1.79.20';
let cp: Child;
let dir: string;
let hello: ProxyChild;
let sleep: ProxyChild;

before(async () => {
  const mesh = await makeMesh();
  dir = configDir();
  const started = await startControlPlane(mesh, dir);
  cp = started.child;
  const app = await startApp('helloworld-v1');
  [hello, sleep] = await Promise.all([
    startProxy({ mesh, controlPlane: started.address, ip: HELLO_IP, serviceAccount: 'helloworld', labels: { app: 'helloworld' }, appPorts: { 5000: app.port } }),
    startProxy({ mesh, controlPlane: started.address, ip: SLEEP_IP, serviceAccount: 'sleep', labels: { app: 'sleep' } }),
  ]);
  await waitFor('helloworld reachable', async () => (await viaSleep('GET', '/')).status === 200);
});

after(() => {
  for (const p of [hello, sleep]) p?.child.kill('SIGKILL');
  cp?.kill('SIGKILL');
});

async function viaSleep(method: string, path: string): Promise<{ status: number; body: string }> {
  return curlProxy(`${SLEEP_IP}:15001`, `http://helloworld:5000${path}`, ['-X', method]);
}

async function plaintext(path: string): Promise<{ status: number; body: string }> {
  const r = await run('curl', ['-sS', '--max-time', '5', '-w', '\n%{http_code}', `http://${HELLO_IP}:5000${path}`]);
  const i = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(i + 1)) || 0, body: r.stdout.slice(0, i) };
}

function apply(yaml: string): void {
  writeFileSync(join(dir, 'authz.yaml'), yaml);
}

const P = (name: string, spec: string, ns = 'default') => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ${name}
  namespace: ${ns}
spec:
${spec.endsWith('\n') ? spec : `${spec}\n`}`;

type Row = [who: 'sleep' | 'plain', method: string, path: string, status: number];

const STEPS: { name: string; yaml: string; probe: Row; rows: Row[] }[] = [
  {
    name: 'allow-nothing (spec: {}) denies everyone with 403 RBAC: access denied',
    yaml: P('allow-nothing', '  {}'),
    probe: ['sleep', 'GET', '/', 403],
    rows: [['sleep', 'GET', '/', 403], ['sleep', 'POST', '/', 403], ['plain', 'GET', '/', 403]],
  },
  {
    name: 'allow by principal and method',
    yaml: [P('allow-nothing', '  {}'), P('allow-sleep-get', `  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/sleep"]
    to:
    - operation:
        methods: ["GET"]
`)].join('---\n'),
    probe: ['sleep', 'GET', '/', 200],
    rows: [['sleep', 'GET', '/', 200], ['sleep', 'POST', '/', 403], ['plain', 'GET', '/', 403]],
  },
  {
    name: 'deny by path wins over the allow',
    yaml: [P('allow-sleep-get', `  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/sleep"]
`), P('deny-admin', `  action: DENY
  rules:
  - to:
    - operation:
        paths: ["/admin", "/admin/*"]
`)].join('---\n'),
    probe: ['sleep', 'GET', '/admin', 403],
    rows: [['sleep', 'GET', '/hello', 200], ['sleep', 'GET', '/admin', 403], ['sleep', 'GET', '/admin/x', 403], ['sleep', 'POST', '/hello', 200], ['plain', 'GET', '/hello', 403]],
  },
  {
    name: 'mesh-wide DENY in the root namespace',
    yaml: P('deny-post', `  action: DENY
  rules:
  - to:
    - operation:
        methods: ["POST"]
`, 'istio-system'),
    probe: ['sleep', 'POST', '/', 403],
    rows: [['sleep', 'GET', '/', 200], ['sleep', 'POST', '/', 403], ['plain', 'GET', '/', 200], ['plain', 'GET', '/', 200]],
  },
];

describe('AuthorizationPolicy through two real sidecars', () => {
  for (const step of STEPS) {
    test(step.name, async () => {
      apply(step.yaml);
      const send = (r: Row) => (r[0] === 'sleep' ? viaSleep(r[1], r[2]) : plaintext(r[2]));
      await waitFor(`policy applied (${step.probe.join(' ')})`, async () => (await send(step.probe)).status === step.probe[3]);
      for (const row of step.rows) {
        const r = await send(row);
        assert.equal(r.status, row[3], `${row.join(' ')}: ${r.body}`);
        if (row[3] === 403) assert.equal(r.body.trim(), 'RBAC: access denied');
      }
    });
  }

  test('denials are counted by the destination sidecar, and no policy means allow again', async () => {
    const stats = await getText(`${hello.admin}/stats/prometheus`);
    assert.match(stats.text, /isle_rbac_denied_total\{[^}]*policy="ns\[default\]-policy\[deny-admin\]-rule\[0\]"[^}]*\} [1-9]/);
    assert.match(stats.text, /isle_rbac_denied_total\{[^}]*policy="\(no ALLOW matched\)"[^}]*\} [1-9]/);
    rmSync(join(dir, 'authz.yaml'));
    await waitFor('policies gone', async () => (await viaSleep('POST', '/')).status === 200);
    assert.equal((await plaintext('/')).status, 200);
  });
});
