import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { controlPlaneTarget } from '../../src/mesh/target.js';

describe('control-plane target', () => {
  it('one address as given; several IP replicas as one ipv4:/ipv6: target; bad input names the part', () => {
    assert.equal(controlPlaneTarget('cp.example:15012'), 'cp.example:15012');
    assert.equal(controlPlaneTarget('127.0.0.1:15012, 127.0.0.2:15012'), 'ipv4:127.0.0.1:15012,127.0.0.2:15012');
    assert.equal(controlPlaneTarget('[fd00::1]:15012,[fd00::2]:15012'), 'ipv6:[fd00::1]:15012,[fd00::2]:15012');
    assert.throws(() => controlPlaneTarget('127.0.0.1:15012,nope'), /--control-plane: invalid address "nope"/);
    assert.throws(() => controlPlaneTarget('a.example:1,b.example:2'), /all be IPv4 or all IPv6 addresses \(or give one DNS name/);
    assert.throws(() => controlPlaneTarget('127.0.0.1:1,[::1]:2'), /all be IPv4 or all IPv6/);
  });
});
