/** Trace context headers: W3C and B3 parsed, malformed ones ignored (a new trace), injected back. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bareSamplingDecision, extractContext, IdSource, injectContext, parseTraceparent } from '../../../src/proxy/tracing/context.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

test('traceparent: the W3C examples parse; every malformed form is as if absent', () => {
  assert.deepEqual(parseTraceparent(`00-${TRACE}-${SPAN}-01`), { traceId: TRACE, spanId: SPAN, sampled: true });
  assert.deepEqual(parseTraceparent(`00-${TRACE}-${SPAN}-00`), { traceId: TRACE, spanId: SPAN, sampled: false });
  // A future version may append fields.
  assert.deepEqual(parseTraceparent(`01-${TRACE}-${SPAN}-03-extra`), { traceId: TRACE, spanId: SPAN, sampled: true });
  for (const bad of [
    '',
    'garbage',
    `00-${TRACE}-${SPAN}`,
    `00-${TRACE}-${SPAN}-01-extra`, // version 00 has exactly four fields
    `ff-${TRACE}-${SPAN}-01`,
    `00-${'0'.repeat(32)}-${SPAN}-01`,
    `00-${TRACE}-${'0'.repeat(16)}-01`,
    `00-${TRACE.toUpperCase()}-${SPAN}-01`,
    `00-${TRACE.slice(1)}x-${SPAN}-01`,
    `00_${TRACE}_${SPAN}_01`,
    `00-${TRACE}-${SPAN}-zz`,
  ]) {
    assert.equal(parseTraceparent(bad), undefined, bad);
  }
});

test('extract: W3C wins; B3 single and multi; malformed W3C falls back to B3 or to nothing', () => {
  assert.deepEqual(extractContext({ traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: 'a=1' }), {
    traceId: TRACE, parentSpanId: SPAN, sampled: true, traceState: 'a=1', b3: undefined, b3TraceId64: false,
  });
  assert.deepEqual(extractContext({ tracestate: ['a=1', 'b=2'], traceparent: `00-${TRACE}-${SPAN}-00` })?.traceState, 'a=1,b=2');
  const single = extractContext({ b3: `${TRACE}-${SPAN}-1` });
  assert.deepEqual(single, { traceId: TRACE, parentSpanId: SPAN, sampled: true, traceState: undefined, b3: 'single', b3TraceId64: false });
  const single64 = extractContext({ b3: `a1b2c3d4e5f60718-${SPAN}` });
  assert.equal(single64?.traceId, '0000000000000000a1b2c3d4e5f60718');
  assert.equal(single64?.sampled, undefined, 'no sampling state: the proxy decides');
  assert.equal(single64?.b3TraceId64, true);
  const multi = extractContext({ 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-sampled': '0' });
  assert.equal(multi?.b3, 'multi');
  assert.equal(multi?.sampled, false);
  assert.equal(extractContext({ 'x-b3-traceid': TRACE, 'x-b3-spanid': SPAN, 'x-b3-flags': '1' })?.sampled, true, 'debug flag samples');
  assert.equal(extractContext({ traceparent: 'broken', b3: `${TRACE}-${SPAN}-0` })?.b3, 'single');
  const bad: Record<string, string | string[]>[] = [{ traceparent: 'broken' }, { b3: 'nonsense' }, { b3: `${TRACE}-${SPAN}-x` }, { 'x-b3-traceid': 'xyz', 'x-b3-spanid': SPAN }, { 'x-b3-traceid': TRACE }, { traceparent: ['a', 'b'] }];
  for (const h of bad) {
    assert.equal(extractContext(h), undefined, JSON.stringify(h));
  }
  assert.equal(bareSamplingDecision({ b3: '0' }), false);
  assert.equal(bareSamplingDecision({ 'x-b3-sampled': '1' }), true);
  assert.equal(bareSamplingDecision({}), undefined);
});

test('inject: our span becomes the parent, in W3C and in the B3 form that came in', () => {
  const out = { traceId: TRACE, spanId: '1111111111111111', sampled: true };
  const w3c: Record<string, string> = { traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: 'vendor=x' };
  injectContext(w3c, out, extractContext(w3c));
  assert.deepEqual(w3c, { traceparent: `00-${TRACE}-1111111111111111-01`, tracestate: 'vendor=x' });

  const single: Record<string, string> = { b3: `${TRACE}-${SPAN}-1` };
  injectContext(single, out, extractContext(single));
  assert.equal(single['b3'], `${TRACE}-1111111111111111-1-${SPAN}`);
  assert.equal(single['traceparent'], `00-${TRACE}-1111111111111111-01`);

  const multi: Record<string, string> = { 'x-b3-traceid': 'a1b2c3d4e5f60718', 'x-b3-spanid': SPAN, 'x-b3-sampled': '1' };
  const inc = extractContext(multi);
  injectContext(multi, { traceId: inc!.traceId, spanId: '2222222222222222', sampled: false }, inc);
  assert.deepEqual(multi, {
    'x-b3-traceid': 'a1b2c3d4e5f60718',
    'x-b3-spanid': '2222222222222222',
    'x-b3-parentspanid': SPAN,
    'x-b3-sampled': '0',
    traceparent: '00-0000000000000000a1b2c3d4e5f60718-2222222222222222-00',
  });

  // A new trace: W3C only, and a stale tracestate is not passed on.
  const none: Record<string, string> = { tracestate: 'orphan=1' };
  injectContext(none, out, undefined);
  assert.deepEqual(none, { traceparent: `00-${TRACE}-1111111111111111-01` });
});

test('ids: 16/32 hex digits from a pooled buffer, never all zero', () => {
  let fills = 0;
  const zeros = new IdSource((b) => {
    fills++;
    // The first fill is all zeros (rejected), then real bytes.
    if (fills === 1) b.fill(0);
    else for (let i = 0; i < b.length; i++) b[i] = (i * 7 + 1) & 0xff;
  });
  const s = zeros.spanId();
  assert.match(s, /^[0-9a-f]{16}$/);
  assert.notEqual(s, '0'.repeat(16));
  const ids = new IdSource();
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) seen.add(ids.traceId());
  assert.equal(seen.size, 1000);
  for (const t of seen) assert.match(t, /^[0-9a-f]{32}$/);
});

test('uuid: version 4 and the RFC 9562 variant over the pooled bytes, formatted as randomUUID does', () => {
  const fixed = new IdSource((b) => b.fill(0xff));
  assert.equal(fixed.uuid(), 'ffffffff-ffff-4fff-bfff-ffffffffffff');
  const zero = new IdSource((b) => b.fill(0));
  assert.equal(zero.uuid(), '00000000-0000-4000-8000-000000000000');
  const ids = new IdSource();
  const seen = new Set<string>();
  // More than one pool's worth (4,096 bytes = 256 ids): the refill path too.
  for (let i = 0; i < 1000; i++) seen.add(ids.uuid());
  assert.equal(seen.size, 1000);
  for (const u of seen) assert.match(u, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});
