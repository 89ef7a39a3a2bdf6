/**
 * What the proxy knows from xDS, per type: the generic ResourceStore (last good resources, last
 * rejected update) with the proxy's decoders plugged in, and how to turn them into one consistent
 * ConfigGraph. Transport-free (the stream is the generic DiscoveryClient), so it is tested with
 * plain objects.
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
  NAME_TABLE_TYPE,
  ROUTE_TYPE,
  SECRET_TYPE,
  type AnyMsg,
  type PlainObject,
} from '../../xds/index.js';
import { ResourceStore, type AcceptedResource, type Decoded, type DecoderTable, type HandleResult as StoreResult, type Update } from '../../xds/client/index.js';
import { decodeCluster, decodeEndpoints, decodeListener, decodeNameTable, decodeRouteConfig, decodeSecret, resolveGraph, type NameTableModel } from '../decode/index.js';
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

export type { AcceptedResource, RejectedUpdate, TypeState, Update } from '../../xds/client/index.js';

/**
 * The order Envoy initialises in; also the order of /config_dump. NDS (Istio's name table for the
 * DNS proxy) is last and outside the graph: it is subscribed only when the DNS proxy runs.
 */
export const XDS_TYPES: readonly string[] = [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE, NAME_TABLE_TYPE];

/** The secret Istio calls ROOTCA: the trust bundle. Always subscribed (sidecars). */
export const ROOTCA = 'ROOTCA';

/** type URL → the validated model its decoder yields. */
export interface ProxyResources {
  [CLUSTER_TYPE]: ClusterModel;
  [ENDPOINT_TYPE]: EndpointsModel;
  [LISTENER_TYPE]: ListenerModel;
  [ROUTE_TYPE]: RouteConfigModel;
  [SECRET_TYPE]: SecretModel;
  [NAME_TABLE_TYPE]: NameTableModel;
}

export interface HandleResult extends StoreResult {
  /** Subscriptions (EDS/RDS/SDS names) may have changed. */
  subscriptionsChanged: boolean;
}

export type ResolveResult =
  | { kind: 'ready'; graph: ConfigGraph }
  | { kind: 'warming'; waiting: string[] }
  | { kind: 'error'; errors: string[] };

/** proto3 JSON first (kept for /config_dump), then the proxy's validating decoder. */
function envoyDecoder<T>(decode: (o: unknown) => DecodeResult<T>, name: (m: T) => string) {
  return {
    decode(any: AnyMsg): Decoded<T> {
      const raw: PlainObject = decodeResource(any);
      const r = decode(raw);
      return 'errors' in r ? { ok: false, errors: r.errors, raw } : { ok: true, name: name(r.ok), value: r.ok, raw };
    },
  };
}

const DECODERS: DecoderTable<ProxyResources> = {
  [CLUSTER_TYPE]: envoyDecoder(decodeCluster, (m) => m.name),
  [ENDPOINT_TYPE]: envoyDecoder(decodeEndpoints, (m) => m.clusterName),
  [LISTENER_TYPE]: envoyDecoder(decodeListener, (m) => m.name),
  [ROUTE_TYPE]: envoyDecoder(decodeRouteConfig, (m) => m.name),
  [SECRET_TYPE]: envoyDecoder(decodeSecret, (m) => m.name),
  // Istio sends its one table unnamed.
  [NAME_TABLE_TYPE]: envoyDecoder(decodeNameTable, () => ''),
};

const WARMING = /not received/;

export interface XdsStateOptions {
  /** Secrets the proxy holds itself (its own certificate as `default`); they win over xDS. */
  localSecrets?: () => readonly SecretModel[];
  now?: () => number;
}

export class XdsState extends ResourceStore<ProxyResources> {
  private readonly localSecrets: () => readonly SecretModel[];

  constructor(opts: XdsStateOptions = {}) {
    super({
      decoders: DECODERS,
      order: XDS_TYPES as (keyof ProxyResources)[],
      // Cross-resource errors this update introduces (warming aside).
      crossCheck: (typeUrl, candidate) => {
        const before = new Set(this.resolveErrors(new Map()));
        return this.resolveErrors(new Map([[typeUrl, candidate]])).filter((e) => !before.has(e) && !WARMING.test(e));
      },
      // Only LDS and CDS responses are the whole state. An EDS/RDS/SDS SotW response may carry
      // just what changed (the control plane's incremental EDS); pruning drops what nobody
      // subscribes to any more.
      partialSotw: new Set([ENDPOINT_TYPE, ROUTE_TYPE, SECRET_TYPE]),
      ...(opts.now ? { now: opts.now } : {}),
    });
    this.localSecrets = opts.localSecrets ?? (() => []);
  }

  /** Names of secrets provided locally (never subscribed). */
  localSecretNames(): Set<string> {
    return new Set(this.localSecrets().map((s) => s.name));
  }

  /** Validates one response; on success it becomes the type's last good state, and unwanted EDS/RDS/SDS go. */
  override handle(typeUrl: string, update: Update, nonce: string): HandleResult {
    const subsBefore = this.subscriptionKey();
    const r = super.handle(typeUrl, update, nonce);
    if (!r.ack) return { ...r, subscriptionsChanged: false };
    this.prune();
    return { ...r, subscriptionsChanged: this.subscriptionKey() !== subsBefore };
  }

  /** Drops EDS/RDS/SDS resources nobody subscribes to any more. */
  private prune(): void {
    for (const typeUrl of [ENDPOINT_TYPE, ROUTE_TYPE, SECRET_TYPE]) {
      const want = new Set(this.subscriptions(typeUrl));
      const t = this.type(typeUrl);
      for (const n of [...t.accepted.keys()]) if (!want.has(n)) t.accepted.delete(n);
    }
  }

  /** The name table last accepted (empty before any). */
  nameTable(): NameTableModel {
    const r = this.type(NAME_TABLE_TYPE).accepted.values().next();
    return r.done ? new Map() : (r.value.model as NameTableModel);
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

  private models<T>(typeUrl: string, override: ReadonlyMap<string, ReadonlyMap<string, AcceptedResource>>): T[] {
    const m = override.get(typeUrl) ?? this.type(typeUrl).accepted;
    return [...m.values()].map((r) => r.model as T);
  }

  private secrets(override: ReadonlyMap<string, ReadonlyMap<string, AcceptedResource>>): SecretModel[] {
    const local = this.localSecrets();
    const names = new Set(local.map((s) => s.name));
    return [...this.models<SecretModel>(SECRET_TYPE, override).filter((s) => !names.has(s.name)), ...local];
  }

  private resolveErrors(override: ReadonlyMap<string, ReadonlyMap<string, AcceptedResource>>): string[] {
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
}

function chainsOf(l: ListenerModel) {
  return l.defaultFilterChain ? [...l.filterChains, l.defaultFilterChain] : l.filterChains;
}
