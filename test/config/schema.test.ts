import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatPath, isCIDR, isIP, isLocality, isWildcardHost, parseDuration } from '../../src/config/schema.js';
import { fqdn, hostMatches } from '../../src/config/hosts.js';

describe('schema helpers', () => {
  it('parses durations the way Istio writes them', () => {
    assert.equal(parseDuration('10s'), 10_000);
    assert.equal(parseDuration('600ms'), 600);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('100us'), 0.1);
    for (const bad of ['10', '', 's', '10 s', '1.5', '-1s', '10sec', '1d', 'ms10']) assert.equal(parseDuration(bad), undefined, bad);
  });

  it('formats field paths', () => {
    assert.equal(formatPath(['spec', 'http', 0, 'route']), 'spec.http[0].route');
    assert.equal(formatPath(['spec', 'to', 'region1/*']), 'spec.to["region1/*"]');
  });

  it('hosts, addresses and localities', () => {
    for (const h of ['a', 'helloworld.hello.global', '*.cluster.local', '*', 'api.example.com']) assert.ok(isWildcardHost(h), h);
    for (const h of ['', 'a..b', 'foo.*', '*a.b', '-a.b', 'a b']) assert.ok(!isWildcardHost(h), h);
    for (const a of ['127.0.0.1', '::1', 'fe80::1', '2001:db8::8a2e:370:7334']) assert.ok(isIP(a), a);
    for (const a of ['256.0.0.1', '1.2.3', 'x::y', '1:2:3:4:5:6:7:8:9']) assert.ok(!isIP(a), a);
    assert.ok(isCIDR('10.0.0.0/8') && isCIDR('10.1.2.3') && !isCIDR('10.0.0.0/33'));
    assert.ok(isLocality('us/us-a/rack1') && isLocality('us') && !isLocality('us//x') && !isLocality('a/b/c/d'));
    assert.ok(isLocality('us/*', true) && !isLocality('us/*') && !isLocality('*/a', true));
  });

  it('resolves short names like Istio', () => {
    assert.equal(fqdn('reviews', 'default'), 'reviews.default.svc.cluster.local');
    assert.equal(fqdn('reviews.default', 'x'), 'reviews.default');
    assert.equal(fqdn('helloworld.hello.global', 'x'), 'helloworld.hello.global');
    assert.ok(hostMatches('*.cluster.local', 'a.b.svc.cluster.local'));
    assert.ok(hostMatches('a.example.com', '*.example.com'));
    assert.ok(hostMatches('*.svc.cluster.local', '*.cluster.local'));
    assert.ok(!hostMatches('a.example.com', 'b.example.com'));
    assert.ok(!hostMatches('*.example.com', 'example.com'));
  });
});
