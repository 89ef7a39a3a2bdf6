/**
 * The rate limit service against a real Redis (and a real Sentinel): envoyproxy/ratelimit's config
 * and matching, fixed windows from an injectable clock, the gRPC API as Envoy calls it, and
 * UNAVAILABLE when Redis is gone.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { loadRateLimitConfig, matchDescriptor, parseDomainConfig } from '../../src/ratelimit/config.js';
import { rlsServiceDefinition, type RlsResponse } from '../../src/xds/rls.js';
import { RateLimitService } from '../../src/ratelimit/service.js';
import { MemoryCounterStore, RedisCounterStore } from '../../src/ratelimit/store.js';
import { HAVE_REDIS, HAVE_SENTINEL, startRedis, startSentinel, type RedisProc } from './redis.js';

const CONFIG = `
domain: productpage-ratelimit
descriptors:
  - key: PATH
    value: /productpage
    rate_limit: { unit: minute, requests_per_unit: 1 }
  - key: PATH
    rate_limit: { unit: second, requests_per_unit: 3 }
  - key: remote_address
    descriptors:
      - key: PATH
        rate_limit: { unit: second, requests_per_unit: 2, name: per-ip }
  - key: shadow
    shadow_mode: true
    rate_limit: { unit: second, requests_per_unit: 0 }
`;

const cfg = loadRateLimitConfig(['rl.yaml'], () => CONFIG);

describe('rate limit service config', () => {
  test('matching: exact value over key-only, nested descriptors, no limit when unmatched', () => {
    const d = cfg.get('productpage-ratelimit')!;
    assert.equal(matchDescriptor(d, [{ key: 'PATH', value: '/productpage' }])?.limit.requestsPerUnit, 1);
    assert.equal(matchDescriptor(d, [{ key: 'PATH', value: '/other' }])?.key, 'productpage-ratelimit_PATH_/other');
    assert.equal(matchDescriptor(d, [{ key: 'remote_address', value: '1.2.3.4' }, { key: 'PATH', value: '/x' }])?.limit.name, 'per-ip');
    assert.equal(matchDescriptor(d, [{ key: 'remote_address', value: '1.2.3.4' }]), undefined);
    assert.equal(matchDescriptor(d, [{ key: 'nope', value: 'x' }]), undefined);
  });

  test('bad configs are refused naming the file and field', () => {
    assert.throws(() => parseDomainConfig({ domain: 'd', descriptors: [{ key: 'a', rate_limit: { unit: 'fortnight', requests_per_unit: 1 } }] }, 'f.yaml'), /f\.yaml: descriptors\[0\]\.rate_limit\.unit: must be one of/);
    assert.throws(() => parseDomainConfig({ domain: 'd', descriptors: [{ key: 'a', rate_limit: { unit: 'second', request_per_unit: 1 } }] }, 'f.yaml'), /rate_limit\.request_per_unit: unknown field/);
    assert.throws(() => parseDomainConfig({ descriptors: [] }, 'f.yaml'), /f\.yaml: domain: must be a non-empty string/);
    assert.throws(() => loadRateLimitConfig(['a', 'b'], () => 'domain: x\n'), /domain "x" is defined twice/);
  });

  test('fixed windows from the clock; shadow mode counts but never limits (in memory)', async () => {
    let now = 1_000_000_000_000;
    const svc = new RateLimitService({ config: () => cfg, store: new MemoryCounterStore(() => now), now: () => now });
    const ask = (value: string) => svc.shouldRateLimit({ domain: 'productpage-ratelimit', descriptors: [{ entries: [{ key: 'PATH', value }] }] });
    const codes = [];
    for (let i = 0; i < 5; i++) codes.push((await ask('/a')).overall_code);
    assert.deepEqual(codes, ['OK', 'OK', 'OK', 'OVER_LIMIT', 'OVER_LIMIT']);
    now += 1000;
    const r = await ask('/a');
    assert.equal(r.overall_code, 'OK');
    assert.deepEqual(r.statuses![0]!.current_limit, { requests_per_unit: 3, unit: 'SECOND' });
    assert.equal(r.statuses![0]!.limit_remaining, 2);
    assert.equal((await svc.shouldRateLimit({ domain: 'productpage-ratelimit', descriptors: [{ entries: [{ key: 'shadow', value: 'x' }] }] })).overall_code, 'OK');
    assert.equal((await svc.shouldRateLimit({ domain: 'other', descriptors: [{ entries: [{ key: 'PATH', value: '/' }] }] })).overall_code, 'OK');
  });
});

describe('rate limit service over gRPC with a real Redis', { skip: HAVE_REDIS ? false : 'redis-server is not installed (apt-get install redis-server)' }, () => {
  let redis: RedisProc;
  let store: RedisCounterStore;
  let server: grpc.Server;
  let client: grpc.Client & { ShouldRateLimit: (req: unknown, cb: (e: grpc.ServiceError | null, r?: RlsResponse) => void) => void };
  const logs: string[] = [];

  before(async () => {
    redis = await startRedis('127.90.1.1');
    store = new RedisCounterStore({ url: redis.url });
    const svc = new RateLimitService({ config: () => cfg, store, log: (m) => logs.push(m) });
    server = new grpc.Server();
    svc.addToServer(server);
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.90.1.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    const Ctor = grpc.makeGenericClientConstructor(rlsServiceDefinition(), 'RateLimitService');
    client = new Ctor(`127.90.1.1:${port}`, grpc.credentials.createInsecure()) as unknown as typeof client;
  });
  after(async () => {
    client?.close();
    server?.forceShutdown();
    await store?.close();
    await redis?.stop();
  });

  const call = (value: string) =>
    new Promise<{ r?: RlsResponse; e?: grpc.ServiceError }>((resolve) =>
      client.ShouldRateLimit({ domain: 'productpage-ratelimit', descriptors: [{ entries: [{ key: 'PATH', value }] }] }, (e, r) => resolve(e ? { e } : { r })),
    );

  test('ShouldRateLimit counts in Redis: one request a minute for /productpage', async () => {
    const first = await call('/productpage');
    const second = await call('/productpage');
    assert.equal(first.r?.overall_code, 'OK', String(first.e));
    assert.equal(second.r?.overall_code, 'OVER_LIMIT');
    assert.equal(second.r?.statuses?.[0]?.current_limit?.unit, 'MINUTE');
    assert.equal(second.r?.statuses?.[0]?.limit_remaining ?? 0, 0);
    const keys = await store.redis.keys('productpage-ratelimit_PATH_/productpage_*');
    assert.equal(keys.length, 1);
    const ttl = await store.redis.ttl(keys[0]!);
    assert.ok(ttl > 0 && ttl <= 60, `ttl ${ttl}`);
  });

  test('Redis stopped: UNAVAILABLE, logged once rather than per call', async () => {
    await redis.stop();
    const results = await Promise.all([call('/a'), call('/b'), call('/c')]);
    for (const x of results) assert.equal(x.e?.code, grpc.status.UNAVAILABLE, JSON.stringify(x.r));
    assert.equal(logs.filter((l) => l.includes('counter store failed')).length, 1, logs.join('\n'));
  });
});

describe('rate limit counters through Redis Sentinel', { skip: HAVE_SENTINEL && HAVE_REDIS ? false : 'redis-sentinel is not installed' }, () => {
  test('the store finds the master through one Sentinel and counts there', async () => {
    const master = await startRedis('127.90.1.2');
    const sentinel = await startSentinel('127.90.1.2', master);
    const store = new RedisCounterStore({ sentinels: [`127.90.1.2:${sentinel.port}`], sentinelName: 'mymaster', commandTimeoutMs: 2000 });
    try {
      const svc = new RateLimitService({ config: () => cfg, store });
      let r;
      for (let i = 0; i < 100 && !r; i++) {
        r = await svc.shouldRateLimit({ domain: 'productpage-ratelimit', descriptors: [{ entries: [{ key: 'PATH', value: '/productpage' }] }] }).catch(() => undefined);
        if (!r) await new Promise((res) => setTimeout(res, 100));
      }
      assert.equal(r?.overall_code, 'OK');
      const again = await svc.shouldRateLimit({ domain: 'productpage-ratelimit', descriptors: [{ entries: [{ key: 'PATH', value: '/productpage' }] }] });
      assert.equal(again.overall_code, 'OVER_LIMIT');
      const direct = new Redis(master.url);
      try {
        assert.equal((await direct.keys('productpage-ratelimit_PATH_/productpage_*')).length, 1, 'the counter lives on the master the Sentinel named');
      } finally {
        direct.disconnect();
      }
    } finally {
      await store.close();
      await sentinel.stop();
      await master.stop();
    }
  });
});
