/**
 * Istio's Telemetry kind (telemetry.istio.io), the tracing part (ADR 0085): root-namespace
 * (mesh-wide) and namespace-wide resources set the tracing provider, the sampling percentage,
 * custom tags and whether spans are reported. Everything else Telemetry can say — workload
 * selectors, targetRefs, metrics, access logging, request-id sampling — is an error: Isle would
 * not do it.
 */
import { arr, bool, enumOf, obj, percent, str, type Check } from '../schema.js';
import type { KindDescriptor } from './common.js';

export interface TelemetryCustomTag {
  literal?: { value: string };
  header?: { name: string; defaultValue?: string };
  environment?: { name: string; defaultValue?: string };
}

export interface TelemetryTracing {
  match?: { mode?: 'CLIENT_AND_SERVER' | 'CLIENT' | 'SERVER' };
  providers?: { name: string }[];
  randomSamplingPercentage?: number;
  disableSpanReporting?: boolean;
  customTags?: Record<string, TelemetryCustomTag>;
  enableIstioTags?: boolean;
}

export interface TelemetrySpec {
  tracing?: TelemetryTracing[];
}

const customTag: Check = obj(
  {
    literal: obj({ value: str() }, { required: ['value'], strict: true }),
    header: obj({ name: str({ nonEmpty: true }), defaultValue: str() }, { required: ['name'], strict: true }),
    environment: obj({ name: str({ nonEmpty: true }), defaultValue: str() }, { required: ['name'], strict: true }),
  },
  {
    strict: true,
    check: (c, v, p) => {
      const set = ['literal', 'header', 'environment'].filter((k) => v[k] !== undefined);
      if (set.length !== 1) c.error(p, 'a custom tag needs exactly one of literal, header, environment');
    },
  },
);

const customTags: Check = (c, v, p) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    c.error(p, 'expected a mapping of tag name → tag');
    return false;
  }
  let ok = true;
  for (const [k, t] of Object.entries(v)) if (!customTag(c, t, [...p, k])) ok = false;
  return ok;
};

const tracing: Check = obj(
  {
    match: obj({ mode: enumOf(['CLIENT_AND_SERVER', 'CLIENT', 'SERVER']) }, { strict: true }),
    providers: arr(obj({ name: str({ nonEmpty: true }) }, { required: ['name'], strict: true })),
    randomSamplingPercentage: percent,
    disableSpanReporting: bool,
    customTags,
    enableIstioTags: bool,
    useRequestIdForTraceSampling: (c, v, p) => {
      if (v === true) c.error(p, 'not supported by Isle: sampling is random (or follows the caller), never derived from x-request-id');
      return v === false;
    },
  },
  {
    strict: true,
    check: (c, v, p) => {
      if (Array.isArray(v.providers) && v.providers.length > 1) c.error([...p, 'providers'], 'Isle supports one tracing provider per Telemetry entry');
    },
  },
);

const unsupported = (what: string, hint = ''): Check => (c, _v, p) => {
  c.error(p, `${what} is not supported by Isle (it would not be enforced)${hint ? `; ${hint}` : ''}`);
  return false;
};

const telemetrySpec: Check = obj(
  {
    tracing: arr(tracing),
    selector: unsupported('a workload selector', 'use a namespace-wide or root-namespace Telemetry'),
    targetRef: unsupported('targetRef'),
    targetRefs: unsupported('targetRefs'),
    metrics: unsupported('Telemetry metrics', 'Isle always reports Istio\'s standard metrics'),
    accessLogging: unsupported('Telemetry accessLogging', 'use MeshConfig accessLogFile'),
  },
  {
    strict: true,
    check: (c, v, p) => {
      if (!Array.isArray(v.tracing)) return;
      const modes = v.tracing.map((t) => (typeof t === 'object' && t !== null ? ((t as TelemetryTracing).match?.mode ?? 'CLIENT_AND_SERVER') : ''));
      const seen = new Set<string>();
      modes.forEach((m, i) => {
        const covers = m === 'CLIENT_AND_SERVER' ? ['CLIENT', 'SERVER'] : [m];
        for (const x of covers) {
          if (seen.has(x)) c.error([...p, 'tracing', i, 'match'], `a second tracing entry for ${x} traffic`);
          seen.add(x);
        }
      });
    },
  },
);

export const telemetryKind: KindDescriptor<TelemetrySpec> = {
  kind: 'Telemetry',
  group: 'telemetry.istio.io',
  versions: ['v1', 'v1alpha1'],
  namespaced: true,
  exportToPeers: false,
  summary: 'tracing provider, sampling and custom tags, mesh-wide (root namespace) or per namespace',
  spec: telemetrySpec,
  specRequired: true,
  normalize: (s) => s as TelemetrySpec,
};
