/**
 * networking.istio.io kinds. Field names, enums and rules follow the Istio reference
 * (istio.io/latest/docs/reference/config/networking/); rules Isle relies on are enforced here,
 * fields Isle does not use yet are type-checked loosely.
 */
import {
  any, arr, bool, dnsLabel, duration, enumOf, host, int, ipOrCidr, isIP, isLocality, isObject, isSet,
  isWildcardHost, labels, locality, mapOf, obj, oneOf, percent, port, str,
  type Check, type Checker, type Path,
} from '../schema.js';
import { exportTo, protocol, selector, uniqueBy, type KindDescriptor, type Labels, type WorkloadSelector } from './common.js';

const NETWORKING = 'networking.istio.io';
const NETWORKING_VERSIONS = ['v1', 'v1beta1', 'v1alpha3'] as const;

// ================================================================= shared pieces

export interface StringMatch {
  exact?: string;
  prefix?: string;
  regex?: string;
}

const regex = str({
  check: (s) => {
    try {
      new RegExp(s);
      return undefined;
    } catch {
      return `invalid regular expression ${JSON.stringify(s)}`;
    }
  },
});

/** `allowEmpty`: a header match `{}` tests presence only. */
function stringMatch(opts: { allowEmpty?: boolean; noPrefix?: boolean } = {}): Check {
  const fields: Record<string, Check> = { exact: str(), prefix: str(), regex };
  return obj(fields, {
    check: (c, v, p) => {
      if (opts.noPrefix && isSet(v.prefix)) c.error([...p, 'prefix'], 'prefix match is not supported here (use exact or regex)');
      const n = ['exact', 'prefix', 'regex'].filter((k) => isSet(v[k])).length;
      if (n > 1 || (n === 0 && !opts.allowEmpty)) c.error(p, 'must set exactly one of exact, prefix, regex');
    },
  });
}

export interface PortSelector {
  number?: number;
}

const portSelector = obj({ number: port });

export interface Destination {
  host: string;
  subset?: string;
  port?: PortSelector;
}

const destinationHost = str({
  check: (s) => (s !== '*' && (isWildcardHost(s) || isIP(s)) ? undefined : `invalid host ${JSON.stringify(s)}`),
});

const destination = obj({ host: destinationHost, subset: str({ nonEmpty: true }), port: portSelector }, { required: ['host'] });

interface Percent {
  value?: number;
}
const percentage = obj({ value: percent });

/** Route weights: Istio sends all traffic to a lone destination; with several, they must add up to 100. */
function checkWeights(c: Checker, routes: unknown, p: Path): void {
  if (!Array.isArray(routes) || routes.length < 2) return;
  let sum = 0;
  for (const r of routes) if (isObject(r) && typeof r.weight === 'number') sum += r.weight;
  if (sum !== 100) c.error(p, `weights must sum to 100 (got ${sum})`);
}

// ================================================================= VirtualService

export interface HTTPMatchRequest {
  name?: string;
  uri?: StringMatch;
  scheme?: StringMatch;
  method?: StringMatch;
  authority?: StringMatch;
  headers?: Record<string, StringMatch>;
  queryParams?: Record<string, StringMatch>;
  withoutHeaders?: Record<string, StringMatch>;
  port?: number;
  sourceLabels?: Labels;
  gateways?: string[];
  sourceNamespace?: string;
  ignoreUriCase?: boolean;
}

export interface HTTPRouteDestination {
  destination: Destination;
  weight?: number;
  headers?: Headers;
}

export interface HeaderOperations {
  set?: Record<string, string>;
  add?: Record<string, string>;
  remove?: string[];
}

export interface Headers {
  request?: HeaderOperations;
  response?: HeaderOperations;
}

export interface HTTPRetry {
  attempts?: number;
  perTryTimeout?: string;
  retryOn?: string;
  retryRemoteLocalities?: boolean;
}

export interface HTTPFaultInjection {
  delay?: { fixedDelay?: string; percentage?: Percent; percent?: number };
  abort?: { httpStatus?: number; grpcStatus?: string; percentage?: Percent };
}

export interface HTTPRewrite {
  uri?: string;
  authority?: string;
  uriRegexRewrite?: { match: string; rewrite: string };
}

export interface HTTPRedirect {
  uri?: string;
  authority?: string;
  port?: number;
  derivePort?: 'FROM_PROTOCOL_DEFAULT' | 'FROM_REQUEST_PORT';
  scheme?: string;
  redirectCode?: number;
}

export interface HTTPRoute {
  name?: string;
  match?: HTTPMatchRequest[];
  route?: HTTPRouteDestination[];
  redirect?: HTTPRedirect;
  directResponse?: { status: number; body?: { string?: string; bytes?: string } };
  delegate?: { name: string; namespace?: string };
  rewrite?: HTTPRewrite;
  timeout?: string;
  retries?: HTTPRetry;
  fault?: HTTPFaultInjection;
  mirror?: Destination;
  mirrorPercentage?: Percent;
  mirrors?: { destination: Destination; percentage?: Percent }[];
  headers?: Headers;
  corsPolicy?: unknown;
}

export interface RouteDestination {
  destination: Destination;
  weight?: number;
}

export interface L4MatchAttributes {
  destinationSubnets?: string[];
  port?: number;
  sourceLabels?: Labels;
  gateways?: string[];
  sourceNamespace?: string;
}

export interface TCPRoute {
  match?: L4MatchAttributes[];
  route?: RouteDestination[];
}

export interface TLSRoute {
  match: (L4MatchAttributes & { sniHosts: string[] })[];
  route?: RouteDestination[];
}

export interface VirtualServiceSpec {
  hosts?: string[];
  gateways?: string[];
  http?: HTTPRoute[];
  tcp?: TCPRoute[];
  tls?: TLSRoute[];
  exportTo?: string[];
}

/** Envoy's `x-envoy-retry-on` / `x-envoy-retry-grpc-on` conditions that Istio accepts in `retryOn`. */
const RETRY_ON = new Set([
  '5xx', 'gateway-error', 'reset', 'reset-before-request', 'connect-failure', 'envoy-ratelimited', 'retriable-4xx',
  'refused-stream', 'retriable-status-codes', 'retriable-headers', 'http3-post-connect-failure',
  'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable',
]);

const retryOn = str({
  check: (s) => {
    for (const cond of s.split(',').map((x) => x.trim())) {
      if (RETRY_ON.has(cond)) continue;
      if (/^\d{3}$/.test(cond) && Number(cond) >= 100 && Number(cond) <= 599) continue;
      return `unknown retry condition ${JSON.stringify(cond)}`;
    }
    return undefined;
  },
});

const headerName = (k: string) => (/^[!#$%&'*+\-.^_`|~0-9A-Za-z:]+$/.test(k) ? undefined : `invalid header name ${JSON.stringify(k)}`);

const headerOps = obj({
  set: mapOf(str(), headerName),
  add: mapOf(str(), headerName),
  remove: arr(str()),
});
const headers = obj({ request: headerOps, response: headerOps });

/** Istio routes on JWT claims with this pseudo-header; it needs RequestAuthentication, which Isle has not. */
export const JWT_CLAIM_HEADER = '@request.auth.claims.';

const headerMatches = mapOf(stringMatch({ allowEmpty: true }), (k) => {
  if (k.startsWith(JWT_CLAIM_HEADER)) {
    return `${JSON.stringify(k)}: routing on JWT claims requires RequestAuthentication, which Isle does not support yet`;
  }
  return k !== k.toLowerCase() ? `header name ${JSON.stringify(k)} must be lowercase` : headerName(k);
});

const httpMatch = obj({
  name: str(),
  uri: stringMatch(),
  scheme: stringMatch(),
  method: stringMatch(),
  authority: stringMatch(),
  headers: headerMatches,
  withoutHeaders: headerMatches,
  queryParams: mapOf(stringMatch({ allowEmpty: true, noPrefix: true })),
  port,
  sourceLabels: labels,
  gateways: arr(str()),
  sourceNamespace: str(),
  ignoreUriCase: bool,
  statPrefix: str(),
});

// Weights are percentages of the route's traffic.
const weight = int({ min: 0, max: 100 });
const httpRouteDestination = obj({ destination, weight, headers }, { required: ['destination'] });
const routeDestination = obj({ destination, weight }, { required: ['destination'] });

const delay = obj(
  { fixedDelay: duration(), percentage, percent: int({ min: 0, max: 100 }), exponentialDelay: duration() },
  {
    check: (c, v, p) => {
      if (isSet(v.exponentialDelay)) c.error([...p, 'exponentialDelay'], 'exponentialDelay is not supported (use fixedDelay)');
      else if (!isSet(v.fixedDelay)) c.error([...p, 'fixedDelay'], 'missing required field');
    },
  },
);

/** gRPC status codes by the names Istio's `abort.grpcStatus` takes (grpc/doc/statuscodes.md). */
export const GRPC_STATUS_CODES: Readonly<Record<string, number>> = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16,
};

// Istio takes the name only ("UNAVAILABLE", not "14"), and so does Isle.
const grpcStatus = str({
  check: (s) => (Object.hasOwn(GRPC_STATUS_CODES, s) ? undefined : `unknown gRPC status ${JSON.stringify(s)} (one of ${Object.keys(GRPC_STATUS_CODES).join(', ')})`),
});

const abort = obj(
  { httpStatus: int({ min: 200, max: 599 }), grpcStatus, http2Error: str(), percentage },
  {
    check: (c, v, p) => {
      oneOf(['httpStatus', 'grpcStatus', 'http2Error'])(c, v, p);
      // Istio parses http2Error but never translates it; accepting it would inject nothing.
      if (isSet(v.http2Error)) c.error([...p, 'http2Error'], 'http2Error aborts are not supported (Istio does not implement them either); use httpStatus or grpcStatus');
    },
  },
);

const httpRoute = obj(
  {
    name: str(),
    match: arr(httpMatch),
    route: arr(httpRouteDestination, { min: 1 }),
    redirect: obj(
      {
        uri: str(),
        authority: str(),
        port,
        derivePort: enumOf(['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT']),
        scheme: str(),
        redirectCode: int({ min: 300, max: 399 }),
      },
      { exclusive: [['port', 'derivePort']] },
    ),
    directResponse: obj(
      { status: int({ min: 200, max: 599 }), body: obj({ string: str(), bytes: str() }, { exclusive: [['string', 'bytes']] }) },
      { required: ['status'] },
    ),
    delegate: obj({ name: str({ nonEmpty: true }), namespace: dnsLabel }, { required: ['name'] }),
    rewrite: obj(
      { uri: str(), authority: str(), uriRegexRewrite: obj({ match: regex, rewrite: str() }, { required: ['match', 'rewrite'] }) },
      { exclusive: [['uri', 'uriRegexRewrite']] },
    ),
    timeout: duration(),
    retries: obj({ attempts: int({ min: 0 }), perTryTimeout: duration(), retryOn, retryRemoteLocalities: bool }),
    fault: obj({ delay, abort }),
    mirror: destination,
    mirrorPercentage: percentage,
    mirror_percent: int({ min: 0, max: 100 }),
    mirrors: arr(obj({ destination, percentage }, { required: ['destination'] })),
    headers,
    corsPolicy: any,
  },
  {
    exclusive: [['route', 'redirect', 'directResponse', 'delegate'], ['mirror', 'mirrors']],
    check: (c, v, p) => {
      if (!['route', 'redirect', 'directResponse', 'delegate'].some((k) => isSet(v[k]))) {
        c.error(p, 'must set one of route, redirect, directResponse, delegate');
      }
      checkWeights(c, v.route, [...p, 'route']);
    },
  },
);

const l4Match = {
  destinationSubnets: arr(ipOrCidr),
  port,
  sourceLabels: labels,
  gateways: arr(str()),
  sourceNamespace: str(),
};

const tcpRoute = obj(
  { match: arr(obj(l4Match)), route: arr(routeDestination, { min: 1 }) },
  { check: (c, v, p) => checkWeights(c, v.route, [...p, 'route']) },
);

const tlsRoute = obj(
  {
    match: arr(obj({ ...l4Match, sniHosts: arr(host, { min: 1 }) }, { required: ['sniHosts'] }), { min: 1 }),
    route: arr(routeDestination, { min: 1 }),
  },
  { required: ['match'], check: (c, v, p) => checkWeights(c, v.route, [...p, 'route']) },
);

const virtualServiceSpec = obj(
  {
    hosts: arr(host, { unique: true }),
    gateways: arr(str({ nonEmpty: true })),
    http: arr(httpRoute),
    tcp: arr(tcpRoute),
    tls: arr(tlsRoute),
    exportTo,
  },
  {
    check: (c, v, p) => {
      // Only a delegate VirtualService (one that another one points at) may leave hosts out; whether
      // one does is a question about other resources, so the analyzer checks a missing hosts.
      if (Array.isArray(v.hosts) && v.hosts.length === 0) c.error([...p, 'hosts'], 'must not be empty');
      if (![v.http, v.tcp, v.tls].some((x) => Array.isArray(x) && x.length > 0)) c.error(p, 'must set at least one of http, tcp, tls');
    },
  },
);

// ================================================================= DestinationRule

export interface LocalityLbSetting {
  enabled?: boolean;
  distribute?: { from: string; to: Record<string, number> }[];
  failover?: { from: string; to: string }[];
  failoverPriority?: string[];
}

export interface LoadBalancerSettings {
  simple?: 'UNSPECIFIED' | 'LEAST_CONN' | 'RANDOM' | 'PASSTHROUGH' | 'ROUND_ROBIN' | 'LEAST_REQUEST';
  consistentHash?: {
    httpHeaderName?: string;
    httpCookie?: { name: string; path?: string; ttl?: string };
    useSourceIp?: boolean;
    httpQueryParameterName?: string;
    ringHash?: { minimumRingSize?: number };
    maglev?: { tableSize?: number };
    minimumRingSize?: number;
  };
  localityLbSetting?: LocalityLbSetting;
  warmupDurationSecs?: string;
}

export interface ConnectionPoolSettings {
  tcp?: {
    maxConnections?: number;
    connectTimeout?: string;
    tcpKeepalive?: { probes?: number; time?: string; interval?: string };
    maxConnectionDuration?: string;
    idleTimeout?: string;
  };
  http?: {
    http1MaxPendingRequests?: number;
    http2MaxRequests?: number;
    maxRequestsPerConnection?: number;
    maxRetries?: number;
    idleTimeout?: string;
    h2UpgradePolicy?: 'DEFAULT' | 'DO_NOT_UPGRADE' | 'UPGRADE';
    useClientProtocol?: boolean;
    maxConcurrentStreams?: number;
  };
}

export interface OutlierDetection {
  consecutive5xxErrors?: number;
  consecutiveGatewayErrors?: number;
  consecutiveLocalOriginFailures?: number;
  splitExternalLocalOriginErrors?: boolean;
  interval?: string;
  baseEjectionTime?: string;
  maxEjectionPercent?: number;
  minHealthPercent?: number;
}

export interface ClientTLSSettings {
  mode?: 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL';
  clientCertificate?: string;
  privateKey?: string;
  caCertificates?: string;
  credentialName?: string;
  subjectAltNames?: string[];
  sni?: string;
  insecureSkipVerify?: boolean;
}

export interface PortTrafficPolicy {
  port?: PortSelector;
  loadBalancer?: LoadBalancerSettings;
  connectionPool?: ConnectionPoolSettings;
  outlierDetection?: OutlierDetection;
  tls?: ClientTLSSettings;
}

export interface TrafficPolicy extends Omit<PortTrafficPolicy, 'port'> {
  portLevelSettings?: PortTrafficPolicy[];
}

export interface Subset {
  name: string;
  labels?: Labels;
  trafficPolicy?: TrafficPolicy;
}

export interface DestinationRuleSpec {
  host: string;
  trafficPolicy?: TrafficPolicy;
  subsets?: Subset[];
  exportTo?: string[];
  workloadSelector?: WorkloadSelector;
}

const distribute = obj(
  {
    from: str({ check: (s) => (isLocality(s, true) ? undefined : `invalid locality ${JSON.stringify(s)} (use region/zone/subzone; '*' only last)`) }),
    to: mapOf(int({ min: 0, max: 100 }), (k) => (isLocality(k, true) ? undefined : `invalid locality ${JSON.stringify(k)} (use region/zone/subzone; '*' only last)`)),
  },
  {
    required: ['from', 'to'],
    check: (c, v, p) => {
      if (!isObject(v.to)) return;
      const weights = Object.values(v.to);
      if (weights.length === 0) return c.error([...p, 'to'], 'must not be empty');
      const sum = weights.reduce<number>((a, w) => a + (typeof w === 'number' ? w : 0), 0);
      if (sum !== 100) c.error([...p, 'to'], `weights must sum to 100 (got ${sum})`);
    },
  },
);

const region = str({ check: (s) => (s !== '' && !s.includes('/') && !s.includes('*') ? undefined : `invalid region ${JSON.stringify(s)} (failover is between regions)`) });

const failover = obj(
  { from: region, to: region },
  {
    required: ['from', 'to'],
    check: (c, v, p) => {
      if (typeof v.from === 'string' && v.from === v.to) c.error([...p, 'to'], `failover must go to a different region (got ${JSON.stringify(v.to)} twice)`);
    },
  },
);

const localityLbSetting = obj(
  { enabled: bool, distribute: arr(distribute), failover: arr(failover), failoverPriority: arr(str({ nonEmpty: true })) },
  { exclusive: [['distribute', 'failover']] },
);

const consistentHash = obj(
  {
    httpHeaderName: str({ nonEmpty: true }),
    httpCookie: obj({ name: str({ nonEmpty: true }), path: str(), ttl: duration({ minMs: 0 }) }, { required: ['name'] }),
    useSourceIp: bool,
    httpQueryParameterName: str({ nonEmpty: true }),
    ringHash: obj({ minimumRingSize: int({ min: 0 }) }),
    maglev: obj({ tableSize: int({ min: 1 }) }),
    minimumRingSize: int({ min: 0 }),
  },
  { check: oneOf(['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'], 'one of') },
);

const loadBalancer = obj(
  {
    simple: enumOf(['UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST']),
    consistentHash,
    localityLbSetting,
    warmupDurationSecs: duration(),
    warmup: any,
  },
  { exclusive: [['simple', 'consistentHash']] },
);

const connectionPool = obj({
  tcp: obj({
    maxConnections: int({ min: 0 }),
    connectTimeout: duration(),
    tcpKeepalive: obj({ probes: int({ min: 0 }), time: duration(), interval: duration() }),
    maxConnectionDuration: duration(),
    idleTimeout: duration(),
  }),
  http: obj({
    http1MaxPendingRequests: int({ min: 0 }),
    http2MaxRequests: int({ min: 0 }),
    maxRequestsPerConnection: int({ min: 0 }),
    maxRetries: int({ min: 0 }),
    idleTimeout: duration(),
    h2UpgradePolicy: enumOf(['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE']),
    useClientProtocol: bool,
    maxConcurrentStreams: int({ min: 0 }),
  }),
});

const outlierDetection = obj(
  {
    consecutive5xxErrors: int({ min: 0 }),
    consecutiveGatewayErrors: int({ min: 0 }),
    consecutiveLocalOriginFailures: int({ min: 0 }),
    consecutiveErrors: int({ min: 0 }),
    splitExternalLocalOriginErrors: bool,
    interval: duration(),
    baseEjectionTime: duration(),
    maxEjectionPercent: int({ min: 0, max: 100 }),
    minHealthPercent: int({ min: 0, max: 100 }),
  },
  {
    check: (c, v, p) => {
      if (isSet(v.consecutiveErrors)) c.warn([...p, 'consecutiveErrors'], 'deprecated (use consecutive5xxErrors)');
    },
  },
);

const clientTls = obj(
  {
    mode: enumOf(['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL']),
    clientCertificate: str(),
    privateKey: str(),
    caCertificates: str(),
    caCrl: str(),
    credentialName: str(),
    subjectAltNames: arr(str()),
    sni: str(),
    insecureSkipVerify: bool,
  },
  {
    check: (c, v, p) => {
      const certs = ['clientCertificate', 'privateKey', 'caCertificates', 'credentialName'].filter((k) => isSet(v[k]));
      if (v.mode === 'ISTIO_MUTUAL' && certs.length > 0) {
        c.error([...p, certs[0]!], 'must not be set when mode is ISTIO_MUTUAL (the mesh provides the certificates)');
      }
      if (v.mode === 'MUTUAL' && !isSet(v.credentialName)) {
        for (const k of ['clientCertificate', 'privateKey']) {
          if (!isSet(v[k])) c.error([...p, k], 'missing required field (mode is MUTUAL and no credentialName)');
        }
      }
    },
  },
);

/** Istio only fails over across localities when it can tell an endpoint is unhealthy. */
function checkLocalityNeedsOutlier(c: Checker, v: Record<string, unknown>, p: Path): void {
  const lb = v.loadBalancer;
  if (!isObject(lb) || !isObject(lb.localityLbSetting)) return;
  const l = lb.localityLbSetting;
  const fo = (Array.isArray(l.failover) && l.failover.length > 0) || (Array.isArray(l.failoverPriority) && l.failoverPriority.length > 0);
  if (fo && l.enabled !== false && !isSet(v.outlierDetection)) {
    c.warn([...p, 'loadBalancer', 'localityLbSetting'], 'locality failover has no effect without outlierDetection');
  }
}

const portTrafficPolicy = obj(
  { port: portSelector, loadBalancer, connectionPool, outlierDetection, tls: clientTls },
  { required: ['port'], check: checkLocalityNeedsOutlier },
);

const trafficPolicy = obj(
  {
    loadBalancer,
    connectionPool,
    outlierDetection,
    tls: clientTls,
    portLevelSettings: arr(portTrafficPolicy),
    tunnel: any,
    proxyProtocol: any,
    retryBudget: any,
  },
  {
    check: (c, v, p) => {
      checkLocalityNeedsOutlier(c, v, p);
      if (!Array.isArray(v.portLevelSettings)) return;
      const seen = new Set<unknown>();
      v.portLevelSettings.forEach((s, i) => {
        const n = isObject(s) && isObject(s.port) ? s.port.number : undefined;
        if (n === undefined) return;
        if (seen.has(n)) c.error([...p, 'portLevelSettings', i, 'port', 'number'], `duplicate port ${String(n)}`);
        seen.add(n);
      });
    },
  },
);

const subset = obj({ name: dnsLabel, labels, trafficPolicy }, { required: ['name'] });

const destinationRuleSpec = obj(
  {
    host: str({ check: (s) => (isWildcardHost(s) ? undefined : `invalid host ${JSON.stringify(s)}`) }),
    trafficPolicy,
    subsets: arr(subset),
    exportTo,
    workloadSelector: selector,
  },
  { required: ['host'], check: (c, v, p) => uniqueBy(c, v.subsets, [...p, 'subsets'], 'name', 'subset') },
);

// ================================================================= WorkloadEntry / ServiceEntry

export interface WorkloadEntrySpec {
  address?: string;
  ports?: Record<string, number>;
  labels?: Labels;
  network?: string;
  locality?: string;
  weight?: number;
  serviceAccount?: string;
}

export interface ServicePortIstio {
  number: number;
  protocol?: string;
  name: string;
  targetPort?: number;
}

export interface ServiceEntrySpec {
  hosts: string[];
  addresses?: string[];
  ports?: ServicePortIstio[];
  location?: 'MESH_EXTERNAL' | 'MESH_INTERNAL';
  resolution?: 'NONE' | 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN';
  endpoints?: WorkloadEntrySpec[];
  workloadSelector?: { labels?: Labels };
  exportTo?: string[];
  subjectAltNames?: string[];
}

const address = str({
  check: (s) => {
    if (s.startsWith('unix://')) return s.length > 7 ? undefined : `invalid address ${JSON.stringify(s)}`;
    return isIP(s) || isWildcardHost(s) && !s.includes('*') ? undefined : `invalid address ${JSON.stringify(s)} (an IP, a hostname or unix://path)`;
  },
});

const workloadEntryFields: Record<string, Check> = {
  address,
  ports: mapOf(port, (k) => (/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(k) ? undefined : `invalid port name ${JSON.stringify(k)}`)),
  labels,
  network: str({ nonEmpty: true }),
  locality,
  weight: int({ min: 0, max: 4294967295 }),
  serviceAccount: dnsLabel,
};

const workloadEntrySpec = obj(workloadEntryFields, {
  check: (c, v, p) => {
    // Without an address the endpoint is only reachable through its network's gateway.
    if (!isSet(v.address) && !isSet(v.network)) c.error([...p, 'address'], 'missing required field (or set network)');
  },
});

/** An empty protocol in a ServiceEntry port means "detect it" for Istio (its pilot benchmarks use it). */
const sniffedProtocol: Check = (c, v, p) => v === '' || protocol(c, v, p);

const sePort = obj({ number: port, protocol: sniffedProtocol, name: dnsLabel, targetPort: port }, { required: ['number', 'name'] });

const serviceEntrySpec = obj(
  {
    hosts: arr(host, { min: 1, unique: true }),
    addresses: arr(ipOrCidr),
    ports: arr(sePort),
    location: enumOf(['MESH_EXTERNAL', 'MESH_INTERNAL']),
    resolution: enumOf(['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN']),
    endpoints: arr(workloadEntrySpec),
    workloadSelector: obj({ labels }),
    exportTo,
    subjectAltNames: arr(str()),
  },
  {
    required: ['hosts'],
    exclusive: [['endpoints', 'workloadSelector']],
    check: (c, v, p) => {
      uniqueBy(c, v.ports, [...p, 'ports'], 'name', 'port name');
      uniqueBy(c, v.ports, [...p, 'ports'], 'number', 'port');
      const portNames = new Set(Array.isArray(v.ports) ? v.ports.map((x) => (isObject(x) ? x.name : undefined)) : []);
      const resolution = v.resolution ?? 'NONE';
      const eps = Array.isArray(v.endpoints) ? v.endpoints : [];
      if (resolution === 'STATIC' && eps.length === 0 && !isSet(v.workloadSelector)) {
        c.error([...p, 'endpoints'], 'missing required field (resolution is STATIC)');
      }
      if ((resolution === 'DNS' || resolution === 'DNS_ROUND_ROBIN') && eps.length === 0 && Array.isArray(v.hosts)) {
        v.hosts.forEach((h, i) => {
          if (typeof h === 'string' && h.includes('*')) c.error([...p, 'hosts', i], `wildcard host ${JSON.stringify(h)} cannot be resolved by DNS (add endpoints or use resolution NONE)`);
        });
      }
      if (resolution === 'NONE' && eps.length > 0) c.warn([...p, 'resolution'], 'endpoints are ignored when resolution is NONE');
      eps.forEach((ep, i) => {
        if (!isObject(ep)) return;
        if (resolution === 'STATIC' && typeof ep.address === 'string' && !isIP(ep.address) && !ep.address.startsWith('unix://')) {
          c.error([...p, 'endpoints', i, 'address'], `must be an IP address when resolution is STATIC (got ${JSON.stringify(ep.address)})`);
        }
        if (isObject(ep.ports) && Array.isArray(v.ports)) {
          for (const name of Object.keys(ep.ports)) {
            if (!portNames.has(name)) c.error([...p, 'endpoints', i, 'ports', name], `port ${JSON.stringify(name)} is not one of the ServiceEntry's ports`);
          }
        }
      });
    },
  },
);

export interface WorkloadGroupSpec {
  metadata?: { labels?: Labels; annotations?: Record<string, string> };
  template: WorkloadEntrySpec;
  probe?: unknown;
}

const workloadGroupSpec = obj(
  {
    metadata: obj({ labels, annotations: mapOf(str()) }),
    template: obj(workloadEntryFields, {
      check: (c, v, p) => {
        if (isSet(v.address)) c.error([...p, 'address'], 'must not be set in a WorkloadGroup template (each workload has its own)');
      },
    }),
    probe: any,
  },
  { required: ['template'] },
);

// ================================================================= Gateway

export interface ServerTLSSettings {
  httpsRedirect?: boolean;
  mode?: 'PASSTHROUGH' | 'SIMPLE' | 'MUTUAL' | 'AUTO_PASSTHROUGH' | 'ISTIO_MUTUAL' | 'OPTIONAL_MUTUAL';
  credentialName?: string;
  serverCertificate?: string;
  privateKey?: string;
  caCertificates?: string;
  subjectAltNames?: string[];
  minProtocolVersion?: string;
  maxProtocolVersion?: string;
  cipherSuites?: string[];
}

export interface GatewayServer {
  port: { number: number; protocol: string; name?: string; targetPort?: number };
  hosts: string[];
  tls?: ServerTLSSettings;
  name?: string;
  bind?: string;
  defaultEndpoint?: string;
}

export interface GatewaySpec {
  selector?: Labels;
  servers: GatewayServer[];
}

const TLS_VERSIONS = ['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3'];

const gatewayHost = str({
  check: (s) => {
    const slash = s.indexOf('/');
    const ns = slash >= 0 ? s.slice(0, slash) : undefined;
    const h = slash >= 0 ? s.slice(slash + 1) : s;
    if (ns !== undefined && ns !== '.' && ns !== '*' && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ns)) return `invalid namespace in host ${JSON.stringify(s)}`;
    return isWildcardHost(h) ? undefined : `invalid host ${JSON.stringify(s)}`;
  },
});

const gatewayServer = obj(
  {
    port: obj({ number: port, protocol: protocol, name: str({ nonEmpty: true }), targetPort: port }, { required: ['number', 'protocol', 'name'] }),
    hosts: arr(gatewayHost, { min: 1 }),
    tls: obj(
      {
        httpsRedirect: bool,
        mode: enumOf(['PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL']),
        credentialName: str(),
        credentialNames: arr(str()),
        serverCertificate: str(),
        privateKey: str(),
        caCertificates: str(),
        caCrl: str(),
        subjectAltNames: arr(str()),
        verifyCertificateSpki: arr(str()),
        verifyCertificateHash: arr(str()),
        minProtocolVersion: enumOf(TLS_VERSIONS),
        maxProtocolVersion: enumOf(TLS_VERSIONS),
        cipherSuites: arr(str()),
      },
      {
        check: (c, v, p) => {
          if ((v.mode === 'SIMPLE' || v.mode === 'MUTUAL') && !isSet(v.credentialName) && !isSet(v.credentialNames)) {
            for (const k of ['serverCertificate', 'privateKey']) {
              if (!isSet(v[k])) c.error([...p, k], `missing required field (mode is ${String(v.mode)} and no credentialName)`);
            }
          }
        },
      },
    ),
    name: str(),
    bind: str(),
    defaultEndpoint: str(),
  },
  {
    required: ['port', 'hosts'],
    check: (c, v, p) => {
      const proto = isObject(v.port) && typeof v.port.protocol === 'string' ? v.port.protocol.toUpperCase() : '';
      if (proto === 'HTTPS' && !isSet(v.tls)) c.error([...p, 'tls'], 'missing required field (port protocol is HTTPS)');
    },
  },
);

const gatewaySpec = obj(
  { selector: labels, servers: arr(gatewayServer, { min: 1 }) },
  {
    required: ['servers'],
    check: (c, v, p) => {
      if (!Array.isArray(v.servers)) return;
      const names = new Set<unknown>();
      v.servers.forEach((s, i) => {
        if (!isObject(s) || !isObject(s.port) || !isSet(s.port.name)) return;
        if (names.has(s.port.name)) c.error([...p, 'servers', i, 'port', 'name'], `duplicate port name ${JSON.stringify(s.port.name)}`);
        names.add(s.port.name);
      });
    },
  },
);

// ================================================================= descriptors

const base = { group: NETWORKING, versions: NETWORKING_VERSIONS, namespaced: true, specRequired: true } as const;

export const workloadEntryKind: KindDescriptor<WorkloadEntrySpec> = {
  ...base,
  kind: 'WorkloadEntry',
  exportToPeers: true,
  summary: 'one workload outside Kubernetes: address, ports, labels, network, locality',
  spec: workloadEntrySpec,
};

export const workloadGroupKind: KindDescriptor<WorkloadGroupSpec> = {
  ...base,
  kind: 'WorkloadGroup',
  exportToPeers: false,
  summary: 'a template for WorkloadEntries that register themselves',
  spec: workloadGroupSpec,
};

export const serviceEntryKind: KindDescriptor<ServiceEntrySpec> = {
  ...base,
  kind: 'ServiceEntry',
  exportToPeers: false,
  summary: 'a service by host name (external, or remote like <name>.<ns>.global)',
  spec: serviceEntrySpec,
};

export const virtualServiceKind: KindDescriptor<VirtualServiceSpec> = {
  ...base,
  kind: 'VirtualService',
  exportToPeers: false,
  summary: 'routing rules: matches, weighted routes, retries, timeouts, faults',
  spec: virtualServiceSpec,
};

export const destinationRuleKind: KindDescriptor<DestinationRuleSpec> = {
  ...base,
  kind: 'DestinationRule',
  exportToPeers: false,
  summary: 'policies after routing: subsets, load balancing, locality, outlier detection, TLS',
  spec: destinationRuleSpec,
};

export const gatewayKind: KindDescriptor<GatewaySpec> = {
  ...base,
  kind: 'Gateway',
  exportToPeers: false,
  summary: 'ports and hosts a gateway proxy serves (ingress, east-west)',
  spec: gatewaySpec,
};
