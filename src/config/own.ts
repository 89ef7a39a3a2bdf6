/**
 * Property access for maps whose keys come from input (config, the peering wire, tokens, xDS node
 * metadata). A plain `o[k]` finds Object.prototype's members for keys such as `constructor` or
 * `valueOf`, and `o[k] = v` with `k === '__proto__'` replaces the prototype instead of adding a key.
 */

/** `o[k]` if `o` has its own property `k`, else undefined. */
export function own(o: object, k: string): unknown {
  return Object.hasOwn(o, k) ? (o as Record<string, unknown>)[k] : undefined;
}

/** `o[k] = v` as an own, enumerable data property, whatever `k` is. */
export function setOwn<T>(o: Record<string, T>, k: string, v: NoInfer<T>): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}
