/**
 * TLS for the peering feed, both directions.
 *
 * Client: our root bundle is the only CA; our control plane's own certificate is the client
 * certificate (servercert.ts issues it with clientAuth); the server must be the control plane of
 * exactly the cluster the RemoteCluster names (identity.ts), checked in `checkServerIdentity`,
 * which Node calls only after the chain verified.
 *
 * Server: a failed handshake never reaches a gRPC handler, so without `observeTlsFailures` the
 * side that was refused would log nothing. grpc-js exposes no hook for it; we read its bound
 * HTTP/2 servers (a private field, checked defensively) and listen for `tlsClientError`.
 */
import * as grpc from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import { controlPlaneCluster, isUntrustedChainError } from './identity.js';
import { CONTROL_PLANE_NAME } from '../mesh/names.js';

export interface PeerClientTls {
  /** PEM of the roots we trust (root-cert.pem). */
  rootBundlePem: string;
  /** Our control plane's certificate chain (leaf + intermediate) and key. */
  certChainPem: string;
  keyPem: string;
  trustDomain: string;
}

export interface PeerChannel {
  credentials: grpc.ChannelCredentials;
  options: grpc.ChannelOptions;
}

/** Why the server's certificate was not the expected peer's (set by checkServerIdentity). */
export type IdentityFailureSink = (message: string) => void;

/**
 * `peerCluster` is the cluster the server must be; `{ notCluster }` accepts a control plane of
 * any other cluster of the mesh (the central control plane, whose name the remote learns from it).
 */
export function peerChannel(tls: PeerClientTls, peerCluster: string | { notCluster: string }, onIdentityFailure?: IdentityFailureSink): PeerChannel {
  const credentials = grpc.credentials.createSsl(Buffer.from(tls.rootBundlePem), Buffer.from(tls.keyPem), Buffer.from(tls.certChainPem), {
    checkServerIdentity: (_host: string, cert: PeerCertificate): Error | undefined => {
      const who = controlPlaneCluster(cert, tls.trustDomain);
      let why: string | undefined;
      if ('refusal' in who) why = `its ${who.refusal}`;
      else if (typeof peerCluster === 'string' && who.cluster !== peerCluster) why = `it is the control plane of cluster ${who.cluster}, not of ${peerCluster}`;
      else if (typeof peerCluster !== 'string' && who.cluster === peerCluster.notCluster) why = `it is the control plane of cluster ${who.cluster}, this cluster itself`;
      if (why === undefined) return undefined;
      onIdentityFailure?.(why);
      return Object.assign(new Error(why), { code: 'ERR_ISLE_PEER_IDENTITY' });
    },
  });
  return {
    credentials,
    options: {
      // The name the peer's certificate carries; addresses (and so IP SANs) vary by deployment.
      'grpc.ssl_target_name_override': typeof peerCluster === 'string' ? `${CONTROL_PLANE_NAME}.${peerCluster}` : CONTROL_PLANE_NAME,
      'grpc.default_authority': typeof peerCluster === 'string' ? `${CONTROL_PLANE_NAME}.${peerCluster}` : CONTROL_PLANE_NAME,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      // A WAN's bandwidth-delay product is far above HTTP/2's 64 KB default window: at 100 ms round
      // trip that window caps one feed at ~640 KB/s, and the central link carries three streams.
      'grpc-node.flow_control_window': 8 * 1024 * 1024,
      // Our own backoff decides when to retry; grpc-js' would hide the failure behind a wait.
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000,
    },
  };
}

export interface TlsFailure {
  remote: string;
  message: string;
}

/**
 * Calls `onFailure` for every TLS handshake that fails on `server`'s listeners (bound before this
 * call). Returns the detach function; a no-op if grpc-js' internals ever change shape.
 */
export function observeTlsFailures(server: grpc.Server, onFailure: (f: TlsFailure) => void): () => void {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map)) return () => {};
  // A TLS socket that failed its handshake has already lost its address; the TCP socket under it
  // (`_parent`) is seen first on 'connection'.
  const remotes = new WeakMap<object, string>();
  type Emitter = { on?: (e: string, l: (...a: never[]) => void) => void; off?: (e: string, l: (...a: never[]) => void) => void };
  const offs: (() => void)[] = [];
  for (const h of servers.keys()) {
    const emitter = h as Emitter;
    if (typeof emitter.on !== 'function') continue;
    const onConn = (raw: Socket) => {
      if (raw?.remoteAddress) remotes.set(raw, `${raw.remoteAddress}:${raw.remotePort ?? ''}`);
    };
    const onErr = (err: Error, socket: TLSSocket) => {
      const parent = (socket as unknown as { _parent?: object })?._parent;
      const remote = (parent && remotes.get(parent)) ?? (socket?.remoteAddress ? `${socket.remoteAddress}:${socket.remotePort ?? ''}` : 'an unknown address');
      onFailure({ remote, message: err?.message ?? String(err) });
    };
    emitter.on('connection', onConn);
    emitter.on('tlsClientError', onErr);
    offs.push(() => {
      emitter.off?.('connection', onConn);
      emitter.off?.('tlsClientError', onErr);
    });
  }
  return () => {
    for (const off of offs.splice(0)) off();
  };
}

/**
 * A sentence for the log of the side that saw a handshake fail. Node's TLS client verifies the
 * server's chain after the handshake and then just drops the connection (no alert), so "hang up"
 * during the handshake is what a client that does not trust us looks like from here.
 */
export function describeServerTlsFailure(f: TlsFailure): string {
  const m = f.message.toLowerCase();
  const detail = f.message.trim();
  if (/unknown ca|bad certificate|certificate unknown|decrypt error|socket hang up|econnreset/.test(m)) {
    return `TLS handshake from ${f.remote} failed (${detail}): the client gave up on our certificate, most likely a peer cluster or proxy under another root CA; peering clusters must share one root`;
  }
  return `TLS handshake from ${f.remote} failed: ${detail}`;
}

/**
 * One line for a failed feed stream (peering subscription or central link): who refused whom,
 * and for a foreign root, that clusters must share one. `identityFailure` is what
 * checkServerIdentity found, if anything.
 */
export function describeFeedError(
  where: string,
  e: grpc.ServiceError | undefined,
  identityFailure: string | undefined,
  words: { notWho: string; refused: string; shared: string } = { notWho: 'is not who the RemoteCluster says', refused: 'refused our subscription', shared: 'peering clusters' },
): string {
  if (!e) return `${where} closed the feed`;
  const details = e.details || e.message;
  if (identityFailure) return `${where} ${words.notWho}: ${identityFailure}`;
  if (e.code === grpc.status.PERMISSION_DENIED) return `${where} ${words.refused}: ${details}`;
  const cause = details
    .replace(/^No connection established\.\s*Last error:\s*/i, '')
    .replace(/^Error:\s*/, '')
    .replace(/\.?\s*Resolution note:\s*$/, '');
  if (e.code === grpc.status.UNAVAILABLE && isUntrustedChainError(details)) {
    return `${where} presented a certificate not signed by our root (${cause}); ${words.shared} must share one root CA`;
  }
  return `${where}: ${grpc.status[e.code] ?? e.code}: ${cause}`;
}
