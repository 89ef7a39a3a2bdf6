/**
 * The destination a connection had before iptables REDIRECT rewrote it: `getsockopt(fd, SOL_IP,
 * SO_ORIGINAL_DST)`, which returns a `sockaddr_in`. Node has no API for it; Isle calls libc's
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

/** The socket's file descriptor (libuv's handle), or undefined once closed or for a TLS wrapper. */
export function socketFd(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * The original destination of an accepted IPv4 socket. A connection that was not redirected
 * gives its own local address (conntrack knows it, unrewritten); undefined when conntrack has no
 * entry (ENOENT) or the socket has no fd.
 */
export function originalDst(socket: Socket): OriginalDst | undefined {
  const fd = socketFd(socket);
  if (fd === undefined) return undefined;
  const getsockopt = load();
  const val = Buffer.alloc(SOCKADDR_IN_SIZE);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(SOCKADDR_IN_SIZE);
  if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, val, len) !== 0) return undefined;
  return decodeSockaddrIn(val);
}
