/** isle-mux/1 framing (ADR 0138): frames survive any split into reads; bad input is refused. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dataHeader, FLAG_END, FrameReader, FrameType, HEADER_BYTES, MAX_PAYLOAD, parsePreface, parseU32Frame, prefaceFrame, textDataFrames, textFrame, u32Frame } from '../../../src/proxy/mux/frame.js';

interface Seen {
  type: number;
  flags: number;
  id: number;
  payload: string;
}

function collect(): { seen: Seen[]; reader: FrameReader } {
  const seen: Seen[] = [];
  const reader = new FrameReader({ frame: (type, flags, id, payload) => void seen.push({ type, flags, id, payload: payload.toString('latin1') }) });
  return { seen, reader };
}

const HEAD = 'GET /x HTTP/1.1\r\nhost: a\r\n\r\n';
const stream = (): Buffer =>
  Buffer.concat([
    prefaceFrame(256 * 1024),
    textFrame(FrameType.Request, 0, 1, HEAD),
    dataHeader(1, 5, true),
    Buffer.from('hello'),
    textDataFrames(FrameType.Response, 3, 'HTTP/1.1 200 OK\r\n\r\n', Buffer.from('body'), true),
    u32Frame(FrameType.Reset, 5, 1, 'why'),
    textFrame(FrameType.Data, FLAG_END, 7, ''),
  ]);

const EXPECTED: Seen[] = [
  { type: FrameType.Preface, flags: 0, id: 0, payload: 'isle-mux/1\n\u0000\u0004\u0000\u0000' },
  { type: FrameType.Request, flags: 0, id: 1, payload: HEAD },
  { type: FrameType.Data, flags: FLAG_END, id: 1, payload: 'hello' },
  { type: FrameType.Response, flags: 0, id: 3, payload: 'HTTP/1.1 200 OK\r\n\r\n' },
  { type: FrameType.Data, flags: FLAG_END, id: 3, payload: 'body' },
  { type: FrameType.Reset, flags: 0, id: 5, payload: '\u0000\u0000\u0000\u0001why' },
  { type: FrameType.Data, flags: FLAG_END, id: 7, payload: '' },
];

test('frames come out the same whether read at once, byte by byte, or in uneven pieces', () => {
  const all = stream();
  for (const sizes of [[all.length], [1], [3, 7, 11], [HEADER_BYTES - 1, HEADER_BYTES + 1], [40, 2]]) {
    const { seen, reader } = collect();
    let at = 0;
    let i = 0;
    while (at < all.length) {
      const n = sizes[i++ % sizes.length]!;
      assert.equal(reader.feed(all.subarray(at, at + n)), undefined);
      at += n;
    }
    assert.deepEqual(seen, EXPECTED, `pieces of ${sizes.join(',')}`);
  }
});

test('a frame larger than the limit is a connection error; a sink error stops reading', () => {
  const { reader } = collect();
  const h = dataHeader(1, MAX_PAYLOAD + 1, false);
  assert.match(reader.feed(h) ?? '', /larger than/);
  const stop = new FrameReader({ frame: (type) => (type === FrameType.Request ? 'no' : undefined) });
  assert.equal(stop.feed(stream()), 'no');
});

test('preface and u32 payloads', () => {
  assert.equal(parsePreface(prefaceFrame(1234).subarray(HEADER_BYTES)), 1234);
  assert.equal(parsePreface(Buffer.from('GET / HTTP/1.1\r\n')), undefined);
  assert.deepEqual(parseU32Frame(u32Frame(FrameType.GoAway, 0, 9, 'draining').subarray(HEADER_BYTES)), { value: 9, reason: 'draining' });
  assert.equal(parseU32Frame(Buffer.alloc(2)), undefined);
});
