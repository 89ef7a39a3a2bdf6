import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { formatHostPort, parseHostPort } from '../../src/config/hostport.js';

describe('parseHostPort', () => {
  test('names, IPv4 and bracketed IPv6, with the brackets dropped', () => {
    assert.deepEqual(parseHostPort('istiod.istio-system:15012'), { host: 'istiod.istio-system', port: 15012 });
    assert.deepEqual(parseHostPort(' 127.0.0.1:80 '), { host: '127.0.0.1', port: 80 });
    assert.deepEqual(parseHostPort('[fd00::1]:15443'), { host: 'fd00::1', port: 15443 });
    assert.deepEqual(parseHostPort('[::ffff:127.0.0.1]:1'), { host: '::ffff:127.0.0.1', port: 1 });
  });

  test('port rules: required unless defaulted, 1-65535 unless 0 is allowed', () => {
    assert.equal(parseHostPort('gw.example'), undefined);
    assert.deepEqual(parseHostPort('gw.example', { defaultPort: 15443 }), { host: 'gw.example', port: 15443 });
    assert.deepEqual(parseHostPort('[fd00::2]', { defaultPort: 15443 }), { host: 'fd00::2', port: 15443 });
    assert.equal(parseHostPort('h:0'), undefined);
    assert.deepEqual(parseHostPort('h:0', { allowZero: true }), { host: 'h', port: 0 });
    assert.equal(parseHostPort('h:65536'), undefined);
    assert.equal(parseHostPort('h:123456'), undefined);
  });

  test('refuses what is ambiguous or not an address', () => {
    for (const bad of ['fd00::1:80', '::1', ':80', '[]:80', 'h:', 'a b:80', 'http://h:80', 'h/x:80', '[fd00::1:80', 'h:8x']) {
      assert.equal(parseHostPort(bad, { defaultPort: 1 }), undefined, bad);
    }
  });

  test('formatHostPort is the inverse', () => {
    for (const s of ['127.0.0.1:15012', '[fd00::1]:15443', 'gw.example:1']) {
      const hp = parseHostPort(s)!;
      assert.equal(formatHostPort(hp.host, hp.port), s);
    }
  });
});
