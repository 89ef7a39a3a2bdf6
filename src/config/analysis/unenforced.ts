/**
 * Security config Isle accepts but would not enforce is an error, never silently ignored
 * (issue #11 §6): every field of AuthorizationPolicy outside what src/generate/authz.ts
 * translates, CUSTOM (not pushed), targetRef(s) (not pushed), and `when` keys Isle does not
 * evaluate. Rules with HTTP-only fields that reach a TCP port are warnings: Istio (and Isle)
 * ignore the ALLOW rule there, or those conditions of a DENY rule. WorkloadGroup address lists
 * (registration, ADR 0040) that do not parse are errors too.
 */
import { isIP } from 'node:net';
import type { AnalyzeContext, Analyzer } from './context.js';
import type { ServiceSpec } from '../kinds/core.js';
import type { WorkloadGroupSpec } from '../kinds/networking.js';
import {
  ENFORCED_OPERATION_FIELDS,
  ENFORCED_SOURCE_FIELDS,
  ENFORCED_WHEN_KEYS,
  HEADER_WHEN_KEY,
  HTTP_ONLY_OPERATION_FIELDS,
  HTTP_ONLY_SOURCE_FIELDS,
  type AuthorizationPolicySpec,
} from '../kinds/security.js';
import type { ConfigError, Resource } from '../types.js';

const WHY_SOURCE: Record<string, string> = {
  requestPrincipals: 'not supported yet (JWT request authentication is not implemented)',
  notRequestPrincipals: 'not supported yet (JWT request authentication is not implemented)',
  remoteIpBlocks: 'not supported (Isle trusts no X-Forwarded-For); use ipBlocks',
  notRemoteIpBlocks: 'not supported (Isle trusts no X-Forwarded-For); use notIpBlocks',
  serviceAccounts: 'not supported yet; use principals ("<trust-domain>/ns/<ns>/sa/<sa>")',
  notServiceAccounts: 'not supported yet; use notPrincipals',
};

function consequence(action: string | undefined): string {
  return action === 'DENY' ? 'the condition is ignored, so the DENY rule matches more' : 'the rule is ignored (it allows nothing)';
}

/** Ports of Services the policy may apply to that are not HTTP (by name prefix or appProtocol, as Istio). */
function tcpPortsInScope(ctx: AnalyzeContext, p: Resource<AuthorizationPolicySpec>, rootNamespace: string): string[] {
  const ns = p.metadata.namespace ?? 'default';
  const sel = p.spec.selector?.matchLabels ?? {};
  const out: string[] = [];
  for (const s of ctx.of<ServiceSpec>('Service')) {
    const sns = s.metadata.namespace ?? 'default';
    if (ns !== rootNamespace && sns !== ns) continue;
    const ssel = s.spec.selector ?? {};
    // A pod could carry both label sets unless they disagree on a key.
    if (Object.keys(sel).some((k) => k in ssel && ssel[k] !== sel[k])) continue;
    for (const port of s.spec.ports ?? []) {
      const proto = (port.appProtocol ?? port.name ?? '').toLowerCase();
      if (!/^(http|http2|grpc|grpc-web|h2c)([-_]|$)/.test(proto)) out.push(`${sns}/${s.metadata.name}:${port.port}`);
    }
  }
  return out;
}

function authorizationPolicies(ctx: AnalyzeContext): ConfigError[] {
  const out: ConfigError[] = [];
  const root = ctx.of<{ rootNamespace?: string }>('MeshConfig')[0]?.spec.rootNamespace ?? 'istio-system';
  for (const p of ctx.of<AuthorizationPolicySpec>('AuthorizationPolicy')) {
    const s = p.spec;
    if (s.action === 'CUSTOM') out.push(ctx.problem('error', p, ['spec', 'action'], 'CUSTOM (external authorization) is not supported by Isle: this policy is not pushed'));
    for (const f of ['targetRef', 'targetRefs'] as const) {
      if (s[f] !== undefined) out.push(ctx.problem('error', p, ['spec', f], `not supported by Isle (use selector): this policy is not pushed`));
    }
    const tcp = tcpPortsInScope(ctx, p, root);
    (s.rules ?? []).forEach((rule, i) => {
      const httpOnly: string[] = [];
      (rule.from ?? []).forEach((f, j) => {
        for (const k of Object.keys(f.source ?? {})) {
          if (HTTP_ONLY_SOURCE_FIELDS.includes(k)) httpOnly.push(`from.source.${k}`);
          if (!ENFORCED_SOURCE_FIELDS.includes(k)) {
            out.push(ctx.problem('error', p, ['spec', 'rules', i, 'from', j, 'source', k], `${WHY_SOURCE[k] ?? 'not enforced by Isle'}: ${consequence(s.action)}`));
          }
        }
      });
      (rule.to ?? []).forEach((t, j) => {
        for (const k of Object.keys(t.operation ?? {})) {
          if (HTTP_ONLY_OPERATION_FIELDS.includes(k)) httpOnly.push(`to.operation.${k}`);
          if (!ENFORCED_OPERATION_FIELDS.includes(k)) out.push(ctx.problem('error', p, ['spec', 'rules', i, 'to', j, 'operation', k], `not enforced by Isle: ${consequence(s.action)}`));
        }
        for (const [k, vs] of Object.entries(t.operation ?? {})) {
          if (k !== 'ports' && k !== 'notPorts') continue;
          vs.forEach((v, n) => {
            if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 65535) out.push(ctx.problem('error', p, ['spec', 'rules', i, 'to', j, 'operation', k, n], `invalid port ${JSON.stringify(v)} (1-65535)`));
          });
        }
      });
      (rule.when ?? []).forEach((c, j) => {
        if (HEADER_WHEN_KEY.test(c.key)) httpOnly.push(`when ${c.key}`);
        else if (!ENFORCED_WHEN_KEYS.includes(c.key)) {
          out.push(ctx.problem('error', p, ['spec', 'rules', i, 'when', j, 'key'], `${JSON.stringify(c.key)} is not supported by Isle (supported: request.headers[...], ${ENFORCED_WHEN_KEYS.join(', ')}): ${consequence(s.action)}`));
        }
      });
      if (httpOnly.length > 0 && tcp.length > 0) {
        out.push(
          ctx.problem('warning', p, ['spec', 'rules', i], `uses HTTP-only fields (${[...new Set(httpOnly)].join(', ')}) and may apply to TCP port(s) ${tcp.join(', ')}: there ${s.action === 'DENY' ? 'those conditions are ignored (the DENY rule matches more)' : 'the rule is ignored'}, as in Istio`),
        );
      }
      for (const src of rule.from ?? []) {
        for (const [k, vs] of Object.entries(src.source ?? {})) {
          if (k !== 'ipBlocks' && k !== 'notIpBlocks') continue;
          for (const v of vs) if (!validCidr(v)) out.push(ctx.problem('error', p, ['spec', 'rules', i], `from.source.${k}: invalid IP or CIDR ${JSON.stringify(v)}`));
        }
      }
    });
  }
  return out;
}

function validCidr(v: string): boolean {
  const [ip, bits, extra] = v.split('/');
  const fam = isIP(ip ?? '');
  if (fam === 0 || extra !== undefined) return false;
  return bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= (fam === 4 ? 32 : 128));
}

function workloadGroupAddresses(ctx: AnalyzeContext): ConfigError[] {
  const out: ConfigError[] = [];
  for (const g of ctx.of<WorkloadGroupSpec>('WorkloadGroup')) {
    const raw = g.metadata.annotations?.['isle.dev/workload-addresses'];
    if (raw === undefined) continue;
    for (const item of raw.split(',').map((x) => x.trim()).filter(Boolean)) {
      if (!validCidr(item)) out.push(ctx.problem('error', g, ['metadata', 'annotations', 'isle.dev/workload-addresses'], `invalid IP or CIDR ${JSON.stringify(item)}: it allows no address`));
    }
  }
  return out;
}

export const unenforcedSecurityFields: Analyzer = {
  name: 'security-unenforced',
  run: (ctx) => [...authorizationPolicies(ctx), ...workloadGroupAddresses(ctx)],
};
