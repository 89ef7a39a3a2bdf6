/** Matchers and fractions shared by the route, RBAC and rate limit decoders. */
import type { FractionModel, HeaderMatcherModel } from '../model.js';
import { regexMatcher, stringMatcher, type Reader } from './util.js';

const DENOMINATORS = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 } as const;

/** envoy.type.v3.FractionalPercent; Envoy caps the numerator at the denominator. */
export function fractionalPercent(r: Reader | undefined, dflt: FractionModel): FractionModel {
  if (!r) return dflt;
  const d = DENOMINATORS[r.enum_('denominator', Object.keys(DENOMINATORS) as (keyof typeof DENOMINATORS)[], 'HUNDRED')];
  return { numerator: Math.min(r.int('numerator', 0), d), denominator: d };
}

const HEADER_MATCH_KEYS = [
  'exact_match',
  'safe_regex_match',
  'range_match',
  'present_match',
  'prefix_match',
  'suffix_match',
  'contains_match',
  'string_match',
] as const;

export function headerMatcher(r: Reader): HeaderMatcherModel {
  const name = (r.str('name') ?? '').toLowerCase();
  if (!name) r.errs.add(r.p('name'), 'header matcher without a name');
  const which = r.oneof(HEADER_MATCH_KEYS);
  let spec: HeaderMatcherModel['spec'] = { kind: 'present', present: true };
  switch (which) {
    case 'exact_match':
    case 'prefix_match':
    case 'suffix_match':
    case 'contains_match': {
      const value = r.str(which) ?? '';
      if (which !== 'exact_match' && value === '') r.errs.add(r.p(which), 'must not be empty');
      const kind = which.slice(0, -'_match'.length) as 'exact' | 'prefix' | 'suffix' | 'contains';
      spec = { kind: 'string', matcher: { kind, value, ignoreCase: false } };
      break;
    }
    case 'safe_regex_match': {
      const regex = regexMatcher(r.obj_('safe_regex_match'), r.p('safe_regex_match'), r.errs);
      if (regex) spec = { kind: 'string', matcher: { kind: 'regex', regex } };
      break;
    }
    case 'string_match': {
      const matcher = stringMatcher(r.obj_('string_match'), r.p('string_match'), r.errs);
      if (matcher) spec = { kind: 'string', matcher };
      break;
    }
    case 'present_match':
      spec = { kind: 'present', present: r.bool('present_match', true) };
      break;
    case 'range_match': {
      const g = r.obj_('range_match')!;
      const start = g.int('start', 0, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
      const end = g.int('end', 0, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
      if (end <= start) g.errs.add(g.path, `range end (${end}) must be greater than start (${start})`);
      spec = { kind: 'range', start, end };
      break;
    }
    default:
    // No specifier: Envoy matches on presence.
  }
  return {
    name,
    spec,
    invert: r.bool('invert_match', false),
    treatMissingAsEmpty: r.bool('treat_missing_header_as_empty', false),
  };
}

