/**
 * The one `host:port` parser. Lives in config (the lowest layer that needs it: MeshConfig and
 * RemoteCluster addresses are validated here) so mesh, peering, the proxy, the control plane and
 * the CLI all read addresses the same way. IPv6 hosts are bracketed (`[fd00::1]:15443`); a bare
 * IPv6 address is refused because its last group cannot be told apart from a port.
 */
export interface HostPort {
  /** Without brackets. */
  readonly host: string;
  readonly port: number;
}

export interface HostPortOptions {
  /** Makes `:port` optional; the port used when it is missing. */
  defaultPort?: number;
  /** Accept port 0 ("pick a free one", for listen addresses). */
  allowZero?: boolean;
}

const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[^:\s[\]/]+)(?::(\d{1,5}))?$/;

/** `host:port` or `[v6]:port` → parts; undefined when malformed or the port is out of range. */
export function parseHostPort(text: string, opts: HostPortOptions = {}): HostPort | undefined {
  const m = HOST_PORT.exec(text.trim());
  if (!m) return undefined;
  if (m[2] === undefined && opts.defaultPort === undefined) return undefined;
  const port = m[2] !== undefined ? Number(m[2]) : opts.defaultPort!;
  if (port > 65535 || port < (opts.allowZero ? 0 : 1)) return undefined;
  const host = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
  if (host === '') return undefined;
  return { host, port };
}

/** The inverse: brackets an IPv6 host. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
