import { test } from 'node:test';
import assert from 'node:assert/strict';
import protobuf from 'protobufjs';
import {
  PROTO_FILES,
  committedXdsDescriptor,
  installedProtosVersion,
  parseXdsProtos,
  xdsDescriptor,
  xdsRoot,
  XDS_DESCRIPTOR_FILE,
} from '../../src/xds/protos.js';

const parsed = parseXdsProtos();

test(`proto/${XDS_DESCRIPTOR_FILE} is what the .proto files give (regenerate: npm run build && node scripts/xds-descriptor.mjs)`, () => {
  const committed = committedXdsDescriptor();
  assert.ok(committed, `proto/${XDS_DESCRIPTOR_FILE} is missing or was generated for another PROTO_FILES list or @grpc/grpc-js-xds version`);
  assert.deepEqual(committed, JSON.parse(JSON.stringify(xdsDescriptor(parsed, installedProtosVersion()))));
});

/** What encoding and decoding depend on, per field. */
function fieldShape(f: protobuf.Field): unknown {
  f.resolve();
  return {
    id: f.id,
    type: f.resolvedType ? f.resolvedType.fullName : f.type,
    repeated: f.repeated,
    map: f instanceof protobuf.MapField ? f.keyType : undefined,
    packed: f.packed,
    oneof: f.partOf?.name,
    optional: f.optional,
    presence: Boolean(f.hasPresence),
    default: f.typeDefault,
  };
}

function definitions(root: protobuf.Root): Map<string, protobuf.ReflectionObject> {
  const out = new Map<string, protobuf.ReflectionObject>();
  const visit = (ns: protobuf.NamespaceBase): void => {
    for (const o of ns.nestedArray) {
      if (o instanceof protobuf.Type || o instanceof protobuf.Enum || o instanceof protobuf.Service) out.set(o.fullName, o);
      if (o instanceof protobuf.Namespace || o instanceof protobuf.Type) visit(o);
    }
  };
  visit(root);
  return out;
}

test('the descriptor root encodes like the parsed one: every kept type has the same fields, enums the same values', () => {
  const loaded = definitions(xdsRoot());
  const source = definitions(parsed);
  for (const [name, o] of loaded) {
    const p = source.get(name);
    assert.ok(p, `${name} is not in the parsed protos`);
    if (o instanceof protobuf.Type) {
      const fields = (t: protobuf.Type) => Object.fromEntries(t.fieldsArray.map((f) => [f.name, fieldShape(f)]));
      assert.deepEqual(fields(o), fields(p as protobuf.Type), name);
      assert.deepEqual(o.oneofsArray.map((x) => [x.name, x.oneof]), (p as protobuf.Type).oneofsArray.map((x) => [x.name, x.oneof]), name);
    } else if (o instanceof protobuf.Enum) assert.deepEqual({ ...o.values }, { ...(p as protobuf.Enum).values }, name);
  }
  // Nothing a PROTO_FILES file defines is pruned, nor anything a kept field refers to.
  for (const [name, p] of source) {
    const wellKnown = name.startsWith('.google.protobuf.') && !p.filename?.endsWith('descriptor.proto');
    if (wellKnown || (p.filename && PROTO_FILES.some((f) => p.filename!.endsWith(f)))) assert.ok(loaded.has(name), `${name} (defined in ${p.filename}) was pruned`);
  }
  for (const o of loaded.values()) {
    if (o instanceof protobuf.Type) for (const f of o.fieldsArray) assert.ok(!f.resolvedType || loaded.has(f.resolvedType.fullName), `${o.fullName}.${f.name}: ${f.type} was pruned`);
  }
  // The same message encodes to the same bytes through both roots (repeated scalars packed, maps, oneofs, Anys).
  const name = 'envoy.config.route.v3.RouteConfiguration';
  const msg = {
    name: 'r',
    virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'c', retry_policy: { retry_on: '5xx', retriable_status_codes: [503, 504], num_retries: { value: 2 } } } }], request_headers_to_add: [{ header: { key: 'k', value: 'v' } }] }],
    typed_per_filter_config: { f: { type_url: 'type.googleapis.com/x', value: Buffer.from([1, 2]) } },
  };
  const enc = (r: protobuf.Root) => Buffer.from(r.lookupType(name).encode(r.lookupType(name).fromObject(msg)).finish()).toString('hex');
  assert.equal(enc(xdsRoot()), enc(parsed));
});
