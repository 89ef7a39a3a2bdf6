/**
 * The client side's resource store: per type URL, the last good (ACKed) resources with their
 * versions and the last rejected update, and a table of decoders that turn each `Any` into a typed
 * value. Transport-free (the stream lives in client.ts), so callers test it with plain objects.
 *
 * Rules (grpc-js-xds / Envoy): a response is decoded resource by resource and every error is
 * collected; any error rejects the whole response (the caller NACKs with all of them) and the type
 * keeps its last good resources. A response that decodes cleanly may still be refused by the
 * owner's `crossCheck` (errors it introduces against the other types).
 */
import { shortTypeName } from '../../mesh/typeurls.js';
import type { PlainObject } from '../codec.js';
import type { AnyMsg, DeltaResourceMsg } from '../protos.js';

/** What a decoder makes of one resource: a value with its name, or every error found. */
export type Decoded<T> =
  | { readonly ok: true; readonly name: string; readonly value: T; readonly raw?: PlainObject }
  | { readonly ok: false; readonly errors: readonly string[]; readonly name?: string; readonly raw?: PlainObject };

export interface ResourceDecoder<T> {
  /**
   * `expectedName` is the delta resource's name (undefined in SotW, where the resource names
   * itself). The type URL of `any` was already checked.
   */
  decode(any: AnyMsg, expectedName: string | undefined): Decoded<T>;
}

/** type URL → decoder; `M` maps each type URL to the value type its decoder yields. */
export type DecoderTable<M> = { readonly [K in keyof M & string]: ResourceDecoder<M[K]> };

export interface AcceptedResource<T = unknown> {
  readonly name: string;
  /** Delta: the server's per-resource version; SotW: the response's version_info. */
  readonly version: string;
  /** As received, decoded to plain JSON when the decoder provides it (/config_dump). */
  readonly raw: PlainObject;
  readonly model: T;
}

/** One accepted resource of any type in `M`, discriminated by `typeUrl`. */
export type AnyAccepted<M> = { [K in keyof M & string]: AcceptedResource<M[K]> & { readonly typeUrl: K } }[keyof M & string];

export interface RejectedUpdate {
  readonly version: string;
  readonly nonce: string;
  readonly errors: readonly string[];
  /** Names in the rejected response. */
  readonly resources: readonly string[];
  /** The rejected resources as received (those that decoded at all). */
  readonly raw: readonly PlainObject[];
  readonly at: number;
}

export interface TypeState<T = unknown> {
  readonly typeUrl: string;
  /** Last good resources by name. */
  accepted: Map<string, AcceptedResource<T>>;
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
  /** Names added or changed, and names removed, by an accepted update. */
  changed: string[];
  removed: string[];
}

export interface ResourceStoreOptions<M> {
  decoders: DecoderTable<M>;
  /** Type URLs in request order (default: the table's order). */
  order?: readonly (keyof M & string)[];
  /** Errors the candidate set of `typeUrl` introduces against the other types; [] when none. */
  crossCheck?: (typeUrl: string, candidate: ReadonlyMap<string, AcceptedResource>) => string[];
  now?: () => number;
  /**
   * Types whose SotW responses may carry only what changed (Envoy: every type but LDS and CDS;
   * the control plane's incremental EDS relies on it): what such a response leaves out is kept.
   * Other types' SotW responses are the whole state. Default: none.
   */
  partialSotw?: ReadonlySet<string>;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class ResourceStore<M> {
  readonly types = new Map<string, TypeState>();
  readonly typeUrls: readonly (keyof M & string)[];
  protected readonly now: () => number;
  private readonly partialSotw: ReadonlySet<string>;
  private readonly decoders: DecoderTable<M>;
  private readonly crossCheck: ResourceStoreOptions<M>['crossCheck'];

  constructor(opts: ResourceStoreOptions<M>) {
    this.decoders = opts.decoders;
    this.crossCheck = opts.crossCheck;
    this.now = opts.now ?? Date.now;
    this.partialSotw = opts.partialSotw ?? new Set();
    this.typeUrls = opts.order ?? (Object.keys(opts.decoders) as (keyof M & string)[]);
    for (const t of this.typeUrls) this.types.set(t, { typeUrl: t, accepted: new Map(), version: '', received: false, acceptedAt: undefined, lastRejected: undefined });
  }

  has(typeUrl: string): boolean {
    return this.types.has(typeUrl);
  }

  type<K extends keyof M & string>(typeUrl: K): TypeState<M[K]>;
  type(typeUrl: string): TypeState;
  type(typeUrl: string): TypeState {
    const t = this.types.get(typeUrl);
    if (!t) throw new Error(`unknown xDS type ${typeUrl}`);
    return t;
  }

  /** The accepted values of one type, by name. */
  values<K extends keyof M & string>(typeUrl: K): Map<string, M[K]> {
    return new Map([...this.type(typeUrl).accepted].map(([n, r]) => [n, r.model]));
  }

  /** Every accepted resource, in type order. */
  *all(): Iterable<AnyAccepted<M>> {
    for (const t of this.typeUrls) for (const r of this.type(t).accepted.values()) yield { ...r, typeUrl: t } as AnyAccepted<M>;
  }

  /** Validates one response; on success it becomes the type's last good state. */
  handle(typeUrl: string, update: Update, nonce: string): HandleResult {
    const t = this.type(typeUrl);
    const dec = (this.decoders as Record<string, ResourceDecoder<unknown>>)[typeUrl]!;
    const errors: string[] = [];
    const raws: PlainObject[] = [];
    const names: string[] = [];
    const fresh = new Map<string, AcceptedResource>();
    const short = shortTypeName(typeUrl);
    const decodeOne = (any: AnyMsg | null | undefined, expectedName: string | undefined, version: string): void => {
      const where = expectedName !== undefined ? `${short} ${JSON.stringify(expectedName)}` : short;
      if (!any) {
        errors.push(`${where}: resource has no body`);
        return;
      }
      if (any.type_url !== typeUrl) {
        errors.push(`${where}: type_url ${JSON.stringify(any.type_url)} in a ${short} response`);
        return;
      }
      let r: Decoded<unknown>;
      try {
        r = dec.decode(any, expectedName);
      } catch (e) {
        errors.push(`${where}: cannot decode: ${errText(e)}`);
        return;
      }
      if (r.raw) raws.push(r.raw);
      if (!r.ok) {
        errors.push(...r.errors);
        const n = r.name ?? expectedName;
        if (n !== undefined) names.push(n);
        return;
      }
      names.push(r.name);
      if (expectedName !== undefined && expectedName !== '' && expectedName !== r.name) {
        errors.push(`${where}: resource is named ${JSON.stringify(r.name)}`);
        return;
      }
      if (fresh.has(r.name)) {
        errors.push(`${short} ${JSON.stringify(r.name)}: duplicate name in one response`);
        return;
      }
      fresh.set(r.name, { name: r.name, version, raw: r.raw ?? {}, model: r.value });
    };

    let candidate: Map<string, AcceptedResource>;
    const removed: string[] = [];
    if (update.kind === 'sotw' && this.partialSotw.has(typeUrl)) {
      for (const any of update.resources) decodeOne(any, undefined, update.version);
      candidate = new Map(t.accepted);
      for (const [n, r] of fresh) candidate.set(n, r);
    } else if (update.kind === 'sotw') {
      for (const any of update.resources) decodeOne(any, undefined, update.version);
      candidate = fresh;
      for (const n of t.accepted.keys()) if (!fresh.has(n)) removed.push(n);
    } else {
      for (const r of update.resources) decodeOne(r.resource, r.name, r.version);
      candidate = new Map(t.accepted);
      for (const n of update.removed) if (candidate.delete(n)) removed.push(n);
      for (const [n, r] of fresh) candidate.set(n, r);
    }

    if (errors.length === 0 && this.crossCheck) errors.push(...this.crossCheck(typeUrl, candidate));

    if (errors.length > 0) {
      t.lastRejected = { version: update.version, nonce, errors, resources: names, raw: raws, at: this.now() };
      return { ack: false, errors, changed: [], removed: [] };
    }
    const changed = [...fresh.keys()].filter((n) => t.accepted.get(n)?.version !== fresh.get(n)!.version || update.kind === 'sotw');
    t.accepted = candidate;
    t.version = update.version;
    t.received = true;
    t.acceptedAt = this.now();
    return { ack: true, errors: [], changed, removed };
  }

  /** Delta reconnect: what we hold, per name. */
  resourceVersions(typeUrl: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [n, r] of this.type(typeUrl).accepted) out[n] = r.version;
    return out;
  }
}
