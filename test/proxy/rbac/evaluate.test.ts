/**
 * AuthorizationPolicy end to end without sockets: policy YAML → the generator's Envoy RBAC
 * (src/generate/authz.ts) → protobuf encode/decode (what Envoy would parse) → the proxy's
 * decoder → the engine, for Istio's documented examples.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuthorizationPolicySpec } from '../../../src/config/kinds/security.js';
import type { Resource } from '../../../src/config/types.js';
import { authzFilters } from '../../../src/generate/authz.js';
import type { Proxy } from '../../../src/model/proxy.js';
import type { PushContext } from '../../../src/model/pushcontext.js';
import { decodeRbacFilter } from '../../../src/proxy/rbac/decode.js';
import { evaluateRbac, type RbacFacts } from '../../../src/proxy/rbac/evaluate.js';
import { Errors, Reader } from '../../../src/proxy/decode/util.js';
import type { RbacFilterModel } from '../../../src/proxy/model.js';
import { decodeResource, toAny } from '../../../src/xds/codec.js';

const policy = (ns: string, name: string, spec: AuthorizationPolicySpec): Resource<AuthorizationPolicySpec> =>
  ({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name, namespace: ns }, spec, source: { file: 't.yaml', line: 1 } }) as unknown as Resource<AuthorizationPolicySpec>;

const proxy = { ip: '127.1.0.10', namespace: 'default', labels: { app: 'helloworld' } } as unknown as Proxy;

function filtersFor(policies: Resource<AuthorizationPolicySpec>[], tcp = false): { filters: RbacFilterModel[]; warnings: string[] } {
  const push = { mesh: { rootNamespace: 'istio-system' }, authorizationPolicies: policies } as unknown as PushContext;
  const out = authzFilters(push, proxy, 5000, tcp);
  const filters: RbacFilterModel[] = [];
  for (const f of tcp ? out.network : out.http) {
    const tc = f['typed_config'] as Record<string, unknown>;
    const { ['@type']: type, ...body } = tc;
    const wire = decodeResource(toAny(type as string, body)); // fails loudly if Envoy could not parse it
    const errs = new Errors('rbac');
    const m = decodeRbacFilter(new Reader(wire as Record<string, unknown>, '', errs));
    assert.deepEqual(errs.list, []);
    if (m) filters.push(m);
  }
  return { filters, warnings: out.warnings };
}

const SLEEP = 'spiffe://cluster.local/ns/default/sa/sleep';
const OTHER = 'spiffe://cluster.local/ns/other/sa/client';
const get = (path: string, extra: Partial<RbacFacts> = {}): RbacFacts => ({ principal: SLEEP, sourceIp: '127.1.0.20', destinationPort: 5000, method: 'GET', path, host: 'helloworld:5000', headers: {}, ...extra });

interface Case {
  name: string;
  policies: Resource<AuthorizationPolicySpec>[];
  tcp?: boolean;
  expect: [RbacFacts, boolean][];
  warns?: RegExp;
}

const CASES: Case[] = [
  { name: 'no policy: allow', policies: [], expect: [[get('/'), true], [get('/', { principal: undefined }), true]] },
  { name: 'allow-nothing (spec: {})', policies: [policy('default', 'allow-nothing', {})], expect: [[get('/'), false]] },
  { name: 'deny-all (DENY with one empty rule)', policies: [policy('default', 'deny-all', { action: 'DENY', rules: [{}] })], expect: [[get('/'), false], [get('/x', { principal: undefined }), false]] },
  { name: 'DENY without rules matches nothing', policies: [policy('default', 'deny-none', { action: 'DENY' })], expect: [[get('/'), true]] },
  {
    name: 'allow by principal and method',
    policies: [policy('default', 'allow-sleep-get', { action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/default/sa/sleep'] } }], to: [{ operation: { methods: ['GET', 'HEAD'] } }] }] })],
    expect: [[get('/'), true], [get('/', { method: 'POST' }), false], [get('/', { principal: OTHER }), false], [get('/', { principal: undefined }), false]],
  },
  {
    name: 'deny by path (exact, prefix, suffix) beats an allow-all',
    policies: [
      policy('default', 'allow-all', { action: 'ALLOW', rules: [{}] }),
      policy('default', 'deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin', '/private/*', '*.secret'] } }] }] }),
    ],
    expect: [[get('/hello'), true], [get('/admin'), false], [get('/admin?x=1'), false], [get('/private/a/b'), false], [get('/a.secret'), false], [get('/adminx'), true]],
  },
  {
    name: 'namespace-wide: from namespaces / notNamespaces',
    policies: [policy('default', 'ns', { rules: [{ from: [{ source: { namespaces: ['default'], notPrincipals: ['cluster.local/ns/default/sa/bad*'] } }] }] })],
    expect: [[get('/'), true], [get('/', { principal: OTHER }), false], [get('/', { principal: 'spiffe://cluster.local/ns/default/sa/bad-actor' }), false], [get('/', { principal: undefined }), false]],
  },
  {
    name: 'mesh-wide in the root namespace (selector applies across namespaces)',
    policies: [policy('istio-system', 'mesh-deny-post', { action: 'DENY', rules: [{ to: [{ operation: { methods: ['POST'] } }] }] }), policy('istio-system', 'other-app', { action: 'DENY', selector: { matchLabels: { app: 'nothere' } }, rules: [{}] })],
    expect: [[get('/'), true], [get('/', { method: 'POST' }), false]],
  },
  {
    name: 'a policy of another namespace does not apply',
    policies: [policy('other', 'deny-all', { action: 'DENY', rules: [{}] })],
    expect: [[get('/'), true]],
  },
  {
    name: 'ipBlocks, notIpBlocks, ports, hosts, notHosts',
    policies: [policy('default', 'net', { rules: [{ from: [{ source: { ipBlocks: ['127.1.0.0/16'], notIpBlocks: ['127.1.0.66'] } }], to: [{ operation: { ports: ['5000'], hosts: ['helloworld'], notHosts: ['evil*'] } }] }] })],
    expect: [[get('/'), true], [get('/', { sourceIp: '127.1.0.66' }), false], [get('/', { sourceIp: '10.0.0.1' }), false], [get('/', { destinationPort: 5001 }), false], [get('/', { host: 'HelloWorld' }), true], [get('/', { host: 'other' }), false]],
  },
  {
    name: 'when: request.headers, source.ip, source.namespace, destination.port, connection.sni, notValues',
    policies: [
      policy('default', 'when', {
        rules: [
          {
            when: [
              { key: 'request.headers[x-token]', values: ['abc*'] },
              { key: 'source.ip', values: ['127.1.0.0/16'] },
              { key: 'source.namespace', values: ['default'] },
              { key: 'source.principal', notValues: ['cluster.local/ns/default/sa/blocked'] },
              { key: 'destination.port', values: ['5000'] },
              { key: 'connection.sni', notValues: ['bad.example'] },
            ],
          },
        ],
      }),
    ],
    expect: [
      [get('/', { headers: { 'x-token': 'abcdef' } }), true],
      [get('/', { headers: {} }), false],
      [get('/', { headers: { 'x-token': 'abcdef' }, principal: 'spiffe://cluster.local/ns/default/sa/blocked' }), false],
      [get('/', { headers: { 'x-token': 'abcdef' }, sni: 'bad.example' }), false],
    ],
  },
  {
    name: 'AUDIT never denies',
    policies: [policy('default', 'audit', { action: 'AUDIT', rules: [{}] })],
    expect: [[get('/'), true]],
  },
  {
    name: 'TCP port: an ALLOW rule with HTTP-only fields is ignored (and warned about)',
    tcp: true,
    policies: [policy('default', 'tcp-allow', { rules: [{ to: [{ operation: { methods: ['GET'] } }] }, { from: [{ source: { principals: ['cluster.local/ns/default/sa/sleep'] } }] }] })],
    expect: [[{ principal: SLEEP, destinationPort: 5000 }, true], [{ principal: OTHER, destinationPort: 5000 }, false]],
    warns: /tcp-allow rules\[0\].*to\.operation\.methods \(HTTP only, this is a TCP port\): rule ignored/,
  },
  {
    name: 'TCP port: a DENY rule keeps its TCP conditions and drops HTTP ones (denies more)',
    tcp: true,
    policies: [policy('default', 'tcp-deny', { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['other'] } }], to: [{ operation: { paths: ['/admin'] } }] }] })],
    expect: [[{ principal: SLEEP, destinationPort: 5000 }, true], [{ principal: OTHER, destinationPort: 5000 }, false]],
    warns: /tcp-deny rules\[0\].*those conditions ignored/,
  },
  {
    name: 'plain HTTP under PERMISSIVE has no principal: principal rules do not match it',
    policies: [policy('default', 'any-authenticated', { rules: [{ from: [{ source: { principals: ['*'] } }] }] })],
    expect: [[get('/'), true], [get('/', { principal: undefined }), false]],
  },
];

describe('AuthorizationPolicy → Envoy RBAC → isle proxy engine', () => {
  for (const c of CASES) {
    it(c.name, () => {
      const { filters, warnings } = filtersFor(c.policies, c.tcp);
      c.expect.forEach(([facts, allowed], i) => assert.equal(evaluateRbac(filters, facts).allowed, allowed, `case ${i}: ${JSON.stringify(facts)}`));
      if (c.warns) assert.match(warnings.join('\n'), c.warns);
      else assert.deepEqual(warnings, []);
    });
  }

  it('a denial names the DENY policy that matched', () => {
    const { filters } = filtersFor([policy('default', 'deny-admin', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] })]);
    assert.deepEqual(evaluateRbac(filters, get('/admin')), { allowed: false, policy: 'ns[default]-policy[deny-admin]-rule[0]', audited: [] });
  });
});
