/**
 * Where a proxy finds its control plane: one `host:port`, or several replicas as
 * `host:port,host:port…`. Several IP addresses become one gRPC target (`ipv4:a:p,b:p`): the
 * channel connects to the first that answers (pick_first), and after a replica dies the next
 * connection attempt goes to one that is alive. A DNS name that resolves to several addresses
 * works the same way on its own (gRPC's dns resolver).
 */
import { isIP } from 'node:net';
import { formatHostPort, parseHostPort } from '../config/hostport.js';
import { IsleError } from '../errors.js';

/** `--control-plane` value → a gRPC target; throws ERR_USAGE naming the bad part. */
export function controlPlaneTarget(value: string, flag = '--control-plane'): string {
  const parts = value.split(',').map((s) => s.trim());
  const hosts = parts.map((p) => {
    const hp = parseHostPort(p);
    if (!hp) throw new IsleError('ERR_USAGE', `${flag}: invalid address ${JSON.stringify(p)} (use host:port, or several as host:port,host:port)`);
    return { host: hp.host, hostPort: formatHostPort(hp.host, hp.port) };
  });
  if (hosts.length === 1) return hosts[0]!.hostPort;
  const family = new Set(hosts.map((h) => isIP(h.host)));
  if (family.has(0) || family.size > 1) {
    throw new IsleError('ERR_USAGE', `${flag}: several control planes must all be IPv4 or all IPv6 addresses (or give one DNS name that resolves to every replica)`);
  }
  return `${family.has(4) ? 'ipv4' : 'ipv6'}:${hosts.map((h) => h.hostPort).join(',')}`;
}
