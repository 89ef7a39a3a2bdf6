/**
 * Test material for the proxy's socket tests: a real PKI (root → cluster intermediate → workload
 * certificates from CSRs) and builders for model objects, with Envoy's defaults filled in as the
 * decoders would.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { createCsr, createIntermediate, createRoot, signWorkloadCsr, type IssuingCa } from '../../../src/pki/index.js';
import type { EndpointPicker } from '../../../src/proxy/listeners/context.js';
import type {
  CircuitBreakersModel,
  ClusterModel,
  ConfigGraph,
  DownstreamTlsModel,
  FilterChainModel,
  HttpConnectionManagerModel,
  ListenerModel,
  NetworkFilterModel,
  EndpointModel,
  EndpointsModel,
  ForwardActionModel,
  HeaderMutationsModel,
  RetryOn,
  RetryPolicyModel,
  RouteActionModel,
  RouteConfigModel,
  RouteModel,
  SecretModel,
  UpstreamTlsModel,
  VirtualHostModel,
} from '../../../src/proxy/model.js';

export interface Workload {
  spiffeId: string;
  certChainPem: string;
  keyPem: string;
  rootPem: string;
}

export interface Pki {
  rootPem: string;
  ca: IssuingCa;
  workload(ns: string, sa: string): Promise<Workload>;
}

let pkiPromise: Promise<Pki> | undefined;

/** One PKI per test process: key generation is the slow part. */
export function testPki(): Promise<Pki> {
  pkiPromise ??= (async () => {
    const root = await createRoot({ trustDomain: 'cluster.local' });
    const ca = await createIntermediate({ root, cluster: 'cluster-1' });
    return {
      rootPem: root.certPem,
      ca,
      async workload(namespace: string, serviceAccount: string): Promise<Workload> {
        const identity = { trustDomain: 'cluster.local', namespace, serviceAccount };
        const { csrPem, keyPem } = await createCsr({ identity });
        const signed = await signWorkloadCsr({ ca, csrPem, identity, ttlSeconds: 3600 });
        return { spiffeId: signed.spiffeId, certChainPem: signed.chainPem, keyPem, rootPem: signed.rootBundlePem };
      },
    };
  })();
  return pkiPromise;
}

/** An unrelated root, for "not from our trust bundle" cases. */
export async function foreignWorkload(): Promise<Workload> {
  const root = await createRoot({ trustDomain: 'evil.example' });
  const ca = await createIntermediate({ root, cluster: 'x' });
  const identity = { trustDomain: 'evil.example', namespace: 'default', serviceAccount: 'sleep' };
  const { csrPem, keyPem } = await createCsr({ identity });
  const signed = await signWorkloadCsr({ ca, csrPem, identity });
  return { spiffeId: signed.spiffeId, certChainPem: signed.chainPem, keyPem, rootPem: root.certPem };
}

/** SDS secrets as Istio names them: `default` (own cert) and `ROOTCA` (trust bundle). */
export function secretsFor(w: Workload): Map<string, SecretModel> {
  return new Map<string, SecretModel>([
    [
      'default',
      {
        kind: 'tls-certificate',
        name: 'default',
        certificate: { certificateChain: { kind: 'inline', data: w.certChainPem }, privateKey: { kind: 'inline', data: w.keyPem } },
      },
    ],
    ['ROOTCA', { kind: 'validation-context', name: 'ROOTCA', validation: { trustedCa: { kind: 'inline', data: w.rootPem }, matchSans: [] } }],
  ]);
}

export const NO_MUTATIONS: HeaderMutationsModel = {
  requestHeadersToAdd: [],
  requestHeadersToRemove: [],
  responseHeadersToAdd: [],
  responseHeadersToRemove: [],
};

export const DEFAULT_CB: CircuitBreakersModel = { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 };

export function istioMtls(sni: string, expectedSans: string[] = []): UpstreamTlsModel {
  return {
    sni,
    certificates: [{ kind: 'sds', name: 'default' }],
    validation: { kind: 'sds', name: 'ROOTCA' },
    expectedSans: expectedSans.map((s) => ({ sanType: 'URI', matcher: { kind: 'exact', value: s, ignoreCase: false } })),
    alpnProtocols: ['istio-peer-exchange', 'istio'],
  };
}

export function cluster(name: string, extra: Partial<ClusterModel> = {}): ClusterModel {
  return {
    name,
    type: 'EDS',
    edsServiceName: name,
    loadAssignment: null,
    connectTimeoutMs: 1000,
    lbPolicy: 'ROUND_ROBIN',
    leastRequestChoiceCount: 2,
    localityWeightedLb: false,
    healthyPanicThreshold: 50,
    outlierDetection: null,
    tls: null,
    circuitBreakers: DEFAULT_CB,
    dnsLookupFamily: 'V4_ONLY',
    http2: false,
    maxRequestsPerConnection: 0,
    idleTimeoutMs: 3600_000,
    ...extra,
  };
}

export function endpoint(address: string, port: number, extra: Partial<EndpointModel> = {}): EndpointModel {
  return { key: `${address}:${port}`, address, port, health: 'HEALTHY', weight: 1, hostname: undefined, ...extra };
}

export function endpoints(clusterName: string, eps: EndpointModel[]): EndpointsModel {
  return {
    clusterName,
    priorities: [{ priority: 0, localities: [{ region: 'r1', zone: 'z1', subZone: '', weight: 0, endpoints: eps }] }],
    overprovisioningFactor: 140,
  };
}

export function retryPolicy(on: RetryOn[], numRetries: number, extra: Partial<RetryPolicyModel> = {}): RetryPolicyModel {
  return {
    retryOn: new Set(on),
    numRetries,
    perTryTimeoutMs: 0,
    retriableStatusCodes: new Set(),
    avoidPreviousHosts: false,
    hostSelectionRetryMaxAttempts: 1,
    backoffBaseMs: 1,
    backoffMaxMs: 5,
    ...extra,
  };
}

export function forward(clusterName: string, extra: Partial<ForwardActionModel> = {}): ForwardActionModel {
  return {
    kind: 'route',
    cluster: { kind: 'cluster', name: clusterName },
    timeoutMs: 15000,
    idleTimeoutMs: 0,
    retryPolicy: null,
    prefixRewrite: undefined,
    regexRewrite: undefined,
    hostRewriteLiteral: undefined,
    autoHostRewrite: false,
    clusterNotFoundResponseCode: 503,
    ...extra,
  };
}

export function route(prefix: string, action: RouteActionModel, extra: Partial<RouteModel> = {}): RouteModel {
  return {
    name: `r${prefix}`,
    match: { path: { kind: 'prefix', value: prefix }, caseSensitive: true, headers: [], queryParameters: [] },
    action,
    mutations: NO_MUTATIONS,
    ...extra,
  };
}

export function vhost(name: string, domains: string[], routes: RouteModel[], extra: Partial<VirtualHostModel> = {}): VirtualHostModel {
  return { name, domains, routes, mutations: NO_MUTATIONS, retryPolicy: null, ...extra };
}

export function routeConfig(name: string, virtualHosts: VirtualHostModel[]): RouteConfigModel {
  return { name, virtualHosts, mutations: NO_MUTATIONS, validateClusters: false, ignorePortInHostMatching: false };
}

// ---------------------------------------------------------------------------------------------
// real servers
// ---------------------------------------------------------------------------------------------

export interface TestApp {
  server: http.Server;
  port: number;
  requests: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }>;
  close(): Promise<void>;
}

/** An app that echoes what it saw as JSON, unless `handler` answers first. */
export async function startApp(
  name: string,
  host = '127.0.0.1',
  handler?: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => boolean | void,
): Promise<TestApp> {
  const requests: TestApp['requests'] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      if (handler?.(req, res, body)) return;
      const out = JSON.stringify({ app: name, method: req.method, url: req.url, headers: req.headers, body });
      res.writeHead(200, { 'content-type': 'application/json', 'x-app': name });
      res.end(out);
    });
  });
  server.listen(0, host);
  await once(server, 'listening');
  return {
    server,
    port: (server.address() as AddressInfo).port,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A port on `host` with nothing listening (bound then released). */
export async function deadPort(host = '127.0.0.1'): Promise<number> {
  const s = net.createServer();
  s.listen(0, host);
  await once(s, 'listening');
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface FetchResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A plain HTTP request; `proxy` sends it absolute-form to a proxy, as HTTP_PROXY clients do. */
export function fetch(
  url: string,
  opts: { proxy?: { host: string; port: number }; method?: string; headers?: http.OutgoingHttpHeaders; body?: string; agent?: http.Agent } = {},
): Promise<FetchResult> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: opts.proxy?.host ?? u.hostname,
        port: opts.proxy?.port ?? u.port,
        path: opts.proxy ? url : u.pathname + u.search,
        method: opts.method ?? 'GET',
        headers: { host: u.host, ...opts.headers },
        agent: opts.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

// ---------------------------------------------------------------------------------------------
// listeners
// ---------------------------------------------------------------------------------------------

export function hcm(routeSource: HttpConnectionManagerModel['routeSource'], extra: Partial<HttpConnectionManagerModel> = {}): HttpConnectionManagerModel {
  return {
    statPrefix: 'test',
    routeSource,
    codecType: 'AUTO',
    forwardClientCertDetails: 'SANITIZE',
    setCurrentClientCertDetails: { subject: false, cert: false, chain: false, dns: false, uri: false },
    allowAbsoluteUrl: false,
    useRemoteAddress: false,
    xffNumTrustedHops: 0,
    httpFilters: ['envoy.filters.http.router'],
    streamIdleTimeoutMs: 300_000,
    requestTimeoutMs: 0,
    rbac: [],
    ...extra,
  } as HttpConnectionManagerModel;
}

export function chain(name: string, filter: NetworkFilterModel, opts: { tls?: DownstreamTlsModel | null; transport?: string; serverNames?: string[] } = {}): FilterChainModel {
  return {
    name,
    match: { serverNames: opts.serverNames ?? [], transportProtocol: opts.transport, applicationProtocols: [], destinationPort: undefined, prefixRanges: [] },
    tls: opts.tls ?? null,
    filter,
    rbac: [],
  };
}

export const ISTIO_DOWNSTREAM_MTLS: DownstreamTlsModel = {
  requireClientCertificate: true,
  certificates: [{ kind: 'sds', name: 'default' }],
  validation: { kind: 'sds', name: 'ROOTCA' },
  matchSans: [],
  // As lds.ts generates for an inbound HTTP chain (and what lets isle-mux/1 be negotiated, ADR 0138).
  alpnProtocols: ['h2', 'http/1.1'],
};

export function listener(name: string, address: string, port: number, chains: FilterChainModel[], extra: Partial<ListenerModel> = {}): ListenerModel {
  return {
    name,
    address,
    port,
    kind: 'http',
    trafficDirection: 'UNSPECIFIED',
    tlsInspector: false,
    httpInspector: false,
    filterChains: chains,
    defaultFilterChain: null,
    sniClusters: new Map(),
    ...extra,
  };
}

/** The outbound proxy listener (15001) as lds.ts generates it. */
export function outboundListener(address: string, port = 0): ListenerModel {
  return listener('virtualOutbound', address, port, [chain('', { kind: 'http', hcm: hcm({ kind: 'rds', routeConfigName: '15001' }, { allowAbsoluteUrl: true }) })], {
    trafficDirection: 'OUTBOUND',
  });
}

/** An inbound listener as lds.ts generates it: an mTLS chain, plus plaintext when PERMISSIVE. */
export function inboundListener(address: string, port: number, targetPort: number, mode: 'STRICT' | 'PERMISSIVE'): ListenerModel {
  const cl = `inbound|${targetPort}||`;
  const rc: RouteConfigModel = routeConfig(cl, [vhost(cl, ['*'], [route('/', forward(cl, { timeoutMs: 0 }))])]);
  const filter = (mtls: boolean): NetworkFilterModel => ({
    kind: 'http',
    hcm: hcm(
      { kind: 'inline', config: rc },
      mtls
        ? { forwardClientCertDetails: 'SANITIZE_SET', setCurrentClientCertDetails: { subject: false, cert: false, chain: false, dns: false, uri: true } }
        : { forwardClientCertDetails: 'SANITIZE' },
    ),
  });
  const chains = [chain('mtls', filter(true), { tls: ISTIO_DOWNSTREAM_MTLS, transport: 'tls' })];
  if (mode === 'PERMISSIVE') chains.push(chain('plaintext', filter(false), { transport: 'raw_buffer' }));
  return listener(`${address}_${targetPort}`, address, port, chains, { trafficDirection: 'INBOUND', tlsInspector: true });
}

export function emptyGraph(): ConfigGraph & {
  listeners: Map<string, ListenerModel>;
  routes: Map<string, RouteConfigModel>;
  clusters: Map<string, ClusterModel>;
  endpoints: Map<string, EndpointsModel>;
  secrets: Map<string, SecretModel>;
} {
  return { listeners: new Map(), routes: new Map(), clusters: new Map(), endpoints: new Map(), secrets: new Map(), warnings: [] };
}

/** Round robin over healthy priority-0 endpoints; a stand-in until tests use the lb module. */
export function roundRobinPicker(): EndpointPicker {
  const next = new Map<string, number>();
  return (cluster, eps, ctx) => {
    const all = (eps?.priorities[0]?.localities ?? []).flatMap((l) => l.endpoints).filter((e) => e.health === 'HEALTHY' || e.health === 'UNKNOWN');
    const pool = ctx.avoidPrevious && all.some((e) => !ctx.previous.has(e.key)) ? all.filter((e) => !ctx.previous.has(e.key)) : all;
    if (pool.length === 0) return undefined;
    const i = next.get(cluster.name) ?? 0;
    next.set(cluster.name, i + 1);
    return pool[i % pool.length];
  };
}

/** A sequence of "random" numbers, repeated. */
export function seq(values: number[]): () => number {
  let i = 0;
  return () => values[i++ % values.length]!;
}

export function run(cmd: string, args: string[], input?: string, timeoutMs = 10_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}
