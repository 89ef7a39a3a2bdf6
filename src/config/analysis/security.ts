/** Reference checks of AuthorizationPolicies. */
import type { ConfigError } from '../types.js';
import type { AuthorizationPolicySpec } from '../kinds/security.js';
import type { Analyzer } from './context.js';
import { unenforcedSecurityFields } from './unenforced.js';

/** `<trust domain>/ns/<namespace>/sa/<account>`: the namespace of a principal, when it names one. */
function principalNamespace(p: string): string | undefined {
  const m = /^[^/]*\/ns\/([^/]+)\/sa\/[^/]+$/.exec(p);
  return m && !m[1]!.includes('*') ? m[1] : undefined;
}

/**
 * IST0101 ReferencedResourceNotFound (a warning here, as in Istio): a policy source naming a
 * namespace the config does not know. Wildcards are skipped; `notNamespaces` too (naming a missing
 * namespace there excludes nothing, which is harmless).
 */
const unknownNamespaces: Analyzer = {
  name: 'authorization-policy-unknown-namespace',
  run: (ctx) => {
    const known = ctx.namespaces();
    const out: ConfigError[] = [];
    for (const ap of ctx.of<AuthorizationPolicySpec>('AuthorizationPolicy')) {
      (ap.spec.rules ?? []).forEach((rule, i) =>
        (rule.from ?? []).forEach((f, j) => {
          const path = ['spec', 'rules', i, 'from', j, 'source'];
          (f.source?.namespaces ?? []).forEach((ns, k) => {
            if (!ns.includes('*') && !known.has(ns)) out.push(ctx.problem('warning', ap, [...path, 'namespaces', k], `namespace not found: ${JSON.stringify(ns)}`, 'IST0101'));
          });
          (f.source?.principals ?? []).forEach((p, k) => {
            const ns = principalNamespace(p);
            if (ns !== undefined && !known.has(ns)) out.push(ctx.problem('warning', ap, [...path, 'principals', k], `namespace ${JSON.stringify(ns)} of principal ${JSON.stringify(p)} not found`, 'IST0101'));
          });
        }),
      );
    }
    return out;
  },
};

export const SECURITY_ANALYZERS: Analyzer[] = [unknownNamespaces, unenforcedSecurityFields];
