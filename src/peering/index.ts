/** Cross-cluster peering, discovery only: the export feed, its subscribers, and their manager. See docs/decisions/0012-peering.md. */
export * from './wire.js';
export { PeeringExport, EXPORT_KEY, peeringMethodDefinition, type ExportSubscriber, type PeeringExportOptions } from './export.js';
export { PeerSubscriber, PEER_BACKOFF, type PeerState, type PeerStatus, type PeerSubscriberOptions, type RemoteClusterConfig, type SentRequests } from './subscriber.js';
export { PeeringManager, type NetworkGateways, type PeeringManagerOptions, type RemoteClusterStore } from './manager.js';
export { peerChannel, observeTlsFailures, describeServerTlsFailure, type PeerClientTls, type TlsFailure } from './tls.js';
export { controlPlaneSpiffeId, controlPlaneCluster, peerCertInfo } from './identity.js';
export { parseGatewayAddresses } from './gateways.js';
export { CentralServer, remoteExportMethod, type CentralServerOptions, type RemoteStatus } from './central.js';
export { CentralLink, type CentralLinkOptions, type CentralLinkStatus } from './centrallink.js';
export * from './centralwire.js';
