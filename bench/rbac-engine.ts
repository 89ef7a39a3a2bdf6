/**
 * Micro-benchmark of the RBAC engine (src/proxy/rbac): the per-request cost of evaluating an
 * AuthorizationPolicy of N rules, built the way the control plane builds it (generator → Envoy
 * RBAC → protobuf round trip → the proxy's decoder). The worst case: an ALLOW policy whose last
 * rule is the only one that matches, so every rule is evaluated.
 *
 *   node dist/bench/rbac-engine.js [rules=10] [iterations=1000000]
 */
import type { AuthorizationPolicySpec } from '../src/config/kinds/security.js';
import type { Resource } from '../src/config/types.js';
import { authzFilters } from '../src/generate/authz.js';
import type { Proxy } from '../src/model/proxy.js';
import type { PushContext } from '../src/model/pushcontext.js';
import { Errors, Reader } from '../src/proxy/decode/util.js';
import type { RbacFilterModel } from '../src/proxy/model.js';
import { decodeRbacFilter } from '../src/proxy/rbac/decode.js';
import { evaluateRbac, type RbacFacts } from '../src/proxy/rbac/evaluate.js';
import { decodeResource, toAny } from '../src/xds/codec.js';

export function policyOf(n: number): AuthorizationPolicySpec {
  const rules: NonNullable<AuthorizationPolicySpec['rules']> = [];
  for (let i = 0; i < n - 1; i++) rules.push({ from: [{ source: { principals: [`cluster.local/ns/default/sa/other-${i}`] } }], to: [{ operation: { methods: ['POST'], paths: [`/api/${i}/*`] } }] });
  rules.push({ from: [{ source: { principals: ['cluster.local/ns/default/sa/sleep'] } }], to: [{ operation: { methods: ['GET'] } }] });
  return { action: 'ALLOW', rules };
}

export function filtersFor(spec: AuthorizationPolicySpec | undefined): RbacFilterModel[] {
  const policies = spec ? [{ metadata: { name: 'bench', namespace: 'default' }, spec } as unknown as Resource<AuthorizationPolicySpec>] : [];
  const push = { mesh: { rootNamespace: 'istio-system' }, authorizationPolicies: policies } as unknown as PushContext;
  const out = authzFilters(push, { ip: '127.0.0.1', namespace: 'default', labels: {} } as unknown as Proxy, 5000, false);
  return out.http.flatMap((f) => {
    const { ['@type']: type, ...body } = f['typed_config'] as Record<string, unknown>;
    const m = decodeRbacFilter(new Reader(decodeResource(toAny(type as string, body)) as Record<string, unknown>, '', new Errors('bench')));
    return m ? [m] : [];
  });
}

const FACTS: RbacFacts = {
  principal: 'spiffe://cluster.local/ns/default/sa/sleep',
  sourceIp: '127.0.0.1',
  destinationPort: 5000,
  method: 'GET',
  path: '/hello?x=1',
  host: 'helloworld:5000',
  headers: { 'user-agent': 'bench', accept: '*/*' },
};

function nsPerOp(filters: RbacFilterModel[], iterations: number): number {
  let allowed = 0;
  for (let i = 0; i < 10_000; i++) allowed += evaluateRbac(filters, FACTS).allowed ? 1 : 0; // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) allowed += evaluateRbac(filters, FACTS).allowed ? 1 : 0;
  const ns = Number(process.hrtime.bigint() - t0) / iterations;
  if (allowed === 0) throw new Error('the bench request must be allowed');
  return ns;
}

const rules = Number(process.argv[2] ?? 10);
const iterations = Number(process.argv[3] ?? 1_000_000);
const none = nsPerOp(filtersFor(undefined), iterations);
const one = nsPerOp(filtersFor(policyOf(1)), iterations);
const n = nsPerOp(filtersFor(policyOf(rules)), iterations);
console.log(`RBAC engine, ${iterations.toLocaleString('en')} evaluations each (node ${process.version}):`);
console.log(`  no policy:            ${none.toFixed(0)} ns/request`);
console.log(`  1 rule (matches):     ${one.toFixed(0)} ns/request`);
console.log(`  ${rules} rules (last matches): ${n.toFixed(0)} ns/request`);
