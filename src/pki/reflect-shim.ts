/**
 * @peculiar/x509 v2 finds its algorithm plug-ins through tsyringe, and tsyringe refuses to load
 * unless a Reflect metadata API exists (normally `reflect-metadata`, which is not a dependency).
 * The decorators in @peculiar/x509 never emit design-type metadata, so a tiny per-target store
 * is enough. Installed only when nothing else has provided the API, so a real polyfill wins.
 */
type MetadataMap = Map<unknown, unknown>;

const stores = new WeakMap<object, Map<PropertyKey | undefined, MetadataMap>>();

function own(target: object, property: PropertyKey | undefined, create: boolean): MetadataMap | undefined {
  let byProperty = stores.get(target);
  if (!byProperty) {
    if (!create) return undefined;
    byProperty = new Map();
    stores.set(target, byProperty);
  }
  let map = byProperty.get(property);
  if (!map && create) {
    map = new Map();
    byProperty.set(property, map);
  }
  return map;
}

const reflect = Reflect as unknown as Record<string, unknown>;

if (typeof reflect['getMetadata'] !== 'function') {
  const getOwnMetadata = (key: unknown, target: object, property?: PropertyKey): unknown =>
    own(target, property, false)?.get(key);
  const getMetadata = (key: unknown, target: object, property?: PropertyKey): unknown => {
    for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t) as object | null) {
      const map = own(t, property, false);
      if (map?.has(key)) return map.get(key);
    }
    return undefined;
  };
  const defineMetadata = (key: unknown, value: unknown, target: object, property?: PropertyKey): void => {
    own(target, property, true)!.set(key, value);
  };
  Object.assign(reflect, {
    getOwnMetadata,
    getMetadata,
    defineMetadata,
    hasOwnMetadata: (key: unknown, target: object, property?: PropertyKey) => own(target, property, false)?.has(key) ?? false,
    hasMetadata: (key: unknown, target: object, property?: PropertyKey) => getMetadata(key, target, property) !== undefined,
    metadata: (key: unknown, value: unknown) => (target: object, property?: PropertyKey) => defineMetadata(key, value, target, property),
  });
}

export {};
