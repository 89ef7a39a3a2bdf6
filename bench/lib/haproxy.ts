/**
 * A pair of haproxy processes with mutual TLS between them: the native "two sidecars with mTLS"
 * reference. Certificates come from openssl (a throwaway CA, one leaf per side); both sides
 * verify the other (`verify required`), the client side also checks the server's name.
 * One thread each, like the single-threaded sidecars and nginx's one worker.
 */
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Child } from './common.js';

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** CA, server (SAN DNS:helloworld) and client certificates, each with its key in one PEM. */
export function haproxyCerts(dir: string): { ca: string; server: string; client: string } {
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=bench-ca'], dir);
  for (const [name, san] of [['server', 'DNS:helloworld'], ['client', 'DNS:sleep']] as const) {
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`], dir);
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=serverAuth,clientAuth\n`);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], dir);
    execFileSync('sh', ['-c', `cat ${name}.crt ${name}.key > ${name}.pem`], { cwd: dir });
  }
  return { ca: join(dir, 'ca.pem'), server: join(dir, 'server.pem'), client: join(dir, 'client.pem') };
}

const COMMON = `global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
`;

export function haproxyClientConf(listen: string, server: string, certs: { ca: string; client: string }): string {
  return `${COMMON}frontend out
  bind ${listen}
  default_backend mesh
backend mesh
  server peer ${server} ssl verify required verifyhost helloworld sni str(helloworld) ca-file ${certs.ca} crt ${certs.client} alpn http/1.1
`;
}

export function haproxyServerConf(listen: string, app: string, certs: { ca: string; server: string }): string {
  return `${COMMON}frontend in
  bind ${listen} ssl crt ${certs.server} ca-file ${certs.ca} verify required alpn http/1.1
  default_backend app
backend app
  server app ${app}
`;
}

/** haproxy in the foreground (-db); it prints nothing when ready, so the caller waits for the port. */
export function startHaproxy(conf: string): Child {
  const p = spawn('haproxy', ['-db', '-f', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr!.setEncoding('utf8').on('data', (d: string) => (err = (err + d).slice(-4000)));
  return {
    proc: p,
    out: () => '',
    err: () => err,
    stop: () => new Promise((r) => (p.exitCode !== null ? r() : (p.once('exit', () => r()), p.kill('SIGTERM')))),
  };
}
