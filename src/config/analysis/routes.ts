/** Checks inside one VirtualService's rule list, and delegate VirtualServices. */
import type { ConfigError } from '../types.js';
import type { HTTPRoute, VirtualServiceSpec } from '../kinds/networking.js';
import { canonicalJson, isCatchAll, nsName, type Analyzer } from './context.js';

interface Rule {
  match?: unknown[];
}

/** A rule's match entries in canonical form; an empty list means "matches everything". */
function matchKeys(r: Rule): string[] {
  return (r.match ?? []).map(canonicalJson);
}

/**
 * IST0130 VirtualServiceUnreachableRule and IST0131 VirtualServiceIneffectiveMatch. Envoy tries a
 * VirtualService's rules in order, so a rule after one without matches never matches, and a match
 * entry equal to one of an earlier rule never decides anything. `name` does not count.
 */
type Report = (path: (string | number)[], message: string, code: string) => ConfigError;

function unreachableIn(report: Report, proto: 'http' | 'tcp' | 'tls', rules: Rule[], catchAll: (r: Rule) => boolean): ConfigError[] {
  const out: ConfigError[] = [];
  let firstCatchAll = -1;
  const seen = new Map<string, number>();
  rules.forEach((rule, i) => {
    const path = ['spec', proto, i];
    if (firstCatchAll >= 0) {
      const why = catchAll(rule) ? 'only the last rule can have no matches' : `rule #${firstCatchAll} before it matches every request`;
      out.push(report(path, `${proto} rule #${i} is never used (${why})`, 'IST0130'));
      return;
    }
    if (catchAll(rule)) {
      firstCatchAll = i;
      return;
    }
    const keys = matchKeys(rule);
    const dups = keys.map((k) => seen.get(k));
    if (keys.length > 0 && dups.every((d) => d !== undefined)) {
      out.push(report([...path, 'match'], `${proto} rule #${i} is never used (its matches duplicate rule #${dups[0]})`, 'IST0130'));
    } else {
      dups.forEach((d, j) => {
        if (d !== undefined) out.push(report([...path, 'match', j], `${proto} rule #${i} match #${j} is never used (duplicates a match in rule #${d})`, 'IST0131'));
      });
    }
    keys.forEach((k) => {
      if (!seen.has(k)) seen.set(k, i);
    });
  });
  return out;
}

const unreachableRules: Analyzer = {
  name: 'virtual-service-unreachable-rules',
  run: (ctx) => {
    const out: ConfigError[] = [];
    for (const vs of ctx.of<VirtualServiceSpec>('VirtualService')) {
      const report: Report = (path, message, code) => ctx.problem('warning', vs, path, message, code);
      out.push(...unreachableIn(report, 'http', vs.spec.http ?? [], (r) => isCatchAll(r as HTTPRoute)));
      out.push(...unreachableIn(report, 'tcp', vs.spec.tcp ?? [], (r) => !r.match || r.match.length === 0));
      out.push(...unreachableIn(report, 'tls', vs.spec.tls ?? [], (r) => !r.match || r.match.length === 0));
    }
    return out;
  },
};

/** Only a VirtualService that another one delegates to may leave `hosts` out (Istio's rule). */
const delegateHosts: Analyzer = {
  name: 'virtual-service-hosts',
  run: (ctx) => {
    const vss = ctx.of<VirtualServiceSpec>('VirtualService');
    const delegated = new Set<string>();
    for (const vs of vss) {
      for (const h of vs.spec.http ?? []) {
        if (h.delegate) delegated.add(`${h.delegate.namespace ?? vs.metadata.namespace ?? 'default'}/${h.delegate.name}`);
      }
    }
    const out: ConfigError[] = [];
    for (const vs of vss) {
      if (vs.spec.hosts !== undefined || delegated.has(nsName(vs))) continue;
      out.push(ctx.problem('error', vs, ['spec', 'hosts'], `missing required field (only a delegate VirtualService may leave hosts out, and no VirtualService delegates to ${nsName(vs)})`));
    }
    return out;
  },
};

export const ROUTE_ANALYZERS: Analyzer[] = [unreachableRules, delegateHosts];
