import { PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';
import type { Command } from 'commander';
import { formatHostPort, parseHostPort } from '../config/hostport.js';
import { DNS_PROXY_PORT } from '../mesh/names.js';
import type { CliIO } from './io.js';
import { untilSignal } from './signals.js';
import { captureFlags, captureSettingsFrom, type CaptureFlags } from './iptables.js';

interface ProxyFlags extends CaptureFlags {
  capture?: boolean;
  mode: string;
  controlPlane: string;
  token: string;
  ip: string;
  namespace: string;
  serviceAccount: string;
  workload?: string;
  labels?: string;
  workloadGroup?: string;
  appPort: string[];
  network?: string;
  cluster?: string;
  locality?: string;
  caBundle?: string;
  xds: string;
  admin: string;
  health?: string;
  outboundPort?: string;
  gatewayPort?: string;
  certTtl?: string;
  drainTimeout: string;
  compactWhenQuiet: string;
  cpuScheduling: string;
  logLevel: string;
  dns: boolean;
  dnsPort?: string;
  dnsUpstream: string[];
}

/**
 * A sidecar's garbage is short-lived, so V8's default young generation (semi-spaces growing to
 * 8 MB each, 16 MB committed) mostly buys RSS. `--max-semi-space-size` cannot be changed once the
 * isolate exists, but the growth factor is read at every resize (ADR 0017): growth stays off
 * (factor 1) unless one more doubling keeps the young generation (both semi-spaces) within
 * YOUNG_GEN_CAP_MB. Below the cap the check runs after every garbage collection (a `gc` performance
 * observer), not on a timer: under load V8 doubles several times within any timer period, and the 250 ms
 * timer this replaces let it reach 16 MB (ADR 0105). Pinning it at the initial 1 MB semi-space
 * took ~8x the scavenges of the default (≈ +5–7 % CPU under load). An explicit choice wins: any
 * semi-space flag in the node flags or NODE_OPTIONS, or ISLE_PROXY_YOUNG_GEN=default, leaves
 * V8's sizing alone.
 */
const YOUNG_GEN_CAP_MB = 8;
/** At the cap, how often to look for V8 having shrunk the young generation (then GCs are watched again). */
const YOUNG_GEN_POLL_MS = 2000;

function capYoungGeneration(): void {
  const flags = [...process.execArgv, process.env['NODE_OPTIONS'] ?? ''].join(' ');
  if (/semi[-_]space/.test(flags) || process.env['ISLE_PROXY_YOUNG_GEN'] === 'default') return;
  let factor = 0;
  let observer: PerformanceObserver | undefined;
  let poll: NodeJS.Timeout | undefined;
  const check = (): void => {
    const young = (v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0) / 1048576;
    // V8 also shrinks the young generation when allocation slows down (an idle sidecar), so growth is re-allowed below the cap.
    const want = young * 2 <= YOUNG_GEN_CAP_MB ? 2 : 1;
    if (want !== factor) {
      factor = want;
      v8.setFlagsFromString(`--semi-space-growth-factor=${want}`);
    }
    if (want === 1) {
      // At the cap nothing can grow, so no GC needs watching (node builds a performance entry
      // for each, ADR 0143); only a shrink matters now, and a slow poll notices it.
      observer?.disconnect();
      observer = undefined;
      poll ??= setInterval(check, YOUNG_GEN_POLL_MS).unref();
    } else {
      if (poll) clearInterval(poll);
      poll = undefined;
      if (!observer) {
        observer = new PerformanceObserver(check);
        observer.observe({ entryTypes: ['gc'] });
      }
    }
  };
  check();
}

/** This process's CPU time so far (user + system), µs: what both controllers sample. */
function processCpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/**
 * A memory-reducing GC once start-up is over and again whenever the sidecar has been quiet for
 * `quietMs` after traffic grew its heap (ADR 0125; the wait: ADR 0141). The GC is V8's LowMemoryNotification (what the inspector's
 * HeapProfiler.collectGarbage runs, here through an in-process session: no port, no node flag):
 * unlike `gc()` it also shrinks the young generation back to its initial size. No malloc_trim:
 * koffi's mapping costs more RSS (1.4 MB) than the trim gave back here (≤ 0.5 MB).
 * `quietMs` undefined turns it off, the one at `ready` too.
 */
async function compactWhenQuiet(quietMs: number | undefined, log: { debug: (o: object, msg: string) => void }): Promise<{ compactNow: () => Promise<void>; stop: () => void }> {
  if (quietMs === undefined) return { compactNow: async () => undefined, stop: () => undefined };
  const [{ Session }, { startQuietGc }, { realTimers }] = await Promise.all([import('node:inspector'), import('../proxy/quietgc.js'), import('../mesh/timers.js')]);
  let session: InstanceType<typeof Session>;
  try {
    session = new Session();
    session.connect();
  } catch {
    // A node built without the inspector: no compaction, V8 sizes the heap alone.
    return { compactNow: async () => undefined, stop: () => undefined };
  }
  const q = startQuietGc({
    timers: realTimers,
    quietMs,
    cpuMicros: processCpuMicros,
    heapBytes: () => v8.getHeapStatistics().total_heap_size,
    compact: () => new Promise((resolve) => session.post('HeapProfiler.collectGarbage', () => resolve())),
    onCompact: (e) => log.debug({ tookMs: Math.round(e.tookMs), heapBeforeMb: +(e.before / 1048576).toFixed(1), heapAfterMb: +(e.after / 1048576).toFixed(1) }, 'heap compacted'),
  });
  return {
    compactNow: q.compactNow,
    stop: () => {
      q.stop();
      session.disconnect();
    },
  };
}

/** The scheduling policy controller (ADR 0152) on the real clock, CPU time and `chrt`. */
async function cpuSchedulingFor(
  mode: 'auto' | 'batch',
  start: typeof import('../proxy/cpusched.js').startCpuScheduling,
  chrt: typeof import('../proxy/cpusched.js').chrtPolicy,
  current: number | undefined,
  log: { info: (o: object, msg: string) => void; debug: (o: object, msg: string) => void; warn: (o: object, msg: string) => void },
): Promise<{ stop: () => void }> {
  // Started under another policy (e.g. `chrt -b isle proxy …`): the operator chose; leave it.
  if (current !== undefined && current !== 0) {
    log.info({ policy: current, mode }, 'cpu scheduling policy set before start: left alone');
    return { stop: () => undefined };
  }
  const { realTimers } = await import('../mesh/timers.js');
  return start({
    mode,
    timers: realTimers,
    cpuMicros: processCpuMicros,
    apply: chrt(process.pid),
    onChange: (policy) => log.debug({ policy }, 'cpu scheduling policy set'),
    onError: (e) => log.warn({ err: String(e instanceof Error ? e.message : e), mode }, 'cpu scheduling policy left as it was'),
  });
}

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/**
 * `isle proxy`: the sidecar / east-west gateway / ingress gateway. stdout: one line per bound listener
 * (`listener <name> <role> <host:port>`, plus `admin` and `health`), then `ready` once the first
 * resolved config is applied, `stopped` after a graceful shutdown (SIGTERM/SIGINT, exit 0).
 * Logs (pino JSON) go to stderr. Bad flags, an unreadable token or CA bundle and an address in
 * use are one-line errors with exit code 2.
 */
export function registerProxy(program: Command, io: CliIO): void {
  const cmd = program
    .command('proxy')
    .description('run the data plane: an xDS-driven sidecar (outbound HTTP proxy on 15001, inbound mTLS), east-west gateway (SNI passthrough on 15443) or ingress gateway (Gateway servers: HTTP, HTTPS, PASSTHROUGH)')
    .option('--mode <mode>', 'sidecar, gateway (east-west) or ingress (serves the Gateways whose selector matches its labels; default labels istio=ingressgateway)', 'sidecar')
    .requiredOption('--control-plane <addr>', "the control plane's mTLS address (xDS + certificate service), host:port; replicas as host:port,host:port (the proxy moves to another when its replica dies)")
    .requiredOption('--token <file>', 'bootstrap token file (isle token create)')
    .requiredOption('--ip <addr>', "the workload's IP address (its own 127.x.y.z in universal mode)")
    .requiredOption('--namespace <ns>', 'namespace of the workload')
    .requiredOption('--service-account <sa>', 'service account of the workload')
    .option('--workload <name>', 'workload name (default: label app, else the service account)')
    .option('--labels <k=v,...>', 'workload labels, comma-separated (policy selection; endpoints take theirs from the WorkloadGroup)')
    .option('--workload-group <name>', "the WorkloadGroup to auto-register with (its template.serviceAccount must be this proxy's); default: the only group of this identity")
    .option('--app-port <port=appPort>', 'the app listens on 127.0.0.1:<appPort> for the service target port <port> (repeatable)', collect, [] as string[])
    .option('--network <name>', 'network of the workload (topology.istio.io/network)')
    .option('--cluster <name>', 'cluster of the workload (default: the control plane\'s)')
    .option('--locality <region/zone/subzone>', 'locality of the workload')
    .option('--ca-bundle <file>', 'root-cert.pem: trust anchors for the control plane on first contact')
    .option('--xds <protocol>', 'delta or sotw', 'delta')
    .option('--admin <addr>', 'admin server (config_dump, clusters, stats/prometheus, ready)', '127.0.0.1:15000')
    .option('--health <addr>', "health server (/healthz/ready); default <ip>:15021, the workload's own address")
    .option('--outbound-port <port>', 'port of the outbound HTTP proxy listener instead of the one the control plane sends (15001); 0 = any free port')
    .option('--gateway-port <port>', 'port of the east-west listener instead of 15443; 0 = any free port')
    .option('--cert-ttl <duration>', 'certificate lifetime to ask for (e.g. 24h, 30m, 20s); the CA may give less')
    .option('--drain-timeout <duration>', 'longest wait for in-flight requests at shutdown', '5s')
    .option('--compact-when-quiet <duration|off>', 'give memory back (a memory-reducing GC) once the sidecar has been quiet this long after traffic grew its heap; off also skips the one at ready (env ISLE_PROXY_QUIET_GC overrides)', '5m')
    .option('--cpu-scheduling <mode>', "the event loop's Linux scheduling policy: auto (SCHED_BATCH while the sidecar uses ≥ 30 % of a core, so the processes it wakes do not cut its turns short; SCHED_OTHER otherwise), batch or normal (README Proxy section, ADR 0152; env ISLE_PROXY_CPU_SCHEDULING overrides)", 'auto')
    .option('--log-level <level>', `log level (${LEVELS.join(', ')})`, 'info')
    .option('--dns-port <port>', 'sidecar DNS proxy port, UDP and TCP on the workload address (mesh names from the control plane, the rest forwarded); 0 = off', String(DNS_PROXY_PORT))
    .option('--no-dns', 'do not run the DNS proxy')
    .option('--dns-upstream <addr>', 'resolver for names the mesh does not own, host[:port] (repeatable; default: the nameservers of /etc/resolv.conf)', collect, [] as string[])
    .option('--capture', "transparent capture (Linux, root, in the workload's network namespace): install nat rules sending outbound TCP to 15001, inbound TCP to 15006 and DNS to 15053; removed at exit (docs/capture.md)");
  captureFlags(cmd, 'with --capture: ');
  cmd.action(async (o: ProxyFlags, command: Command) => {
      capYoungGeneration();
      const { IsleError } = await import('../errors.js');
      const usage = (m: string): never => {
        throw new IsleError('ERR_USAGE', m);
      };
      const { isIP } = await import('node:net');
      const { readFile } = await import('node:fs/promises');
      if (o.mode !== 'sidecar' && o.mode !== 'gateway' && o.mode !== 'ingress') usage(`--mode: must be sidecar, gateway or ingress (got ${JSON.stringify(o.mode)})`);
      if (o.xds !== 'delta' && o.xds !== 'sotw') usage(`--xds: must be delta or sotw (got ${JSON.stringify(o.xds)})`);
      if (!LEVELS.includes(o.logLevel)) usage(`--log-level: unknown level ${JSON.stringify(o.logLevel)} (${LEVELS.join(', ')})`);
      if (!isIP(o.ip)) usage(`--ip: ${JSON.stringify(o.ip)} is not an IP address`);
      const name = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
      if (!name.test(o.namespace)) usage(`--namespace: invalid name ${JSON.stringify(o.namespace)}`);
      if (o.workloadGroup !== undefined && !name.test(o.workloadGroup)) usage(`--workload-group: invalid name ${JSON.stringify(o.workloadGroup)}`);
      if (!name.test(o.serviceAccount)) usage(`--service-account: invalid name ${JSON.stringify(o.serviceAccount)}`);
      const { controlPlaneTarget } = await import('../mesh/target.js');
      const controlPlane = controlPlaneTarget(o.controlPlane);
      const port = (v: string, flag: string, allowZero: boolean): number => {
        const n = /^\d+$/.test(v) ? Number(v) : NaN;
        if (!Number.isInteger(n) || n > 65535 || n < (allowZero ? 0 : 1)) usage(`${flag}: invalid port ${JSON.stringify(v)}`);
        return n;
      };
      const labels: Record<string, string> = {};
      for (const kv of (o.labels ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
        const i = kv.indexOf('=');
        if (i <= 0) usage(`--labels: expected k=v, got ${JSON.stringify(kv)}`);
        labels[kv.slice(0, i)] = kv.slice(i + 1);
      }
      // Istio's istio-ingressgateway labels, which Gateways in the samples select.
      if (o.mode === 'ingress' && o.labels === undefined) Object.assign(labels, { istio: 'ingressgateway', app: 'istio-ingressgateway' });
      const appPorts: Record<number, number> = {};
      for (const ap of o.appPort) {
        const m = /^(\d+)=(\d+)$/.exec(ap);
        if (!m) usage(`--app-port: expected PORT=APP_PORT, got ${JSON.stringify(ap)}`);
        appPorts[port(m![1]!, '--app-port', false)] = port(m![2]!, '--app-port', false);
      }
      let locality: { region: string; zone: string; subzone: string } | undefined;
      if (o.locality !== undefined) {
        const parts = o.locality.split('/');
        if (parts.length > 3 || parts.some((p) => /\s/.test(p))) usage(`--locality: expected region/zone/subzone, got ${JSON.stringify(o.locality)}`);
        locality = { region: parts[0] ?? '', zone: parts[1] ?? '', subzone: parts[2] ?? '' };
      }
      const { parseTtl } = await import('./duration.js');
      const seconds = (v: string, flag: string): number => {
        try {
          return parseTtl(v);
        } catch {
          return usage(`${flag}: invalid duration ${JSON.stringify(v)} (e.g. 30s, 10m, 24h)`);
        }
      };
      const certTtl = o.certTtl !== undefined ? seconds(o.certTtl, '--cert-ttl') : undefined;
      const drainTimeout = seconds(o.drainTimeout, '--drain-timeout');
      const quietSetting = process.env['ISLE_PROXY_QUIET_GC'] ?? o.compactWhenQuiet;
      const compactQuietMs = quietSetting === 'off' ? undefined : seconds(quietSetting, '--compact-when-quiet') * 1000;
      const cpuScheduling = process.env['ISLE_PROXY_CPU_SCHEDULING'] ?? o.cpuScheduling;
      const { CPU_SCHEDULING_MODES, startCpuScheduling, chrtPolicy, policyOf } = await import('../proxy/cpusched.js');
      if (!(CPU_SCHEDULING_MODES as readonly string[]).includes(cpuScheduling)) {
        const from = process.env['ISLE_PROXY_CPU_SCHEDULING'] !== undefined ? 'ISLE_PROXY_CPU_SCHEDULING' : '--cpu-scheduling';
        usage(`${from}: must be ${CPU_SCHEDULING_MODES.join(', ')} (got ${JSON.stringify(cpuScheduling)})`);
      }
      const outboundPort = o.outboundPort !== undefined ? port(o.outboundPort, '--outbound-port', true) : undefined;
      const gatewayPort = o.gatewayPort !== undefined ? port(o.gatewayPort, '--gateway-port', true) : undefined;
      const health = o.health ?? formatHostPort(o.ip, 15021);
      const dnsPort = o.dns && o.mode === 'sidecar' ? port(o.dnsPort ?? String(DNS_PROXY_PORT), '--dns-port', true) : 0;
      const { parseResolvConf, parseUpstream } = await import('../proxy/dns/upstream.js');
      const dnsUpstreams = o.dnsUpstream.map((u) => parseUpstream(u) ?? usage(`--dns-upstream: ${JSON.stringify(u)} is not an address (host[:port])`));
      if (dnsPort !== 0 && dnsUpstreams.length === 0) {
        // No resolv.conf: glibc's fallback (127.0.0.1), which parseResolvConf applies to '' too.
        dnsUpstreams.push(...parseResolvConf(await readFile('/etc/resolv.conf', 'utf8').catch(() => '')));
      }
      for (const [flag, v] of [['--admin', o.admin], ['--health', health]] as const) {
        if (!parseHostPort(v, { allowZero: true })) usage(`${flag}: invalid address ${JSON.stringify(v)} (use host:port; port 0 picks a free one)`);
      }
      const readText = async (file: string, flag: string): Promise<string> => {
        try {
          return await readFile(file, 'utf8');
        } catch (e) {
          const code = (e as NodeJS.ErrnoException).code;
          return usage(`${flag}: cannot read ${file} (${code ?? String(e)})`);
        }
      };
      const token = (await readText(o.token, '--token')).trim();
      if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token)) usage(`--token: ${o.token} does not hold a token (a JWT from isle token create)`);
      if (o.caBundle === undefined) usage('--ca-bundle: required, to verify the control plane (root-cert.pem of the mesh)');
      const rootPem = await readText(o.caBundle!, '--ca-bundle');
      if (!rootPem.includes('-----BEGIN CERTIFICATE-----')) usage(`--ca-bundle: ${o.caBundle} holds no PEM certificate`);

      const capture = o.capture ? await captureSettingsFrom(o) : undefined;
      if (capture && o.mode !== 'sidecar') usage('--capture: only a sidecar captures traffic');
      // DNS is redirected to the sidecar's own DNS proxy, or left alone when it does not run.
      if (capture) capture.dnsPort = capture.dnsPort !== undefined && dnsPort !== 0 ? dnsPort : undefined;
      if (capture && outboundPort !== undefined) usage('--capture: the outbound port is 15001 (no --outbound-port)');
      const iptables = capture ? await import('../proxy/capture/iptables.js') : undefined;

      const [{ pino, destination }, { IsleProxy }, grpc] = await Promise.all([import('pino'), import('../proxy/proxy.js'), import('@grpc/grpc-js')]);
      const logger = pino({ level: o.logLevel }, destination({ fd: 2, sync: true }));
      const grpcLog = logger.child({ component: 'grpc-js' });
      grpc.setLogger({ error: (...args: unknown[]) => grpcLog.debug(args.map(String).join(' ')) });

      const signalled = untilSignal();
      let uninstall = async (): Promise<void> => undefined;
      if (capture) {
        await iptables!.installCapture(capture);
        uninstall = async () => {
          uninstall = async () => undefined;
          const left = await iptables!.removeCapture();
          if (left.length) logger.error({ left }, 'capture rules could not all be removed');
          else logger.info('capture rules removed');
        };
        // The proxy's own connections carry this gid, which the rules exempt; root stays the
        // uid so the rules can be removed at exit (ADR 0070).
        process.setegid!(capture.proxyGid);
        logger.info({ gid: capture.proxyGid, dns: capture.dnsPort !== undefined }, 'capture rules installed');
      }
      const proxy = await IsleProxy.start({
        // An ingress gateway is a `router` like the east-west one: the Gateways selecting it decide what it serves.
        mode: o.mode === 'sidecar' ? 'sidecar' : 'gateway',
        controlPlane,
        token,
        rootPem,
        ip: o.ip,
        namespace: o.namespace,
        serviceAccount: o.serviceAccount,
        ...(o.workload !== undefined ? { workload: o.workload } : {}),
        labels,
        ...(o.workloadGroup !== undefined ? { workloadGroup: o.workloadGroup } : {}),
        appPorts,
        ...(o.network !== undefined ? { network: o.network } : {}),
        ...(o.cluster !== undefined ? { cluster: o.cluster } : {}),
        ...(locality ? { locality } : {}),
        xds: o.xds as 'delta' | 'sotw',
        admin: o.admin,
        health,
        ...(outboundPort !== undefined ? { outboundPort } : {}),
        ...(gatewayPort !== undefined ? { gatewayPort } : {}),
        ...(certTtl !== undefined ? { certTtlSeconds: certTtl } : {}),
        drainTimeoutMs: drainTimeout * 1000,
        // Asked for on the command line: failing to bind is an error; the default only warns.
        // Captured queries are redirected to 127.0.0.1 (nat OUTPUT REDIRECT); a UDP socket bound there
        // answers from 127.0.0.1, which conntrack maps back to the resolver the app asked (a wildcard
        // socket would answer from the pod address and the app would drop it). Istio binds localhost too.
        ...(dnsPort !== 0 ? { dns: { ...(capture ? { host: '127.0.0.1' } : {}), port: dnsPort, upstreams: dnsUpstreams, required: command.getOptionValueSource('dnsPort') === 'cli' } } : {}),
        ...(capture ? { capture: { inboundPort: capture.inboundPort } } : {}),
        logger,
        onListener: (n, role, addr) => {
          if (n === 'admin' || n === 'health') io.out(`${n} ${addr}\n`);
          else io.out(`listener ${n} ${role} ${addr}\n`);
        },
      }).catch(async (e: unknown) => {
        await uninstall();
        throw e;
      });
      const first = await Promise.race([proxy.ready.then(() => 'ready' as const), signalled]).catch(async (e: unknown) => {
        await proxy.stop();
        await uninstall();
        throw e;
      });
      const quietGc = first === 'ready' ? await compactWhenQuiet(compactQuietMs, { debug: (obj, msg) => logger.debug({ component: 'memory', ...obj }, msg) }) : undefined;
      if (first === 'ready') {
        await quietGc!.compactNow();
        io.out('ready\n');
      }
      // `auto` is Linux's alone (elsewhere it would only warn at the first busy second); `batch` asked for says it cannot.
      const sched = first === 'ready' && cpuScheduling !== 'normal' && (cpuScheduling === 'batch' || process.platform === 'linux') ? await cpuSchedulingFor(cpuScheduling as 'auto' | 'batch', startCpuScheduling, chrtPolicy, policyOf(process.pid), logger.child({ component: 'sched' })) : undefined;
      const signal = first === 'ready' ? await signalled : first;
      logger.info({ signal }, 'stopping: draining listeners');
      quietGc?.stop();
      sched?.stop();
      await proxy.stop();
      await uninstall();
      io.out('stopped\n');
    });
}
