/**
 * What the proxy knows from xDS, per type: the last good (ACKed) resources and the last rejected
 * update, and how to turn them into one consistent ConfigGraph. Transport-free (the ADS stream
 * lives in client.ts), so it is tested with plain objects.
 *
 * Rules (Envoy's, adapted to "apply only a resolved graph"):
 * - A response is decoded and validated resource by resource; any error rejects the whole
 *   response (NACK with every error) and the type keeps its last good resources.
 * - A response that decodes cleanly is also checked against the other types' last good state
 *   (resolveGraph); errors it introduces (e.g. a route_config with validate_clusters naming an
 *   unknown cluster) reject it too. "Not received yet" is not an error but warming.
 * - Warming: the graph is applied only when every RDS route config and SDS secret a listener or
 *   cluster names has arrived, and every EDS cluster that is new (or whose EDS service changed)
 *   has received its ClusterLoadAssignment, or `initialFetchTimeoutMs` passed (then it starts
 *   with no endpoints, "no healthy upstream", as Envoy after initial_fetch_timeout).
 */
import {
  CLUSTER_TYPE,
  decodeResource,
  ENDPOINT_TYPE,
  LISTENER_TYPE,
  ROUTE_TYPE,
  SECRET_TYPE,
  shortTypeName,
  type AnyMsg,
  type DeltaResourceMsg,
  type PlainObject,
} from '../../xds/index.js';
import { decodeCluster, decodeEndpoints, decodeListener, decodeRouteConfig, decodeSecret, resolveGraph } from '../decode/index.js';
import type {
  ClusterModel,
  ConfigGraph,
  DecodeResult,
  EndpointsModel,
  ListenerModel,
  RouteConfigModel,
  SecretModel,
  TlsCertificateRef,
  ValidationContextRef,
} from '../model.js';

/** The order Envoy initialises in; also the order of /config_dump. */
export const XDS_TYPES: readonly string[] = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE];

/** The secret Istio calls ROOTCA: the trust bundle. Always subscribed (sidecars). */
export const ROOTCA = 'ROOTCA';

export interface AcceptedResource {
  readonly name: string;
  /** Delta: the server's per-resource version; SotW: the response's version_info. */
  readonly version: string;
  /** proto3 JSON as decoded (for /config_dump). */
  readonly raw: PlainObject;
  readonly model: unknown;
}

export interface RejectedUpdate {
  readonly version: string;
  readonly nonce: string;
  readonly errors: readonly string[];
  /** Names in the rejected response. */
  readonly resources: readonly string[];
  /** The rejected resources as received (those that decoded at all), for /config_dump. */
  readonly raw: readonly PlainObject[];
  readonly at: number;
}

export interface TypeState {
  readonly typeUrl: string;
  /** Last good resources by name. */
  accepted: Map<string, AcceptedResource>;
  /** SotW version_info / delta system_version_info of the last accepted response. */
  version: string;
  /** Set once any response of this type was accepted. */
  received: boolean;
  acceptedAt: number | undefined;
  lastRejected: RejectedUpdate | undefined;
}

export type Update =
  | { kind: 'sotw'; version: string; resources: readonly AnyMsg[] }
  | { kind: 'delta'; version: string; resources: readonly DeltaResourceMsg[]; removed: readonly string[] };

export interface HandleResult {
  ack: boolean;
  errors: string[];
  /** Subscriptions (EDS/RDS/SDS names) may have changed. */
  subscriptionsChanged: boolean;
}

export type ResolveResult =
  | { kind: 'ready'; graph: ConfigGraph }
  | { kind: 'warming'; waiting: string[] }
  | { kind: 'error'; errors: string[] };

type Decoder = (o: unknown) => DecodeResult<unknown>;

const DECODERS: Record<string, { decode: Decoder; name: (m: unknown) => string }> = {
  [CLUSTER_TYPE]: { decode: decodeCluster, name: (m) => (m as ClusterModel).name },
  [ENDPOINT_TYPE]: { decode: decodeEndpoints, name: (m) => (m as EndpointsModel).clusterName },
  [LISTENER_TYPE]: { decode: decodeListener, name: (m) => (m as ListenerModel).name },
  [ROUTE_TYPE]: { decode: decodeRouteConfig, name: (m) => (m as RouteConfigModel).name },
  [SECRET_TYPE]: { decode: decodeSecret, name: (m) => (m as SecretModel).name },
};

const WARMING = /not received/;

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export interface XdsStateOptions {
  /** Secrets the proxy holds itself (its own certificate as `default`); they win over xDS. */
  localSecrets?: () => readonly SecretModel[];
  now?: () => number;
}

export class XdsState {
  readonly types = new Map<string, TypeState>();
  private readonly localSecrets: () => readonly SecretModel[];
  private readonly now: () => number;

  constructor(opts: XdsStateOptions = {}) {
    this.localSecrets = opts.localSecrets ?? (() => []);
    this.now = opts.now ?? Date.now;
    for (const t of XDS_TYPES) {
      this.types.set(t, { typeUrl: t, accepted: new Map(), version: '', received: false, acceptedAt: undefined, lastRejected: undefined });
    }
  }

  type(typeUrl: string): TypeState {
    const t = this.types.get(typeUrl);
    if (!t) throw new Error(`unknown xDS type ${typeUrl}`);
    return t;
  }

  /** Names of secrets provided locally (never subscribed). */
  localSecretNames(): Set<string> {
    return new Set(this.localSecrets().map((s) => s.name));
  }

  /** Validates one response; on success it becomes the type's last good state. */
  handle(typeUrl: string, update: Update, nonce: string): HandleResult {
    const t = this.type(typeUrl);
    const dec = DECODERS[typeUrl]!;
    const errors: string[] = [];
    const raws: PlainObject[] = [];
    const names: string[] = [];
    const fresh = new Map<string, AcceptedResource>();
    const decodeOne = (any: AnyMsg | null | undefined, expectedName: string | undefined, version: string): void => {
      const where = expectedName !== undefined ? `${shortTypeName(typeUrl)} ${JSON.stringify(expectedName)}` : shortTypeName(typeUrl);
      if (!any) {
        errors.push(`${where}: resource has no body`);
        return;
      }
      if (any.type_url !== typeUrl) {
        errors.push(`${where}: type_url ${JSON.stringify(any.type_url)} in a ${shortTypeName(typeUrl)} response`);
        return;
      }
      let raw: PlainObject;
      try {
        raw = decodeResource(any);
      } catch (e) {
        errors.push(`${where}: cannot decode: ${errText(e)}`);
        return;
      }
      raws.push(raw);
      const r = dec.decode(raw);
      if ('errors' in r) {
        errors.push(...r.errors);
        if (expectedName !== undefined) names.push(expectedName);
        return;
      }
      const name = dec.name(r.ok);
      names.push(name);
      if (expectedName !== undefined && expectedName !== '' && expectedName !== name) {
        errors.push(`${where}: resource is named ${JSON.stringify(name)}`);
        return;
      }
      if (fresh.has(name)) {
        errors.push(`${shortTypeName(typeUrl)} ${JSON.stringify(name)}: duplicate name in one response`);
        return;
      }
      fresh.set(name, { name, version, raw, model: r.ok });
    };

    let candidate: Map<string, AcceptedResource>;
    if (update.kind === 'sotw') {
      for (const any of update.resources) decodeOne(any, undefined, update.version);
      candidate = fresh;
    } else {
      for (const r of update.resources) decodeOne(r.resource, r.name, r.version);
      candidate = new Map(t.accepted);
      for (const n of update.removed) candidate.delete(n);
      for (const [n, r] of fresh) candidate.set(n, r);
    }

    if (errors.length === 0) {
      // Cross-resource errors this update introduces (warming aside).
      const before = new Set(this.resolveErrors(new Map()));
      const after = this.resolveErrors(new Map([[typeUrl, candidate]]));
      errors.push(...after.filter((e) => !before.has(e) && !WARMING.test(e)));
    }

    if (errors.length > 0) {
      t.lastRejected = { version: update.version, nonce, errors, resources: names, raw: raws, at: this.now() };
      return { ack: false, errors, subscriptionsChanged: false };
    }
    const subsBefore = this.subscriptionKey();
    t.accepted = candidate;
    t.version = update.version;
    t.received = true;
    t.acceptedAt = this.now();
    this.prune();
    return { ack: true, errors: [], subscriptionsChanged: this.subscriptionKey() !== subsBefore };
  }

  /** Drops EDS/RDS/SDS resources nobody subscribes to any more. */
  private prune(): void {
    for (const typeUrl of [ENDPOINT_TYPE, ROUTE_TYPE, SECRET_TYPE]) {
      const want = new Set(this.subscriptions(typeUrl));
      const t = this.type(typeUrl);
      for (const n of [...t.accepted.keys()]) if (!want.has(n)) t.accepted.delete(n);
    }
  }

  private subscriptionKey(): string {
    return [ENDPOINT_TYPE, ROUTE_TYPE, SECRET_TYPE].map((t) => this.subscriptions(t).join(',')).join('|');
  }

  /** Resource names to subscribe to, sorted; CDS and LDS are wildcard (empty list). */
  subscriptions(typeUrl: string): string[] {
    const out = new Set<string>();
    if (typeUrl === ENDPOINT_TYPE) {
      for (const r of this.type(CLUSTER_TYPE).accepted.values()) {
        const c = r.model as ClusterModel;
        if (c.type === 'EDS') out.add(c.edsServiceName);
      }
    } else if (typeUrl === ROUTE_TYPE) {
      for (const r of this.type(LISTENER_TYPE).accepted.values()) {
        for (const fc of chainsOf(r.model as ListenerModel)) {
          if (fc.filter.kind === 'http' && fc.filter.hcm.routeSource.kind === 'rds') out.add(fc.filter.hcm.routeSource.routeConfigName);
        }
      }
    } else if (typeUrl === SECRET_TYPE) {
      const local = this.localSecretNames();
      out.add(ROOTCA);
      const addCert = (ref: TlsCertificateRef): void => void (ref.kind === 'sds' && out.add(ref.name));
      const addVal = (ref: ValidationContextRef | null): void => void (ref?.kind === 'sds' && out.add(ref.name));
      for (const r of this.type(LISTENER_TYPE).accepted.values()) {
        for (const fc of chainsOf(r.model as ListenerModel)) {
          if (!fc.tls) continue;
          fc.tls.certificates.forEach(addCert);
          addVal(fc.tls.validation);
        }
      }
      for (const r of this.type(CLUSTER_TYPE).accepted.values()) {
        const tls = (r.model as ClusterModel).tls;
        if (!tls) continue;
        tls.certificates.forEach(addCert);
        addVal(tls.validation);
      }
      for (const n of local) out.delete(n);
    } else return [];
    return [...out].sort();
  }

  private models<T>(typeUrl: string, override: Map<string, Map<string, AcceptedResource>>): T[] {
    const m = override.get(typeUrl) ?? this.type(typeUrl).accepted;
    return [...m.values()].map((r) => r.model as T);
  }

  private secrets(override: Map<string, Map<string, AcceptedResource>>): SecretModel[] {
    const local = this.localSecrets();
    const names = new Set(local.map((s) => s.name));
    return [...this.models<SecretModel>(SECRET_TYPE, override).filter((s) => !names.has(s.name)), ...local];
  }

  private resolveErrors(override: Map<string, Map<string, AcceptedResource>>): string[] {
    const r = resolveGraph(
      this.models<ListenerModel>(LISTENER_TYPE, override),
      this.models<RouteConfigModel>(ROUTE_TYPE, override),
      this.models<ClusterModel>(CLUSTER_TYPE, override),
      this.models<EndpointsModel>(ENDPOINT_TYPE, override),
      this.secrets(override),
    );
    return 'errors' in r ? r.errors : [];
  }

  /**
   * The graph to apply now, or why not. `applied` is the graph in use (a cluster it already had
   * does not warm again); `warmingExpired` lets EDS clusters start without endpoints.
   */
  resolve(applied: ConfigGraph | undefined, warmingExpired = false): ResolveResult {
    const cds = this.type(CLUSTER_TYPE);
    const lds = this.type(LISTENER_TYPE);
    const waiting: string[] = [];
    if (!cds.received) waiting.push('CDS');
    if (!lds.received) waiting.push('LDS');
    if (waiting.length) return { kind: 'warming', waiting };
    const eds = this.type(ENDPOINT_TYPE).accepted;
    if (!warmingExpired) {
      for (const r of cds.accepted.values()) {
        const c = r.model as ClusterModel;
        if (c.type !== 'EDS' || eds.has(c.edsServiceName)) continue;
        const old = applied?.clusters.get(c.name);
        if (old && old.type === 'EDS' && old.edsServiceName === c.edsServiceName) continue;
        waiting.push(`EDS ${JSON.stringify(c.edsServiceName)}`);
      }
    }
    const r = resolveGraph(
      this.models<ListenerModel>(LISTENER_TYPE, new Map()),
      this.models<RouteConfigModel>(ROUTE_TYPE, new Map()),
      this.models<ClusterModel>(CLUSTER_TYPE, new Map()),
      this.models<EndpointsModel>(ENDPOINT_TYPE, new Map()),
      this.secrets(new Map()),
    );
    if ('errors' in r) {
      const warm = r.errors.filter((e) => WARMING.test(e));
      const hard = r.errors.filter((e) => !WARMING.test(e));
      if (hard.length) return { kind: 'error', errors: hard };
      return { kind: 'warming', waiting: [...waiting, ...warm] };
    }
    if (waiting.length) return { kind: 'warming', waiting };
    // An EDS cluster applied before keeps its last endpoints while its new EDS name warms.
    if (applied) {
      const endpoints = new Map(r.ok.endpoints);
      for (const [name, c] of r.ok.clusters) {
        if (c.type === 'EDS' && !eds.has(c.edsServiceName) && applied.endpoints.has(name)) endpoints.set(name, applied.endpoints.get(name)!);
      }
      return { kind: 'ready', graph: { ...r.ok, endpoints } };
    }
    return { kind: 'ready', graph: r.ok };
  }

  /** Delta reconnect: what we hold, per name. */
  resourceVersions(typeUrl: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [n, r] of this.type(typeUrl).accepted) out[n] = r.version;
    return out;
  }
}

function chainsOf(l: ListenerModel) {
  return l.defaultFilterChain ? [...l.filterChains, l.defaultFilterChain] : l.filterChains;
}
