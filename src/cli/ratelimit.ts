/**
 * `isle ratelimit`: Envoy's rate limit service (gRPC `envoy.service.ratelimit.v3.RateLimitService`)
 * backed by Redis or Redis Sentinel, configured in envoyproxy/ratelimit's YAML format. The sidecars'
 * `envoy.filters.http.ratelimit` filters (from EnvoyFilters) call it. stdout: `ratelimit <host:port>`
 * once listening, `stopped` after SIGTERM/SIGINT. See docs/ratelimit.md.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import * as grpc from '@grpc/grpc-js';
import { IsleError } from '../errors.js';
import { isLoopback } from '../controlplane/servercert.js';
import { loadRateLimitConfig } from '../ratelimit/config.js';
import { RateLimitService } from '../ratelimit/service.js';
import { readPasswordFile, RedisCounterStore } from '../ratelimit/store.js';
import type { CliIO } from './io.js';
import { untilSignal } from './signals.js';

interface RateLimitOpts {
  redis?: string;
  sentinel?: string;
  sentinelName?: string;
  passwordFile?: string;
  config: string[];
  listen: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

function read(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new IsleError('ERR_USAGE', `${flag}: cannot read ${file} (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
}

/** Plaintext only on loopback (like xDS on :15010); anywhere else the service needs mutual TLS. */
function serverCredentials(o: RateLimitOpts, host: string): grpc.ServerCredentials {
  const tls = [o.tlsCert, o.tlsKey, o.tlsCa].filter((x) => x !== undefined).length;
  if (tls === 0) {
    if (!isLoopback(host)) throw new IsleError('ERR_USAGE', `plaintext rate limit service may only listen on loopback, not ${host}; give --tls-cert, --tls-key and --tls-ca for mutual TLS`);
    return grpc.ServerCredentials.createInsecure();
  }
  if (tls !== 3) throw new IsleError('ERR_USAGE', '--tls-cert, --tls-key and --tls-ca go together');
  return grpc.ServerCredentials.createSsl(read(o.tlsCa!, '--tls-ca'), [{ cert_chain: read(o.tlsCert!, '--tls-cert'), private_key: read(o.tlsKey!, '--tls-key') }], true);
}

export function registerRateLimit(program: Command, io: CliIO): void {
  program
    .command('ratelimit')
    .description("run Envoy's global rate limit service (gRPC ShouldRateLimit) with fixed-window counters in Redis or Redis Sentinel")
    .option('--redis <url>', 'Redis to keep the counters in, redis://host:port[/db]')
    .option('--sentinel <addrs>', 'Redis Sentinel addresses host:port,host:port (instead of --redis)')
    .option('--sentinel-name <name>', 'the master set name the Sentinels watch (e.g. mymaster)')
    .option('--password-file <file>', 'file holding the Redis (and Sentinel) password; never on the command line')
    .option('--config <file>', "envoyproxy/ratelimit config (domain, descriptors); repeat for more domains", collect, [])
    .option('--listen <host:port>', 'gRPC address; plaintext only on loopback', '127.0.0.1:8081')
    .option('--tls-cert <file>', 'server certificate chain (PEM) for mutual TLS')
    .option('--tls-key <file>', 'server private key (PEM)')
    .option('--tls-ca <file>', 'CA bundle clients must chain to (PEM)')
    .action(async (o: RateLimitOpts) => {
      if (o.config.length === 0) throw new IsleError('ERR_USAGE', 'give --config FILE (domain and descriptors, envoyproxy/ratelimit format)');
      if (!o.redis === !o.sentinel) throw new IsleError('ERR_USAGE', 'give exactly one of --redis redis://host:port or --sentinel host:port,… (with --sentinel-name)');
      const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(o.listen);
      if (!m) throw new IsleError('ERR_USAGE', `--listen: invalid address ${JSON.stringify(o.listen)} (use host:port)`);
      const creds = serverCredentials(o, m[1]!);
      const config = loadRateLimitConfig(o.config);
      const log = (s: string): void => io.err(`${s}\n`);
      const store = new RedisCounterStore(
        {
          ...(o.redis ? { url: o.redis } : {}),
          ...(o.sentinel ? { sentinels: o.sentinel.split(',').map((s) => s.trim()).filter(Boolean) } : {}),
          ...(o.sentinelName ? { sentinelName: o.sentinelName } : {}),
          ...(o.passwordFile ? { password: readPasswordFile(o.passwordFile) } : {}),
        },
        // Reconnect errors repeat every retry; the service logs failed calls itself (throttled).
        () => {},
      );
      const service = new RateLimitService({ config: () => config, store, log });
      const server = new grpc.Server();
      service.addToServer(server);
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync(o.listen, creds, (e, p) => (e ? reject(new IsleError('ERR_USAGE', `--listen ${o.listen}: ${e.message}`)) : resolve(p))),
      );
      io.out(`ratelimit ${m[1]}:${port}\n`);
      io.err(`isle ratelimit: domains ${[...config.keys()].join(', ')}; counters in ${o.sentinel ? `Sentinel master ${o.sentinelName}` : 'Redis'}\n`);
      const signal = await untilSignal();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      await store.close();
      io.out(`stopped (${signal}; ${service.counters.ok} ok, ${service.counters.overLimit} over limit, ${service.counters.errors} errors)\n`);
    });
}
