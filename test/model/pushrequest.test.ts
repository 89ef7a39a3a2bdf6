import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CONNECT_REQUEST, PushRequest } from '../../src/model/pushrequest.js';

describe('PushRequest.merge', () => {
  it('full wins; reasons, kinds and hosts are unioned; the earliest start is kept; inputs are untouched', () => {
    const a = new PushRequest({ full: false, reasons: ['endpoints'], hosts: ['a.default.svc.cluster.local'], start: 30 });
    const b = new PushRequest({ full: true, reasons: ['config'], configKinds: ['VirtualService'], start: 10 });
    const m = a.merge(b);
    assert.equal(m.full, true);
    assert.equal(m.cds, true, 'a full push regenerates CDS');
    assert.deepEqual([...m.reasons].sort(), ['config', 'endpoints']);
    assert.deepEqual([...m.configKinds], ['VirtualService']);
    assert.deepEqual([...m.hosts], ['a.default.svc.cluster.local']);
    assert.equal(m.start, 10);
    assert.equal(a.full, false);
    assert.deepEqual([...a.reasons], ['endpoints']);
    assert.ok(Object.isFrozen(m));
  });

  it('two incremental requests stay incremental; cds survives the merge', () => {
    const a = new PushRequest({ full: false, reasons: ['endpoints'], hosts: ['a'], start: 5 });
    const b = new PushRequest({ full: false, reasons: ['endpoints'], hosts: ['b'], cds: true, start: 7 });
    const m = b.merge(a);
    assert.equal(m.full, false);
    assert.equal(m.cds, true);
    assert.deepEqual([...m.hosts].sort(), ['a', 'b']);
    assert.equal(m.start, 5);
  });

  it('a connect has no start (nothing to measure convergence from) and its reason wins', () => {
    const m = CONNECT_REQUEST.merge(new PushRequest({ full: false, reasons: ['endpoints'], start: 3 }));
    assert.equal(m.start, 3);
    assert.equal(m.reason, 'connect');
    assert.equal(CONNECT_REQUEST.start, undefined);
    assert.equal(new PushRequest({ full: true, reasons: ['services', 'config'] }).reason, 'config');
  });
});
