/**
 * Response bodies encoded once and shared by every stream that sends them.
 *
 * A DiscoveryResponse is a few small fields plus `resources` (field 2). Protobuf fields may come
 * in any order and a repeated field may be split, so the serializer encodes the small fields per
 * response and appends ready-made bytes of field 2: the encoding of one resource (an endpoint
 * change sent to every proxy) or of a whole resource map (a shared CDS/EDS/RDS snapshot sent to
 * thousands of proxies). Before, protobufjs re-encoded every Any of every response per proxy
 * (`serializeMessage` was 18 % of the control plane's CPU at 500 proxies).
 *
 * The caches are WeakMaps on the immutable resources and maps of the snapshot cache, so bytes
 * live as long as a snapshot that holds them and are never copied per proxy.
 */
import { asBuffer } from './codec.js';
import { layersOf, type TypeSnapshot, type XdsResource } from './cache.js';
import { messageType, type AnyMsg, type DeltaDiscoveryResponseMsg, type DiscoveryResponseMsg } from './protos.js';

/** Set on a response object: its `resources` as encoded field-2 bytes, used instead of encoding them. */
export const PREENCODED: unique symbol = Symbol('isle.xds.preencoded');

export interface Preencoded {
  [PREENCODED]?: readonly Uint8Array[];
}

const PKG = 'envoy.service.discovery.v3.';
const sotwType = () => messageType(PKG + 'DiscoveryResponse');
const deltaType = () => messageType(PKG + 'DeltaDiscoveryResponse');

const sotwOne = new WeakMap<AnyMsg, Uint8Array>();
const deltaOne = new WeakMap<XdsResource, Uint8Array>();
const sotwAllOf = new WeakMap<ReadonlyMap<string, XdsResource>, Uint8Array>();
const deltaAllOf = new WeakMap<ReadonlyMap<string, XdsResource>, Uint8Array>();

function deltaResource(r: XdsResource): { name: string; version: string; resource: AnyMsg } {
  return { name: r.name, version: r.version, resource: r.any };
}

/** Field 2 of a DiscoveryResponse carrying `any`. */
export function sotwResourceBytes(any: AnyMsg): Uint8Array {
  let b = sotwOne.get(any);
  if (!b) sotwOne.set(any, (b = sotwType().encode({ resources: [any] }).finish()));
  return b;
}

/** Field 2 of a DeltaDiscoveryResponse carrying `r` (name, version, resource). */
export function deltaResourceBytes(r: XdsResource): Uint8Array {
  let b = deltaOne.get(r);
  if (!b) deltaOne.set(r, (b = deltaType().encode({ resources: [deltaResource(r)] }).finish()));
  return b;
}

function mapParts(ts: TypeSnapshot, cache: WeakMap<ReadonlyMap<string, XdsResource>, Uint8Array>, encode: (m: ReadonlyMap<string, XdsResource>) => Uint8Array): Uint8Array[] {
  const layers = layersOf(ts);
  const maps = layers ? [layers.base, layers.own] : [ts.resources];
  return maps.map((m) => {
    let b = cache.get(m);
    if (!b) cache.set(m, (b = encode(m)));
    return b;
  });
}

/** Every resource of a snapshot as SotW field-2 bytes; a layered snapshot's shared map is encoded once for all. */
export function sotwAllBytes(ts: TypeSnapshot): Uint8Array[] {
  return mapParts(ts, sotwAllOf, (m) => sotwType().encode({ resources: [...m.values()].map((r) => r.any) }).finish());
}

/** Every resource of a snapshot as delta field-2 bytes. */
export function deltaAllBytes(ts: TypeSnapshot): Uint8Array[] {
  return mapParts(ts, deltaAllOf, (m) => deltaType().encode({ resources: [...m.values()].map(deltaResource) }).finish());
}

/**
 * Serializes a (Delta)DiscoveryResponse: its own fields, then the pre-encoded resources when the
 * server attached them (the `resources` array is then only what the `send` event reports).
 */
export function serializeResponse(type: 'sotw' | 'delta', m: (DiscoveryResponseMsg | DeltaDiscoveryResponseMsg) & Preencoded): Buffer {
  const pre = m[PREENCODED];
  if (!pre) return asBuffer((type === 'sotw' ? sotwType() : deltaType()).encode(m).finish());
  return Buffer.concat(responseParts(type, m));
}

/**
 * The same bytes as serializeResponse, as parts: the response's own small fields, then the shared
 * pre-encoded resource bytes as they are (never copied; directsend.ts writes them one by one).
 */
export function responseParts(type: 'sotw' | 'delta', m: (DiscoveryResponseMsg | DeltaDiscoveryResponseMsg) & Preencoded): Uint8Array[] {
  const t = type === 'sotw' ? sotwType() : deltaType();
  const pre = m[PREENCODED];
  if (!pre) return [t.encode(m).finish()];
  return [t.encode({ ...m, resources: [] }).finish(), ...pre];
}
