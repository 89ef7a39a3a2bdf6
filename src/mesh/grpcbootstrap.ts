/**
 * The bootstrap file of a proxyless gRPC client (gRPC's `GRPC_XDS_BOOTSTRAP`), Istio's shape:
 * the control plane's xDS address, a node in Istio's id format whose metadata says
 * `GENERATOR: grpc` (so the control plane serves it grpcgen's resources, ADR 0055), and, when
 * certificate files are given, a `file_watcher` certificate provider named `default` that
 * ISTIO_MUTUAL clusters refer to.
 */
import { isIP } from 'node:net';
import { IsleError } from '../errors.js';
import { formatProxyId } from './proxyid.js';

export interface GrpcBootstrapOptions {
  /** host:port of the control plane's xDS listener (grpc-js-xds speaks plaintext or google_default only). */
  xdsAddress: string;
  namespace: string;
  serviceAccount: string;
  /** The client's address (the node id carries one); default 127.0.0.1. */
  ip?: string;
  /** The workload name in the node id; default the service account. */
  workload?: string;
  domainSuffix?: string;
  labels?: Readonly<Record<string, string>>;
  network?: string;
  cluster?: string;
  /** Files of the workload certificate, its key and the root bundle, for the `default` provider. */
  certs?: { certificateFile: string; privateKeyFile: string; caCertificateFile: string; refreshInterval?: string };
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function check(ok: boolean, field: string, message: string): void {
  if (!ok) throw new IsleError('ERR_USAGE', `grpc bootstrap: ${field}: ${message}`);
}

export function grpcBootstrap(o: GrpcBootstrapOptions): Record<string, unknown> {
  check(DNS_LABEL.test(o.namespace), '--namespace', `${JSON.stringify(o.namespace)} is not a DNS label`);
  check(DNS_LABEL.test(o.serviceAccount), '--service-account', `${JSON.stringify(o.serviceAccount)} is not a DNS label`);
  const ip = o.ip ?? '127.0.0.1';
  check(isIP(ip) !== 0, '--ip', `${JSON.stringify(ip)} is not an IP address`);
  check(/^[^\s/]+:\d{1,5}$/.test(o.xdsAddress), '--xds-address', `${JSON.stringify(o.xdsAddress)} is not host:port`);
  const metadata: Record<string, unknown> = {
    GENERATOR: 'grpc',
    NAMESPACE: o.namespace,
    SERVICE_ACCOUNT: o.serviceAccount,
    INSTANCE_IPS: ip,
  };
  if (o.labels && Object.keys(o.labels).length > 0) metadata['LABELS'] = { ...o.labels };
  if (o.network) metadata['NETWORK'] = o.network;
  if (o.cluster) metadata['CLUSTER_ID'] = o.cluster;
  const out: Record<string, unknown> = {
    xds_servers: [{ server_uri: o.xdsAddress, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: {
      id: formatProxyId('sidecar', ip, o.workload ?? o.serviceAccount, o.namespace, o.domainSuffix ?? 'cluster.local'),
      metadata,
      locality: {},
    },
  };
  if (o.certs) {
    out['certificate_providers'] = {
      default: {
        plugin_name: 'file_watcher',
        config: {
          certificate_file: o.certs.certificateFile,
          private_key_file: o.certs.privateKeyFile,
          ca_certificate_file: o.certs.caCertificateFile,
          refresh_interval: o.certs.refreshInterval ?? '300s',
        },
      },
    };
  }
  return out;
}
