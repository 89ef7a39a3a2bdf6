/**
 * A loopback xDS relay for proxyless gRPC clients, as istio-agent does for them: grpc-js-xds has
 * no TLS channel credentials, so the client speaks plaintext ADS to this relay on loopback, and
 * the relay carries each stream to the control plane's mTLS port with the workload certificate.
 * The control plane then checks the node against that certificate like any proxy's (auth.ts), so
 * the relay adds no trust of its own: it forwards bytes, never decodes or alters them.
 *
 * Each stream opens its own upstream channel with the credentials current at that moment, so a
 * renewed certificate is used from the next stream on (gRPC clients reconnect on their own).
 */
import * as grpc from '@grpc/grpc-js';
import { ADS_SERVICE, DELTA_METHOD, SOTW_METHOD } from '../xds/ads.js';

export interface XdsRelayOptions {
  /** The control plane's mTLS xDS address. */
  upstream: string;
  /** Credentials presenting the current workload certificate. */
  credentials: () => grpc.ChannelCredentials;
  channelOptions?: grpc.ChannelOptions;
  /** host:port on loopback (the relay authenticates nobody: whoever reaches it speaks for the workload). */
  listen: string;
}

export interface XdsRelay {
  readonly address: string;
  close(): void;
}

const same = (b: Buffer): Buffer => b;

function relayStream(o: XdsRelayOptions, path: string, down: grpc.ServerDuplexStream<Buffer, Buffer>): void {
  const client = new grpc.Client(o.upstream, o.credentials(), o.channelOptions);
  const up = client.makeBidiStreamRequest(path, same, same, down.metadata);
  let done = false;
  const finish = (): void => {
    if (done) return;
    done = true;
    client.close();
  };
  down.on('data', (b: Buffer) => up.write(b));
  down.on('end', () => up.end());
  down.on('cancelled', () => {
    up.cancel();
    finish();
  });
  down.on('error', () => {
    up.cancel();
    finish();
  });
  up.on('data', (b: Buffer) => down.write(b));
  up.on('error', (e: grpc.ServiceError) => {
    // The control plane's status (PERMISSION_DENIED, UNAVAILABLE…) reaches the client as it is.
    down.emit('error', { code: e.code, details: e.details, metadata: e.metadata });
    finish();
  });
  up.on('end', () => {
    if (!done) down.end();
    finish();
  });
}

export async function startXdsRelay(o: XdsRelayOptions): Promise<XdsRelay> {
  const server = new grpc.Server();
  for (const method of [SOTW_METHOD, DELTA_METHOD]) {
    const path = `/${ADS_SERVICE}/${method}`;
    server.register(path, (call: grpc.ServerDuplexStream<Buffer, Buffer>) => relayStream(o, path, call), same, same, 'bidi');
  }
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(o.listen, grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  const host = o.listen.slice(0, o.listen.lastIndexOf(':'));
  return { address: `${host}:${port}`, close: () => server.forceShutdown() };
}
