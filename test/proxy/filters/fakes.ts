/** A fake downstream exchange and canned upstream responses for filter-chain tests without sockets. */
import type { Downstream } from '../../../src/proxy/filters/context.js';
import type { Headers } from '../../../src/proxy/http1/head.js';
import type { ExchangeOwner, ResponseFraming } from '../../../src/proxy/http1/server.js';
import type { AttemptOutcome, UpstreamResponse } from '../../../src/proxy/upstream/pool.js';

export class FakeDownstream implements Downstream {
  method = 'GET';
  headersSent = false;
  gone = false;
  requestComplete = true;
  contentLength: number | undefined = 0;
  remoteAddress = '10.1.2.3';
  owner: ExchangeOwner | null = null;
  status = 0;
  headers: Headers = {};
  body = '';
  ended = false;
  readBody(): Promise<Buffer> {
    return Promise.resolve(Buffer.alloc(0));
  }
  bodyStream(): never {
    throw new Error('no body in these tests');
  }
  discardBody(): void {}
  respond(status: number, headers: Headers, body: string | Buffer): void {
    const b = Buffer.from(body);
    this.writeHead(status, undefined, headers, { kind: 'length', length: b.length });
    this.end(b);
  }
  writeHead(status: number, _reason: string | undefined, headers: Headers, _f: ResponseFraming): void {
    this.headersSent = true;
    this.status = status;
    this.headers = headers;
  }
  write(chunk: Buffer): boolean {
    this.body += chunk.toString();
    return true;
  }
  end(chunk?: Buffer): void {
    if (chunk) this.write(chunk);
    this.ended = true;
    const o = this.owner;
    this.owner = null;
    o?.responseFinished();
  }
  reset(): void {
    this.gone = true;
  }
  /** The client goes away. */
  close(): void {
    this.gone = true;
    const o = this.owner;
    this.owner = null;
    o?.downstreamClosed();
  }
}

export function response(status: number, body = `status ${status}`): AttemptOutcome {
  const r: UpstreamResponse = {
    status,
    statusMessage: '',
    headers: { 'content-length': String(body.length), 'x-up': 'yes' },
    framing: { kind: 'length', length: body.length },
    peerId: undefined,
    secure: false,
    pipe(sink) {
      sink.data(Buffer.from(body));
      sink.end();
    },
    resume() {},
    flow() {},
    destroy() {},
    async *[Symbol.asyncIterator]() {
      yield Buffer.from(body);
    },
  };
  return { kind: 'response', status, response: r };
}

