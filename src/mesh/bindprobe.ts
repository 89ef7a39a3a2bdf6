/**
 * Whether an address can be bound here now: what `isle demo` checks before it starts anything and
 * what `isle x precheck --listen` reports. Binding and closing at once sends no traffic.
 */
import { createServer, isIP } from 'node:net';
import { parseHostPort } from '../config/hostport.js';

/** Undefined when `addr` (host:port) can be bound; else why not, in words. */
export function bindProblem(addr: string): Promise<string | undefined> {
  const hp = parseHostPort(addr, { allowZero: false });
  if (!hp) return Promise.resolve('not host:port');
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', (e: NodeJS.ErrnoException) =>
      resolve(
        e.code === 'EADDRINUSE'
          ? 'already in use'
          : e.code === 'EADDRNOTAVAIL'
            ? 'not an address of this machine (on macOS: sudo ifconfig lo0 alias <ip>)'
            : e.code === 'EACCES'
              ? 'permission denied (a port below 1024 needs root)'
              : e.message,
      ),
    );
    s.listen(hp.port, hp.host, () => s.close(() => resolve(undefined)));
  });
}

/**
 * Where a proxy with workload address `ip` binds its own listeners. In universal mode many proxies
 * share one host's loopback, each with its own 127.x address, so `0.0.0.0:15001` would collide: a
 * loopback proxy binds its own address. Anywhere else (a pod, a VM) it binds the wildcard.
 */
export function proxyBindHost(ip: string): string {
  if (isIP(ip) === 4 && ip.startsWith('127.')) return ip;
  if (ip === '::1') return ip;
  return isIP(ip) === 6 ? '::' : '0.0.0.0';
}
