/**
 * Istio's virtualInbound for captured traffic: iptables sends every inbound TCP connection to
 * 15006, and the original destination port picks the inbound listener Isle already runs for that
 * port (mTLS, PeerAuthentication, AuthorizationPolicy exactly as when it is dialed directly). A
 * port no inbound listener serves goes to the workload unchanged, from 127.0.0.6 so the capture
 * rules let it through (istio-iptables' InboundPassthroughCluster).
 */
import net from 'node:net';
import { listenOn } from '../net/listen.js';
import { drain, InflightTracker, SocketSet, type DrainOptions, type DrainResult } from '../net/drain.js';
import { originalDst } from '../net/origdst.js';
import type { ListenerDeps } from './context.js';
import { connect, splice } from './tcp.js';

export const INBOUND_PASSTHROUGH_SOURCE = '127.0.0.6';
export const CAPTURE_INBOUND_NAME = 'virtualInbound';

export interface InboundTarget {
  accept(socket: net.Socket): void;
}

export class CaptureInboundListener {
  private readonly server: net.Server;
  private readonly sockets = new SocketSet();

  constructor(
    private readonly address: string,
    private readonly port: number,
    private readonly deps: ListenerDeps,
    private readonly lookup: (port: number) => InboundTarget | undefined,
  ) {
    this.server = net.createServer({ noDelay: true }, (s) => this.onConnection(s));
  }

  private onConnection(s: net.Socket): void {
    s.on('error', () => s.destroy());
    this.sockets.add(s);
    const label = { listener: CAPTURE_INBOUND_NAME };
    const dst = originalDst(s);
    if (!dst || (dst.port === this.port && dst.address === s.localAddress)) {
      this.deps.stats.downstreamCxRejected.inc({ ...label, reason: 'not_redirected' });
      return void s.destroy();
    }
    const target = this.lookup(dst.port);
    if (target) return target.accept(s);
    s.pause();
    void connect(dst, 10_000, undefined, INBOUND_PASSTHROUGH_SOURCE).then((up) => {
      if (!up) {
        this.deps.stats.downstreamCxRejected.inc({ ...label, reason: 'passthrough_connect_failure' });
        return void s.destroy();
      }
      splice(s, up, undefined, {}, 0);
    });
  }

  listen(): Promise<net.AddressInfo> {
    return listenOn(this.server, this.port, this.address);
  }

  drain(opts?: DrainOptions): Promise<DrainResult> {
    return drain({ servers: [this.server], sockets: this.sockets, inflight: new InflightTracker() }, opts);
  }
}
