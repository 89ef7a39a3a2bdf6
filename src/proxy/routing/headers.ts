/** Request/response header add/remove with Envoy's append_action semantics. */
import { ownHeader } from '../http1/head.js';
import type { HeaderMutationsModel, HeaderValueOptionModel } from '../model.js';

export type HeaderMap = Record<string, string | string[] | undefined>;

/**
 * `%NAME%` substitutions (Envoy's custom header variables). Unknown variables stay literal;
 * `%%` is a literal `%`.
 */
export function substitute(value: string, vars: Readonly<Record<string, string>>): string {
  if (!value.includes('%')) return value;
  return value.replace(/%%|%([A-Z_]+(?:\([^)]*\))?)%/g, (m, name: string | undefined) => {
    if (m === '%%') return '%';
    const v = vars[name!];
    return v === undefined ? m : v;
  });
}

function addOne(h: HeaderMap, o: HeaderValueOptionModel, vars: Readonly<Record<string, string>>): void {
  const value = substitute(o.value, vars);
  if (value === '' && !o.keepEmptyValue) return;
  // Own fields only: a mutation of `constructor` must not find Object.prototype's (ADR 0151).
  const cur = ownHeader(h, o.key);
  const present = cur !== undefined && (!Array.isArray(cur) || cur.length > 0);
  switch (o.appendAction) {
    case 'APPEND_IF_EXISTS_OR_ADD':
      h[o.key] = present ? [...(Array.isArray(cur) ? cur : [cur as string]), value] : value;
      return;
    case 'ADD_IF_ABSENT':
      if (!present) h[o.key] = value;
      return;
    case 'OVERWRITE_IF_EXISTS_OR_ADD':
      h[o.key] = value;
      return;
    case 'OVERWRITE_IF_EXISTS':
      if (present) h[o.key] = value;
      return;
  }
}

/**
 * Applies the levels in order (most specific first, so with overwrite the least specific wins,
 * as Envoy without most_specific_header_mutations_wins). Per level: removals, then additions.
 * Mutates and returns `headers` (lower-case keys).
 */
export function applyHeaderMutations(
  headers: HeaderMap,
  levels: readonly HeaderMutationsModel[],
  which: 'request' | 'response',
  vars: Readonly<Record<string, string>> = {},
): HeaderMap {
  for (const m of levels) {
    const remove = which === 'request' ? m.requestHeadersToRemove : m.responseHeadersToRemove;
    const add = which === 'request' ? m.requestHeadersToAdd : m.responseHeadersToAdd;
    for (const k of remove) delete headers[k];
    for (const o of add) addOne(headers, o, vars);
  }
  return headers;
}
