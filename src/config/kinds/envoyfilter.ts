/**
 * networking.istio.io EnvoyFilter, as far as Isle implements it: the patch shapes Istio's rate
 * limiting examples use (ADR 0090).
 *
 * - `applyTo: HTTP_FILTER`, `operation: INSERT_BEFORE` (the router, or no subFilter): adds
 *   `envoy.filters.http.local_ratelimit` or `envoy.filters.http.ratelimit` to the HTTP connection
 *   managers the match selects (typed_config as `@type` or a `udpa.type.v1.TypedStruct`).
 * - `applyTo: HTTP_ROUTE | VIRTUAL_HOST`, `operation: MERGE`: `rate_limits` (route: under `route`) and
 *   `typed_per_filter_config` for the local rate limit filter.
 *
 * Everything else — other filters, operations, match fields, unknown fields inside the Envoy
 * config — is an error: an EnvoyFilter Isle half-applied would change traffic in ways nobody wrote.
 * Field names inside `value` may be snake_case (Envoy's) or camelCase (both are proto JSON).
 */
import { isObject, isSet, labels, parseDuration, type Check, type Checker, type Path } from '../schema.js';
import type { KindDescriptor, Labels } from './common.js';

export const LOCAL_RATELIMIT_FILTER = 'envoy.filters.http.local_ratelimit';
export const RATELIMIT_FILTER = 'envoy.filters.http.ratelimit';
export const LOCAL_RATELIMIT_TYPE = 'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit';
export const RATELIMIT_TYPE = 'envoy.extensions.filters.http.ratelimit.v3.RateLimit';
const TYPED_STRUCT = 'type.googleapis.com/udpa.type.v1.TypedStruct';
const XDS_TYPED_STRUCT = 'type.googleapis.com/xds.type.v3.TypedStruct';
export const TYPE_PREFIX = 'type.googleapis.com/';

export type PatchContext = 'ANY' | 'SIDECAR_INBOUND' | 'SIDECAR_OUTBOUND' | 'GATEWAY';
export type ApplyTo = 'HTTP_FILTER' | 'HTTP_ROUTE' | 'VIRTUAL_HOST';

export interface EnvoyConfigPatch {
  applyTo: ApplyTo;
  match?: {
    context?: PatchContext;
    listener?: { portNumber?: number; name?: string; filterChain?: { filter?: { name?: string; subFilter?: { name?: string } } } };
    routeConfiguration?: { portNumber?: number; name?: string; vhost?: { name?: string; route?: { name?: string; action?: 'ANY' | 'ROUTE' | 'REDIRECT' | 'DIRECT_RESPONSE' } } };
  };
  /** `value` is normalized: snake_case keys, `@type` typed configs, durations as `Ns`. */
  patch: { operation: 'INSERT_BEFORE' | 'MERGE'; value: Record<string, unknown> };
}

export interface EnvoyFilterSpec {
  workloadSelector?: { labels?: Labels };
  priority?: number;
  configPatches?: EnvoyConfigPatch[];
}

// ------------------------------------------------------------------------------ a strict mini-schema

type F =
  | 'any'
  | 'string'
  | 'bool'
  | 'uint'
  | 'duration'
  | { enum: readonly string[] }
  | { obj: Record<string, F>; required?: string[]; oneOf?: string[] }
  | { list: F; min?: number }
  | { map: (key: string) => F | string };

const describe = (v: unknown): string => (Array.isArray(v) ? 'a list' : isObject(v) ? 'a mapping' : JSON.stringify(v));

/** Checks `v` against `f`; unknown fields are errors (never ignored, see the module comment). */
function strict(c: Checker, f: F, v: unknown, p: Path): void {
  if (f === 'any') return;
  if (f === 'string') {
    if (typeof v !== 'string') c.error(p, `expected a string (got ${describe(v)})`);
  } else if (f === 'bool') {
    if (typeof v !== 'boolean') c.error(p, `expected true or false (got ${describe(v)})`);
  } else if (f === 'uint') {
    if (!(typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 4_294_967_295)) c.error(p, `expected an integer >= 0 (got ${describe(v)})`);
  } else if (f === 'duration') {
    if (typeof v !== 'string' || parseDuration(v) === undefined) c.error(p, `invalid duration ${describe(v)} (use 1s, 500ms, 1m)`);
  } else if ('enum' in f) {
    if (typeof v !== 'string' || !f.enum.includes(v)) c.error(p, `must be one of ${f.enum.join(', ')} (got ${describe(v)})`);
  } else if ('list' in f) {
    if (!Array.isArray(v)) return c.error(p, `expected a list (got ${describe(v)})`);
    if (f.min && v.length < f.min) c.error(p, 'must not be empty');
    v.forEach((x, i) => strict(c, f.list, x, [...p, i]));
  } else if ('map' in f) {
    if (!isObject(v)) return c.error(p, `expected a mapping (got ${describe(v)})`);
    for (const [k, x] of Object.entries(v)) {
      const sub = f.map(k);
      if (typeof sub === 'string') c.error([...p, k], sub);
      else strict(c, sub, x, [...p, k]);
    }
  } else {
    if (!isObject(v)) return c.error(p, `expected a mapping (got ${describe(v)})`);
    for (const r of f.required ?? []) if (!isSet(v[r])) c.error([...p, r], 'missing required field');
    if (f.oneOf) {
      const set = f.oneOf.filter((k) => isSet(v[k]));
      if (set.length !== 1) c.error(p, `must set exactly one of ${f.oneOf.join(', ')}`);
    }
    for (const [k, x] of Object.entries(v)) {
      const sub = Object.prototype.hasOwnProperty.call(f.obj, k) ? f.obj[k] : undefined;
      if (!sub) c.error([...p, k], `field not supported by Isle (supported: ${Object.keys(f.obj).join(', ')})`);
      else if (isSet(x)) strict(c, sub, x, [...p, k]);
    }
  }
}

const fractionalPercent: F = { obj: { numerator: 'uint', denominator: { enum: ['HUNDRED', 'TEN_THOUSAND', 'MILLION'] } } };
const runtimeFraction: F = { obj: { default_value: fractionalPercent, runtime_key: 'string' }, required: ['default_value'] };
const headerValueOption: F = {
  obj: {
    header: { obj: { key: 'string', value: 'string' }, required: ['key'] },
    append: 'bool',
    append_action: { enum: ['APPEND_IF_EXISTS_OR_ADD', 'ADD_IF_ABSENT', 'OVERWRITE_IF_EXISTS_OR_ADD', 'OVERWRITE_IF_EXISTS'] },
    keep_empty_value: 'bool',
  },
  required: ['header'],
};
const httpStatus: F = { obj: { code: 'uint' }, required: ['code'] };
const xrlHeaders: F = { enum: ['OFF', 'DRAFT_VERSION_03'] };

const localRateLimit: F = {
  obj: {
    stat_prefix: 'string',
    status: httpStatus,
    token_bucket: { obj: { max_tokens: 'uint', tokens_per_fill: 'uint', fill_interval: 'duration' }, required: ['max_tokens', 'fill_interval'] },
    filter_enabled: runtimeFraction,
    filter_enforced: runtimeFraction,
    request_headers_to_add_when_not_enforced: { list: headerValueOption },
    response_headers_to_add: { list: headerValueOption },
    local_rate_limit_per_downstream_connection: 'bool',
    enable_x_ratelimit_headers: xrlHeaders,
    always_consume_default_token_bucket: 'bool',
  },
  required: ['stat_prefix'],
};

const globalRateLimit: F = {
  obj: {
    domain: 'string',
    stage: 'uint',
    request_type: { enum: ['internal', 'external', 'both'] },
    timeout: 'duration',
    failure_mode_deny: 'bool',
    rate_limit_service: {
      obj: {
        grpc_service: { obj: { envoy_grpc: { obj: { cluster_name: 'string', authority: 'string' }, required: ['cluster_name'] }, timeout: 'duration' }, required: ['envoy_grpc'] },
        transport_api_version: { enum: ['V3'] },
      },
      required: ['grpc_service'],
    },
    enable_x_ratelimit_headers: xrlHeaders,
    disable_x_envoy_ratelimited_header: 'bool',
    rate_limited_status: httpStatus,
    status_on_error: httpStatus,
    stat_prefix: 'string',
  },
  required: ['domain', 'rate_limit_service'],
};

const stringMatcher: F = { obj: { exact: 'string', prefix: 'string', suffix: 'string', contains: 'string', safe_regex: { obj: { regex: 'string' } }, ignore_case: 'bool' } };
const headerMatcher: F = {
  obj: {
    name: 'string',
    exact_match: 'string',
    prefix_match: 'string',
    suffix_match: 'string',
    contains_match: 'string',
    safe_regex_match: { obj: { regex: 'string' }, required: ['regex'] },
    present_match: 'bool',
    string_match: stringMatcher,
    invert_match: 'bool',
    treat_missing_header_as_empty: 'bool',
  },
  required: ['name'],
};
const EMPTY: F = { obj: {} };
const action: F = {
  obj: {
    source_cluster: EMPTY,
    destination_cluster: EMPTY,
    remote_address: EMPTY,
    request_headers: { obj: { header_name: 'string', descriptor_key: 'string', skip_if_absent: 'bool' }, required: ['header_name', 'descriptor_key'] },
    generic_key: { obj: { descriptor_value: 'string', descriptor_key: 'string' }, required: ['descriptor_value'] },
    header_value_match: { obj: { descriptor_key: 'string', descriptor_value: 'string', expect_match: 'bool', headers: { list: headerMatcher, min: 1 } }, required: ['descriptor_value', 'headers'] },
  },
  oneOf: ['source_cluster', 'destination_cluster', 'remote_address', 'request_headers', 'generic_key', 'header_value_match'],
};
const rateLimits: F = { list: { obj: { stage: 'uint', disable_key: 'string', actions: { list: action, min: 1 } }, required: ['actions'] }, min: 1 };

const perFilterConfig: F = {
  map: (k) => (k === LOCAL_RATELIMIT_FILTER ? { obj: { '@type': { enum: [TYPE_PREFIX + LOCAL_RATELIMIT_TYPE] }, ...fieldsOf(localRateLimit) }, required: ['@type', 'stat_prefix'] } : `per-filter config for ${JSON.stringify(k)} is not supported by Isle (only ${LOCAL_RATELIMIT_FILTER})`),
};

function fieldsOf(f: F): Record<string, F> {
  return typeof f === 'object' && 'obj' in f ? f.obj : {};
}

const VALUES: Record<ApplyTo, F> = {
  HTTP_FILTER: { obj: { name: { enum: [LOCAL_RATELIMIT_FILTER, RATELIMIT_FILTER] }, typed_config: 'any' }, required: ['name', 'typed_config'] },
  HTTP_ROUTE: { obj: { route: { obj: { rate_limits: rateLimits, include_vh_rate_limits: 'bool' } }, typed_per_filter_config: perFilterConfig } },
  VIRTUAL_HOST: { obj: { rate_limits: rateLimits, typed_per_filter_config: perFilterConfig } },
};

// ------------------------------------------------------------------------------ normalization

const snake = (k: string): string => (k.startsWith('@') || !/[A-Z]/.test(k) ? k : k.replace(/[A-Z]/g, (m) => `_${m.toLowerCase()}`));

/** Envoy filter names and header names are map keys that must stay as written. */
function snakeKeys(v: unknown, keepKeys = false): unknown {
  if (Array.isArray(v)) return v.map((x) => snakeKeys(x));
  if (!isObject(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    const key = keepKeys ? k : snake(k);
    out[key] = snakeKeys(x, key === 'typed_per_filter_config');
  }
  return out;
}

/** A TypedStruct `{type_url, value}` becomes the direct `{"@type", ...value}` form Envoy's Any takes. */
function untypedStruct(tc: unknown): unknown {
  if (!isObject(tc)) return tc;
  if (tc['@type'] !== TYPED_STRUCT && tc['@type'] !== XDS_TYPED_STRUCT) return tc;
  const url = typeof tc['type_url'] === 'string' ? tc['type_url'] : '';
  const full = url.startsWith(TYPE_PREFIX) ? url : TYPE_PREFIX + url;
  return { '@type': full, ...(isObject(tc['value']) ? tc['value'] : {}) };
}

/** Durations as Envoy's JSON wants them (`60s`, `0.5s`): Istio users also write `1m`, `500ms`. */
function envoyDurations(v: unknown, f: F): unknown {
  if (f === 'duration' && typeof v === 'string') {
    const ms = parseDuration(v);
    return ms === undefined ? v : `${ms / 1000}s`;
  }
  if (typeof f !== 'object') return v;
  if ('list' in f) return Array.isArray(v) ? v.map((x) => envoyDurations(x, f.list)) : v;
  if ('map' in f) {
    if (!isObject(v)) return v;
    return Object.fromEntries(Object.entries(v).map(([k, x]) => { const sub = f.map(k); return [k, typeof sub === 'string' ? x : envoyDurations(x, sub)]; }));
  }
  if ('obj' in f && isObject(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, f.obj[k] ? envoyDurations(x, f.obj[k]!) : x]));
  return v;
}

function typedConfigSchema(name: unknown): F | undefined {
  return name === LOCAL_RATELIMIT_FILTER ? localRateLimit : name === RATELIMIT_FILTER ? globalRateLimit : undefined;
}

/** The patch value as the generators use it: snake_case, TypedStructs unwrapped, Envoy durations. */
export function normalizeValue(applyTo: string, value: unknown): Record<string, unknown> {
  const v = snakeKeys(value) as Record<string, unknown>;
  if (applyTo === 'HTTP_FILTER') {
    const tc = untypedStruct(v['typed_config']);
    const schema = typedConfigSchema(v['name']);
    return { ...v, typed_config: schema && isObject(tc) ? envoyDurations(tc, { obj: { ...fieldsOf(schema), '@type': 'string' } }) : tc };
  }
  const tpf = (x: unknown): unknown =>
    isObject(x) ? Object.fromEntries(Object.entries(x).map(([k, c]) => [k, untypedStruct(c)])) : x;
  const out = { ...v };
  if (isSet(out['typed_per_filter_config'])) out['typed_per_filter_config'] = envoyDurations(tpf(out['typed_per_filter_config']), perFilterConfig);
  return out;
}

// ------------------------------------------------------------------------------ the spec

const CONTEXTS = ['ANY', 'SIDECAR_INBOUND', 'SIDECAR_OUTBOUND', 'GATEWAY'];
const HCM = 'envoy.filters.network.http_connection_manager';
const ROUTER = 'envoy.filters.http.router';

function patchCheck(c: Checker, v: unknown, p: Path): void {
  if (!isObject(v)) return c.error(p, `expected a mapping (got ${describe(v)})`);
  for (const k of Object.keys(v)) if (!['applyTo', 'match', 'patch'].includes(k)) c.error([...p, k], 'field not supported by Isle (supported: applyTo, match, patch)');
  const applyTo = v['applyTo'];
  if (applyTo !== 'HTTP_FILTER' && applyTo !== 'HTTP_ROUTE' && applyTo !== 'VIRTUAL_HOST') {
    c.error([...p, 'applyTo'], `${describe(applyTo)} is not supported by Isle (supported: HTTP_FILTER, HTTP_ROUTE, VIRTUAL_HOST for rate limiting)`);
    return;
  }
  const m = v['match'];
  const listener = isObject(m) ? m['listener'] : undefined;
  const routeCfg = isObject(m) ? m['routeConfiguration'] : undefined;
  if (isSet(m)) {
    const matchF: F = {
      obj: {
        context: { enum: CONTEXTS },
        ...(applyTo === 'HTTP_FILTER'
          ? { listener: { obj: { portNumber: 'uint', name: 'string', filterChain: { obj: { filter: { obj: { name: { enum: [HCM] }, subFilter: { obj: { name: { enum: [ROUTER] } } } } } } } } } }
          : { routeConfiguration: { obj: { portNumber: 'uint', name: 'string', vhost: { obj: { name: 'string', route: { obj: { name: 'string', action: { enum: ['ANY', 'ROUTE', 'REDIRECT', 'DIRECT_RESPONSE'] } } } } } } } }),
      },
    };
    strict(c, matchF, m, [...p, 'match']);
    if (isObject(m) && m['context'] === 'SIDECAR_OUTBOUND' && isObject(listener) && isSet(listener['portNumber']) && listener['portNumber'] !== 15001) {
      c.error([...p, 'match', 'listener', 'portNumber'], "Isle's sidecars have one outbound HTTP listener, the explicit proxy on 15001: use 15001 or leave portNumber out, and scope by service with an HTTP_ROUTE/VIRTUAL_HOST patch");
    }
  }
  void routeCfg;
  const patch = v['patch'];
  if (!isObject(patch)) return c.error([...p, 'patch'], 'missing required field');
  for (const k of Object.keys(patch)) if (!['operation', 'value'].includes(k)) c.error([...p, 'patch', k], 'field not supported by Isle (supported: operation, value)');
  const want = applyTo === 'HTTP_FILTER' ? 'INSERT_BEFORE' : 'MERGE';
  if (patch['operation'] !== want) c.error([...p, 'patch', 'operation'], `${describe(patch['operation'])} is not supported by Isle for ${applyTo} (use ${want})`);
  if (!isObject(patch['value'])) return c.error([...p, 'patch', 'value'], 'missing required field');
  const value = normalizeValue(applyTo, patch['value']);
  const vp: Path = [...p, 'patch', 'value'];
  strict(c, VALUES[applyTo], value, vp);
  if (applyTo === 'HTTP_FILTER') {
    const schema = typedConfigSchema(value['name']);
    const tc = value['typed_config'];
    if (!schema || !isObject(tc)) return;
    const want = TYPE_PREFIX + (value['name'] === LOCAL_RATELIMIT_FILTER ? LOCAL_RATELIMIT_TYPE : RATELIMIT_TYPE);
    if (tc['@type'] !== want) c.error([...vp, 'typed_config', '@type'], `must be ${want} or ${TYPED_STRUCT} with type_url ${want.slice(TYPE_PREFIX.length)} (got ${describe(tc['@type'])})`);
    const { '@type': _t, ...rest } = tc;
    strict(c, schema, rest, [...vp, 'typed_config']);
  }
}

const envoyFilterSpec: Check = (c, v, p) => {
  if (!isObject(v)) {
    c.error(p, `expected a mapping (got ${describe(v)})`);
    return false;
  }
  for (const k of Object.keys(v)) {
    if (!['workloadSelector', 'priority', 'configPatches'].includes(k)) c.error([...p, k], `field not supported by Isle (supported: workloadSelector, priority, configPatches)`);
  }
  const ws = v['workloadSelector'];
  if (isSet(ws)) {
    if (!isObject(ws)) c.error([...p, 'workloadSelector'], 'expected a mapping');
    else {
      for (const k of Object.keys(ws)) if (k !== 'labels') c.error([...p, 'workloadSelector', k], 'field not supported by Isle (supported: labels)');
      if (isSet(ws['labels'])) labels(c, ws['labels'], [...p, 'workloadSelector', 'labels']);
    }
  }
  if (isSet(v['priority']) && !(typeof v['priority'] === 'number' && Number.isInteger(v['priority']))) c.error([...p, 'priority'], 'expected an integer');
  const patches = v['configPatches'];
  if (isSet(patches)) {
    if (!Array.isArray(patches)) c.error([...p, 'configPatches'], 'expected a list');
    else patches.forEach((x, i) => patchCheck(c, x, [...p, 'configPatches', i]));
  }
  return true;
};

export const envoyFilterKind: KindDescriptor<EnvoyFilterSpec> = {
  kind: 'EnvoyFilter',
  group: 'networking.istio.io',
  versions: ['v1alpha3'],
  namespaced: true,
  exportToPeers: false,
  summary: 'Envoy config patches; Isle supports the local and global rate limit filters and route rate_limits (ADR 0090)',
  spec: envoyFilterSpec,
  specRequired: false,
  normalize: (spec) => {
    const s = spec as unknown as EnvoyFilterSpec;
    return {
      ...s,
      configPatches: (s.configPatches ?? []).map((cp) => ({ ...cp, patch: { ...cp.patch, value: normalizeValue(cp.applyTo, cp.patch.value) } })),
    };
  },
};
