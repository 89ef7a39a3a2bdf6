import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { repoRoot } from '../helpers/paths.js';
import { parseConfigText } from '../../src/config/parse.js';
import { analyze } from '../../src/config/analyze.js';
import { formatConfigError, type Resource } from '../../src/config/types.js';
import { PEER_WORKLOAD_TYPE, WireError, workloadFromWire } from '../../src/peering/wire.js';
import { proxyFromNode } from '../../src/model/proxy.js';
import { decodeToken } from '../../src/mesh/token.js';
import { decodeMessage, encodeMessage } from '../../src/xds/codec.js';

/** Keys that name properties every plain JS object inherits: a lookup `obj[key]` on input finds them. */
export const DANGEROUS_KEYS = ['__proto__', 'constructor', 'valueOf', 'hasOwnProperty', 'toString', 'prototype', 'toLocaleString', 'isPrototypeOf'];

const EVERY_KIND = join(repoRoot(), 'test', 'fixtures', 'config', 'every-kind.yaml');

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function documents(): Json[] {
  return parseAllDocuments(readFileSync(EVERY_KIND, 'utf8')).map((d) => d.toJS() as Json);
}

/** Paths to every mapping and every string inside `v`, the root included. */
function nodes(v: Json, path: (string | number)[] = [], out: { maps: (string | number)[][]; strings: (string | number)[][] } = { maps: [], strings: [] }) {
  if (typeof v === 'string') out.strings.push(path);
  else if (Array.isArray(v)) v.forEach((x, i) => nodes(x, [...path, i], out));
  else if (v !== null && typeof v === 'object') {
    out.maps.push(path);
    for (const [k, x] of Object.entries(v)) nodes(x, [...path, k], out);
  }
  return out;
}

function at(root: Json, path: (string | number)[]): Json {
  let v = root;
  for (const seg of path) v = (v as Record<string | number, Json>)[seg]!;
  return v;
}

/** Sets an own property, even for `__proto__` (plain assignment would change the prototype). */
function setOwn(o: object, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

const baseline = (() => {
  const r = parseConfigText(EVERY_KIND, readFileSync(EVERY_KIND, 'utf8'));
  return r.resources;
})();

function others(kind: unknown): Resource[] {
  return baseline.filter((r) => r.kind !== kind);
}

/** Parses one object (as JSON text) and analyzes it with the other kinds' objects; returns the lines printed. */
function check(doc: Json, what: string): string[] {
  const text = JSON.stringify(doc);
  let lines: string[] = [];
  assert.doesNotThrow(() => {
    const r = parseConfigText('case.json', text);
    const kind = (doc as { kind?: unknown }).kind;
    const found = analyze([...others(kind), ...r.resources]);
    lines = [...r.errors, ...found].map(formatConfigError);
  }, what);
  for (const l of lines) assert.ok(!/TypeError|is not a function|Cannot convert/.test(l), `${what}: ${l}`);
  return lines;
}

describe('keys named like Object.prototype properties', () => {
  it('the fixture has every kind and analyzes clean', () => {
    const r = parseConfigText(EVERY_KIND, readFileSync(EVERY_KIND, 'utf8'));
    assert.deepEqual(r.errors.map(formatConfigError), []);
    assert.equal(new Set(r.resources.map((x) => x.kind)).size, 14);
    assert.deepEqual(analyze(r.resources).map(formatConfigError), []);
  });

  it('as a key at every nesting level of every kind: no crash, a clear finding', () => {
    let cases = 0;
    for (const doc of documents()) {
      for (const path of nodes(doc).maps) {
        for (const key of DANGEROUS_KEYS) {
          for (const value of [{}, 'x', [1], 7]) {
            const copy = structuredClone(doc);
            setOwn(at(copy, path) as object, key, value);
            const what = `${(doc as { kind: string }).kind} ${path.join('.') || '(root)'}.${key} = ${JSON.stringify(value)}`;
            const lines = check(copy, what);
            cases++;
            // At the top level and in spec (not in free-form maps such as labels) the key is an unknown field.
            if (path.length === 1 && path[0] === 'spec' && key === 'constructor') {
              assert.ok(lines.some((l) => l.includes('spec.constructor: unknown field')), `${what}: ${lines.join('\n')}`);
            }
          }
        }
      }
    }
    assert.ok(cases > 2000, `only ${cases} cases`);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.deepEqual(Object.keys(Object.prototype), []);
  });

  it('as a value (names, hosts, subsets, ports) at every string of every kind: no crash', () => {
    let cases = 0;
    for (const doc of documents()) {
      for (const path of nodes(doc).strings) {
        if (path[0] === 'kind' || path[0] === 'apiVersion') continue;
        for (const key of DANGEROUS_KEYS) {
          const copy = structuredClone(doc);
          const parent = at(copy, path.slice(0, -1)) as Record<string | number, Json>;
          parent[path[path.length - 1]!] = key;
          check(copy, `${(doc as { kind: string }).kind} ${path.join('.')} = ${key}`);
          cases++;
        }
      }
    }
    assert.ok(cases > 500, `only ${cases} cases`);
  });

  it('a spec key __proto__ is reported as an unknown field, not a crash (the original report)', () => {
    const text = 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: r\nspec:\n  host: reviews\n  __proto__:\n    x: 1\n  valueOf: 1\n  hasOwnProperty: 1\n';
    const r = parseConfigText('dr.yaml', text);
    assert.deepEqual(r.errors.map(formatConfigError), [
      'dr.yaml:7 DestinationRule default/r: warning: spec.__proto__: unknown field',
      'dr.yaml:9 DestinationRule default/r: warning: spec.valueOf: unknown field',
      'dr.yaml:10 DestinationRule default/r: warning: spec.hasOwnProperty: unknown field',
    ]);
    assert.equal(r.resources.length, 1);
  });
});

describe('keys named like Object.prototype properties in other untrusted input', () => {
  it('peering wire: labels and ports keep every key as data', () => {
    const value = Buffer.from(
      '{"name":"w","namespace":"ns","labels":{"__proto__":"a","constructor":"b","valueOf":"c"},"serviceAccount":"sa","locality":"r/z","network":"n","cluster":"c","ports":{"__proto__":80,"toString":81},"health":"HEALTHY"}',
    );
    const w = workloadFromWire({ type_url: PEER_WORKLOAD_TYPE, value }, 'workload ns/w');
    assert.deepEqual(Object.keys(w.labels).sort(), ['__proto__', 'constructor', 'valueOf']);
    assert.equal(Object.getPrototypeOf(w.labels), Object.prototype);
    assert.equal(w.labels.valueOf, 'c');
    assert.deepEqual(Object.keys(w.ports).sort(), ['__proto__', 'toString']);
    // A missing field stays missing even when its name is an Object.prototype member.
    const bad = Buffer.from('{"name":"constructor","namespace":"ns","labels":{},"serviceAccount":"sa","locality":"","network":"n","cluster":"c","ports":{},"health":"toString"}');
    assert.throws(() => workloadFromWire({ type_url: PEER_WORKLOAD_TYPE, value: bad }, 'workload ns/w'), WireError);
  });

  it('xDS node metadata: only the proxy\'s own keys count, labels keep odd keys', () => {
    const metadata = JSON.parse('{"__proto__":{"NAMESPACE":"evil"},"LABELS":{"__proto__":"x","constructor":"y","app":"a"},"SERVICE_ACCOUNT":"sa"}') as Record<string, unknown>;
    const p = proxyFromNode({ id: 'sidecar~127.0.0.5~w.ns~ns.svc.cluster.local', metadata }, { cluster: 'c1' });
    assert.equal(p.namespace, 'ns');
    assert.deepEqual(Object.keys(p.labels).sort(), ['__proto__', 'app', 'constructor']);
    const viaProto = Object.create({ NAMESPACE: 'evil', SERVICE_ACCOUNT: 'admin' }) as Record<string, unknown>;
    const q = proxyFromNode({ id: 'sidecar~127.0.0.5~w.ns~ns.svc.cluster.local', metadata: viaProto }, { cluster: 'c1' });
    assert.equal(q.namespace, 'ns', 'inherited metadata is not the proxy\'s');
    assert.equal(q.serviceAccount, 'default');
  });

  it('tokens: a claim is only an own property of the payload', () => {
    const part = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const payload = '{"__proto__":{"exp":1},"constructor":"x"}';
    const t = `${part({ alg: 'ES256' })}.${Buffer.from(payload).toString('base64url')}.${part('sig')}`;
    const d = decodeToken(t);
    assert.equal(Object.getPrototypeOf(d.payload), Object.prototype);
    assert.ok(Object.hasOwn(d.payload, '__proto__'));
  });

  it('protobuf Struct decoding: a key __proto__ is a key', () => {
    const s = decodeMessage('google.protobuf.Struct', encodeMessage('google.protobuf.Struct', JSON.parse('{"constructor":"a","valueOf":{"x":1},"toString":[1]}')));
    assert.deepEqual(Object.keys(s).sort(), ['constructor', 'toString', 'valueOf']);
    assert.equal(Object.getPrototypeOf(s), Object.prototype);
  });
});
