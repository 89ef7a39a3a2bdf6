import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseGatewayAddresses } from '../../src/peering/index.js';

describe('parseGatewayAddresses', () => {
  it('host:port lists, 15443 by default, IPv6 in brackets', () => {
    assert.deepEqual(parseGatewayAddresses('10.0.0.5:15443, gw.example , [fd00::1]:16443'), [
      { address: '10.0.0.5', port: 15443 },
      { address: 'gw.example', port: 15443 },
      { address: 'fd00::1', port: 16443 },
    ]);
    assert.throws(() => parseGatewayAddresses('10.0.0.5:99999'), /invalid east-west gateway address "10.0.0.5:99999"/);
  });
});
