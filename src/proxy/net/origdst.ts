/**
 * The destination a connection had before iptables REDIRECT rewrote it: `getsockopt(fd, SOL_IP,
 * SO_ORIGINAL_DST)`, which returns a `sockaddr_in` (IPv6 sockets redirected by ip6tables:
 * `getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST)`, a `sockaddr_in6`). Node has no API for it; Isle calls libc's
 * getsockopt through koffi (an FFI package with prebuilt binaries, no compiler needed), on the
 * socket's file descriptor (ADR 0070). koffi is loaded on first use, so a proxy without capture
 * never loads it.
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

const SOL_IP = 0;
const SO_ORIGINAL_DST = 80;
const SOCKADDR_IN_SIZE = 16;
const AF_INET = 2;
const SOL_IPV6 = 41;
/** linux/netfilter_ipv6/ip6_tables.h: the same number as SO_ORIGINAL_DST, at the IPv6 level. */
const IP6T_SO_ORIGINAL_DST = 80;
const SOCKADDR_IN6_SIZE = 28;
const AF_INET6 = 10;

export interface OriginalDst {
  address: string;
  port: number;
}

type GetSockOpt = (fd: number, level: number, name: number, val: Buffer, len: Buffer) => number;

let native: GetSockOpt | undefined;

function load(): GetSockOpt {
  if (native) return native;
  const koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
  const libc = koffi.load('libc.so.6');
  native = libc.func('int getsockopt(int fd, int level, int optname, void *optval, void *optlen)') as GetSockOpt;
  return native;
}

/** Decodes a `struct sockaddr_in` (family in host order, port and address in network order). */
export function decodeSockaddrIn(b: Buffer): OriginalDst | undefined {
  if (b.length < 8 || b.readUInt16LE(0) !== AF_INET) return undefined;
  return { port: b.readUInt16BE(2), address: `${b[4]}.${b[5]}.${b[6]}.${b[7]}` };
}

/** Decodes a `struct sockaddr_in6` (family in host order; port, address in network order). */
export function decodeSockaddrIn6(b: Buffer): OriginalDst | undefined {
  if (b.length < 24 || b.readUInt16LE(0) !== AF_INET6) return undefined;
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(8 + i * 2).toString(16));
  // Canonical text (RFC 5952) through the URL parser: `fd00:0:0:0:0:0:0:2` → `fd00::2`.
  const address = new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
  return { port: b.readUInt16BE(2), address };
}

/** The socket's file descriptor (libuv's handle), or undefined once closed or for a TLS wrapper. */
export function socketFd(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * The original destination of an accepted socket (IPv4, or IPv6 redirected by ip6tables). A
 * connection that was not redirected gives its own local address (conntrack knows it,
 * unrewritten); undefined when conntrack has no entry (ENOENT) or the socket has no fd.
 */
export function originalDst(socket: Socket): OriginalDst | undefined {
  const fd = socketFd(socket);
  if (fd === undefined) return undefined;
  const getsockopt = load();
  // An IPv4 client on a dual-stack socket (`::ffff:a.b.c.d`) is IPv4 to conntrack.
  const v6 = socket.localFamily === 'IPv6' && !(socket.localAddress ?? '').startsWith('::ffff:');
  const size = v6 ? SOCKADDR_IN6_SIZE : SOCKADDR_IN_SIZE;
  const val = Buffer.alloc(size);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(size);
  if (getsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, v6 ? IP6T_SO_ORIGINAL_DST : SO_ORIGINAL_DST, val, len) !== 0) return undefined;
  return v6 ? decodeSockaddrIn6(val) : decodeSockaddrIn(val);
}
