/**
 * The control plane's gRPC ports, listened on by Isle instead of by grpc-js (ADR 0142). grpc-js'
 * `bindAsync` listens with node's default backlog (511), and when a whole mesh reconnects at once
 * (2,000 proxies after a restart or a replica's death) the accept queue overflows while the
 * control plane is busy with TLS handshakes: the kernel resets a fifth of the connections, and
 * those proxies lose their back-off's worth of time. Here a plain `net.Server` listens with a
 * backlog the kernel caps at `net.core.somaxconn`, and hands every accepted socket to grpc-js
 * through its connection injector, which runs TLS and HTTP/2 exactly as for a bound port (the
 * port guard and the TLS-failure observer see the same server events).
 */
import { createServer, type Server, type Socket } from 'node:net';
import type * as grpc from '@grpc/grpc-js';
import { formatHostPort } from '../config/hostport.js';
import { IsleError } from '../errors.js';

/** Asked of listen(2); Linux caps it at net.core.somaxconn (4096 by default since 5.4). */
export const GRPC_LISTEN_BACKLOG = 4096;

export interface GrpcListener {
  /** host:port actually bound (port 0 resolved). */
  address: string;
  /** Stops accepting; grpc-js' shutdown closes the connections it was handed. */
  close(): void;
}

export function listenGrpc(
  server: grpc.Server,
  host: string,
  port: number,
  creds: grpc.ServerCredentials,
  what: string,
  onAcceptError: (e: Error) => void,
): Promise<GrpcListener> {
  const injector = server.createConnectionInjector(creds);
  const listener: Server = createServer((socket: Socket) => injector.injectConnection(socket));
  const addr = formatHostPort(host, port);
  return new Promise((resolve, reject) => {
    const failed = (err: NodeJS.ErrnoException): void => {
      injector.destroy();
      const inUse = err.code === 'EADDRINUSE';
      reject(new IsleError('ERR_USAGE', `cannot listen on ${addr} (${what}): ${inUse ? 'address already in use' : err.message}`));
    };
    listener.once('error', failed);
    listener.listen({ host, port, backlog: GRPC_LISTEN_BACKLOG }, () => {
      listener.off('error', failed);
      // After listen, errors are per-accept (EMFILE and the like): the port stays open.
      listener.on('error', onAcceptError);
      const bound = listener.address();
      const boundPort = typeof bound === 'object' && bound ? bound.port : port;
      resolve({
        address: formatHostPort(host, boundPort),
        close: () => {
          listener.close();
          injector.destroy();
        },
      });
    });
  });
}
