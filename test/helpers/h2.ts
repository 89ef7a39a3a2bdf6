/** An HTTP/2 client stream's whole answer: headers, trailers and body (tests, not a test file). */
import type http2 from 'node:http2';

export function h2Response(req: http2.ClientHttp2Stream): Promise<{ headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => (headers = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ headers, trailers, body: Buffer.concat(chunks) }));
    req.on('error', reject);
  });
}
