import type * as net from 'node:net';

/** Binds a listener's server; rejects with the bind error (EADDRINUSE…) instead of emitting it. */
export function listenOn(server: net.Server, port: number, address: string, opts: { ipv6Only?: boolean } = {}): Promise<net.AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host: address, ...(opts.ipv6Only ? { ipv6Only: true } : {}) }, () => {
      server.off('error', reject);
      resolve(server.address() as net.AddressInfo);
    });
  });
}
