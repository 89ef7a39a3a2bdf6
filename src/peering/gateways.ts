/** `--east-west-gateway 10.0.0.5:15443,gw.example:15443` style lists. */
import type { GatewayAddress } from '../model/pushcontext.js';
import { EAST_WEST_PORT } from '../generate/network.js';
import { parseHostPort } from '../config/hostport.js';

/** Comma-separated `host[:port]` (port default 15443; `[v6]:port` for IPv6). Throws with the bad entry. */
export function parseGatewayAddresses(list: string | readonly string[]): GatewayAddress[] {
  const items = (typeof list === 'string' ? list.split(',') : list).map((s) => s.trim()).filter((s) => s !== '');
  return items.map((item) => {
    const hp = parseHostPort(item, { defaultPort: EAST_WEST_PORT });
    if (!hp) throw new Error(`invalid east-west gateway address ${JSON.stringify(item)} (use host:port, e.g. 10.0.0.5:15443)`);
    return { address: hp.host, port: hp.port };
  });
}
