/**
 * The outbound listener on `<bind>:15001`: the app's explicit HTTP proxy (HTTP_PROXY, curl -x).
 * Plain HTTP/1.1, no inspection: accepted connections go straight to the HTTP codec, and every
 * request goes through the listener's one HTTP connection manager, which routes on the
 * absolute-form authority or the Host header through the RDS config the listener names.
 */
import net, { type AddressInfo } from 'node:net';
import { listenOn } from '../net/listen.js';
import type { ListenerModel } from '../model.js';
import { drain, InflightTracker, type DrainOptions, type DrainResult } from '../net/drain.js';
import type { ListenerDeps } from './context.js';
import { createHcmServer, type ConnInfo } from './http.js';

export class OutboundListener {
  private model: ListenerModel;
  private info: ConnInfo;
  private readonly inflight = new InflightTracker();
  private readonly server: net.Server;
  private readonly http;

  constructor(model: ListenerModel, private readonly deps: ListenerDeps) {
    this.model = model;
    this.info = OutboundListener.connInfo(model);
    this.http = createHcmServer({ deps, connInfo: () => this.info, inflight: this.inflight });
    this.server = net.createServer({ noDelay: true }, (s) => {
      s.on('error', () => s.destroy());
      const label = { listener: this.model.name };
      deps.stats.downstreamCxTotal.inc(label);
      deps.stats.downstreamCxActive.inc(label);
      s.once('close', () => deps.stats.downstreamCxActive.dec(label));
      this.http.serve(s);
    });
  }

  private static connInfo(model: ListenerModel): ConnInfo {
    const chain = model.filterChains.find((c) => c.filter.kind === 'http' && !c.tls) ?? model.defaultFilterChain;
    if (!chain || chain.filter.kind !== 'http' || chain.tls) {
      throw new Error(`listener ${model.name}: the outbound proxy listener needs a plaintext HTTP connection manager chain`);
    }
    return { listener: model.name, direction: 'OUTBOUND', chain, hcm: chain.filter.hcm, mtls: false, peerId: undefined, peerCertHash: undefined, ownId: undefined, destinationPort: model.port };
  }

  get name(): string {
    return this.model.name;
  }

  update(model: ListenerModel): void {
    this.info = OutboundListener.connInfo(model);
    this.model = model;
  }

  listen(): Promise<AddressInfo> {
    return listenOn(this.server, this.model.port, this.model.address);
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  drain(opts?: DrainOptions): Promise<DrainResult> {
    return drain({ servers: [this.server], http: [this.http], inflight: this.inflight }, opts);
  }
}
