/**
 * Rate limits through real sidecars, as Istio users configure them: EnvoyFilters in the control
 * plane's config directory, `isle ratelimit` backed by a real redis-server, the helloworld app
 * behind its sidecar and two client sidecars.
 *
 * - 100 req/s against a 10 req/s global limit over three one-second windows: 30 ± 6 succeed
 *   (10 ± 2 a second); the rest are 429 with the DRAFT_VERSION_03 headers.
 * - Two sidecars sending 50 req/s each share the one Redis-backed limit (30 ± 6, not 60).
 * - Redis stopped: failure_mode_deny false lets requests through; true answers 500.
 * - A local token bucket on the helloworld sidecar's inbound listener: 429 `local_rate_limited`
 *   with `x-local-rate-limit: true` once the 3 tokens are spent.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Child, configDir, getText, makeMesh, startApp, startControlPlane, startProxy, tempDir, waitFor, type ProxyChild } from './helpers.js';
import { freePort, HAVE_REDIS, startRedis, type RedisProc } from '../ratelimit/redis.js';

const HELLO_IP = '127.90.3.1';
const SLEEP1_IP = '127.90.3.2';
const SLEEP2_IP = '127.90.3.3';
const RLS_IP = '127.90.3.4';

let dir: string;
let cp: Child;
let rls: Child;
let redis: RedisProc;
let rlsPort: number;
let hello: ProxyChild;
let sleep1: ProxyChild;
let sleep2: ProxyChild;
const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });

function serviceEntry(port: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratelimit, namespace: default}
spec:
  hosts: [ratelimit.isle.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: ${port}, name: grpc, protocol: GRPC}]
  endpoints: [{address: ${RLS_IP}}]
`;
}

function globalFilter(failureModeDeny: boolean): string {
  return `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: filter-ratelimit, namespace: default}
spec:
  workloadSelector:
    labels: {app: sleep}
  configPatches:
    - applyTo: HTTP_FILTER
      match:
        context: SIDECAR_OUTBOUND
        listener:
          filterChain:
            filter:
              name: envoy.filters.network.http_connection_manager
              subFilter: {name: envoy.filters.http.router}
      patch:
        operation: INSERT_BEFORE
        value:
          name: envoy.filters.http.ratelimit
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.ratelimit.v3.RateLimit
            domain: hello-ratelimit
            failure_mode_deny: ${failureModeDeny}
            timeout: 5s
            enable_x_ratelimit_headers: DRAFT_VERSION_03
            rate_limit_service:
              grpc_service:
                envoy_grpc:
                  cluster_name: outbound|${rlsPort}||ratelimit.isle.test
              transport_api_version: V3
    - applyTo: VIRTUAL_HOST
      match:
        context: SIDECAR_OUTBOUND
        routeConfiguration:
          vhost:
            name: helloworld.default.svc.cluster.local:5000
            route: {action: ANY}
      patch:
        operation: MERGE
        value:
          rate_limits:
            - actions:
                - generic_key: {descriptor_value: hello}
`;
}

const LOCAL_FILTER = `apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: filter-local-ratelimit-svc, namespace: default}
spec:
  workloadSelector:
    labels: {app: helloworld}
  configPatches:
    - applyTo: HTTP_FILTER
      match:
        context: SIDECAR_INBOUND
        listener:
          filterChain:
            filter:
              name: envoy.filters.network.http_connection_manager
      patch:
        operation: INSERT_BEFORE
        value:
          name: envoy.filters.http.local_ratelimit
          typed_config:
            "@type": type.googleapis.com/udpa.type.v1.TypedStruct
            type_url: type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
            value:
              stat_prefix: http_local_rate_limiter
              token_bucket: {max_tokens: 3, tokens_per_fill: 3, fill_interval: 60s}
              filter_enabled:
                runtime_key: local_rate_limit_enabled
                default_value: {numerator: 100, denominator: HUNDRED}
              filter_enforced:
                runtime_key: local_rate_limit_enforced
                default_value: {numerator: 100, denominator: HUNDRED}
              response_headers_to_add:
                - append: false
                  header: {key: x-local-rate-limit, value: 'true'}
`;

const RLS_CONFIG = `domain: hello-ratelimit
descriptors:
  - key: generic_key
    value: hello
    rate_limit: {unit: second, requests_per_unit: 10}
`;

interface Result {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function get(via: string): Promise<Result> {
  return new Promise((resolve) => {
    const req = http.request({ host: via, port: 15001, path: 'http://helloworld:5000/', agent, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', () => resolve({ status: 0, headers: {}, body: '' }));
    req.end();
  });
}

/**
 * Sends `perSecond` requests a second through each client sidecar in three consecutive one-second
 * windows of the wall clock (the service's fixed windows). Each window's requests go out in its
 * first 500 ms, so that on a loaded machine (sidecar latency of a few hundred ms was seen at load
 * average 27 on 2 cores) no request of the last window reaches the service after the third
 * window: the three windows' successes are then exactly what the limit allows in three windows.
 * Lag can still move a success from one window into the next, so per-window counts are reported
 * and the total over the three windows is asserted. Returns the results per window.
 */
async function loadThreeWindows(via: string[], perSecond: number): Promise<Result[][]> {
  const first = Math.ceil(Date.now() / 1000) * 1000;
  const windows: Promise<Result>[][] = [[], [], []];
  const every = 1000 / perSecond;
  for (let w = 0; w < 3; w++) {
    for (let at = first + w * 1000 + 20; at < first + w * 1000 + 520; at += every) {
      const wait = at - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      // A send that fell behind into the next window would be counted in the wrong one.
      if (Date.now() >= first + (w + 1) * 1000 - 250) break;
      for (const v of via) windows[w]!.push(get(v));
    }
  }
  return Promise.all(windows.map((l) => Promise.all(l)));
}

const count = (rs: Result[], status: number): number => rs.filter((r) => r.status === status).length;

describe('rate limits through real sidecars and a real Redis', { skip: HAVE_REDIS ? false : 'redis-server is not installed (apt-get install redis-server)' }, () => {
  before(async () => {
    redis = await startRedis(RLS_IP);
    rlsPort = await freePort(RLS_IP);
    const files = tempDir('isle-rl-');
    writeFileSync(join(files, 'rls.yaml'), RLS_CONFIG);
    rls = new Child(['ratelimit', '--redis', redis.url, '--config', join(files, 'rls.yaml'), '--listen', `${RLS_IP}:${rlsPort}`]);
    await rls.line(/^ratelimit \S+$/m);
    const mesh = await makeMesh();
    dir = configDir({ 'ratelimit-se.yaml': serviceEntry(rlsPort), 'ef-global.yaml': globalFilter(false) });
    const started = await startControlPlane(mesh, dir);
    cp = started.child;
    const app = await startApp('helloworld-v1');
    [hello, sleep1, sleep2] = await Promise.all([
      startProxy({ mesh, controlPlane: started.address, ip: HELLO_IP, serviceAccount: 'helloworld', labels: { app: 'helloworld', version: 'v1' }, appPorts: { 5000: app.port } }),
      startProxy({ mesh, controlPlane: started.address, ip: SLEEP1_IP, serviceAccount: 'sleep', labels: { app: 'sleep' } }),
      startProxy({ mesh, controlPlane: started.address, ip: SLEEP2_IP, serviceAccount: 'sleep', labels: { app: 'sleep' } }),
    ]);
    let last: Result | undefined;
    await waitFor('helloworld reachable and limited', async () => (last = await get(SLEEP1_IP)).headers['x-ratelimit-limit'] !== undefined).catch((e: Error) => {
      throw new Error(`${e.message}; last ${JSON.stringify(last)}; control plane: ${cp.stderr.slice(-1500)}; sleep: ${sleep1.child.stderr.slice(-1500)}; rls: ${rls.stderr.slice(-500)}`);
    });
  });

  after(() => {
    agent.destroy();
    for (const p of [hello, sleep1, sleep2]) p?.child.kill('SIGKILL');
    cp?.kill('SIGKILL');
    rls?.kill('SIGKILL');
  });

  test('100 req/s against a 10 req/s limit: 10 ± 2 succeed a second, the rest are 429 with x-ratelimit-*', async () => {
    const windows = await loadThreeWindows([SLEEP1_IP], 100);
    const perWindow = windows.map((w) => `${count(w, 200)} of ${w.length}`).join(', ');
    for (const w of windows) assert.ok(w.length >= 20, `too few requests sent in a window to test the limit (${perWindow}): the machine is too loaded`);
    const rs = windows.flat();
    const ok = count(rs, 200);
    assert.ok(ok >= 24 && ok <= 36, `${ok} successes in three one-second windows (${perWindow}); want 30 ± 6, i.e. 10 ± 2 a second`);
    const limited = rs.filter((r) => r.status === 429);
    assert.equal(count(rs, 200) + limited.length, rs.length, 'every request is either allowed or limited');
    assert.ok(limited.length > 0);
    const l = limited[0]!;
    assert.equal(l.headers['x-ratelimit-limit'], '10, 10;w=1');
    assert.equal(l.headers['x-ratelimit-remaining'], '0');
    assert.match(String(l.headers['x-ratelimit-reset']), /^[01]$/);
    assert.equal(l.headers['x-envoy-ratelimited'], 'true');
    const stats = await getText(`${sleep1.admin}/stats/prometheus`);
    assert.match(stats.text, /isle_ratelimit_requests_total\{kind="global",stat_prefix="hello-ratelimit",result="over_limit"\} [1-9]/);
  });

  test('two sidecars share one Redis-backed limit', async () => {
    const windows = await loadThreeWindows([SLEEP1_IP, SLEEP2_IP], 50);
    const perWindow = windows.map((w) => `${count(w, 200)} of ${w.length}`).join(', ');
    const ok = count(windows.flat(), 200);
    const failOpen = async (p: ProxyChild) => /result="failure_mode_allowed"\} (\d+)/.exec((await getText(`${p.admin}/stats/prometheus`)).text)?.[1] ?? '0';
    assert.ok(ok >= 24 && ok <= 36, `${ok} successes in three windows across both sidecars (${perWindow}); want 30 ± 6 (10 ± 2 a second), not 60; failed open: ${await failOpen(sleep1)}, ${await failOpen(sleep2)}`);
  });

  test('Redis stopped: failure_mode_deny false fails open, true fails closed with 500', async () => {
    await redis.stop();
    await waitFor('requests pass while Redis is down', async () => (await get(SLEEP1_IP)).status === 200);
    for (let i = 0; i < 20; i++) assert.equal((await get(SLEEP1_IP)).status, 200);
    const stats = await getText(`${sleep1.admin}/stats/prometheus`);
    assert.match(stats.text, /result="failure_mode_allowed"\} [1-9]/);
    assert.ok(/rate limit service .* failed/.test(sleep1.child.stderr), 'the failure is logged');
    const logLines = sleep1.child.stderr.split('\n').filter((l) => l.includes('rate limit service')).length;
    assert.ok(logLines <= 3, `logged ${logLines} times for 20+ requests: throttled, not per request`);
    writeFileSync(join(dir, 'ef-global.yaml'), globalFilter(true));
    await waitFor('fail closed applied', async () => (await get(SLEEP1_IP)).status === 500);
    assert.equal((await get(SLEEP2_IP)).status, 500);
  });

  test('a local token bucket on the inbound listener: 429 local_rate_limited with x-local-rate-limit', async () => {
    rmSync(join(dir, 'ef-global.yaml'));
    writeFileSync(join(dir, 'ef-local.yaml'), LOCAL_FILTER);
    const limited = await waitFor('local limit applied', async () => {
      const r = await get(SLEEP1_IP);
      return r.status === 429 ? r : undefined;
    }).catch(async (e: Error) => {
      const dump = await fetch(`${hello.admin}/config_dump`).then((r) => r.text());
      throw new Error(`${e.message}; control plane: ${cp.stderr.slice(-1500)}; helloworld sidecar: ${hello.child.stderr.slice(-1500)}; has local filter: ${dump.includes('local_ratelimit')}`);
    });
    assert.equal(limited.body.trim(), 'local_rate_limited');
    assert.equal(limited.headers['x-local-rate-limit'], 'true');
    // Three tokens a minute: of the next ten requests none passes (the bucket is empty).
    const rs = await Promise.all(Array.from({ length: 10 }, () => get(SLEEP2_IP)));
    assert.equal(count(rs, 429), 10, JSON.stringify(rs.map((r) => r.status)));
    const stats = await getText(`${hello.admin}/stats/prometheus`);
    assert.match(stats.text, /isle_ratelimit_requests_total\{kind="local",stat_prefix="http_local_rate_limiter",result="over_limit"\} [1-9]/);
  });
});
