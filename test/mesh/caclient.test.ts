import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import protobuf from 'protobufjs';
import { CA_PROTO_FILE, CERT_SERVICE_METHOD_PATH, certServiceDefinition, decodeCertificateRequest, decodeCertificateResponse, encodeCertificateRequest, encodeCertificateResponse, protoDir } from '../../src/mesh/caclient.js';

// The hand-written codecs against the contract they were written from.
const root = new protobuf.Root().loadSync(join(protoDir(), CA_PROTO_FILE), { keepCase: true });
const Req = root.lookupType('istio.v1.auth.IstioCertificateRequest');
const Res = root.lookupType('istio.v1.auth.IstioCertificateResponse');

test('a request encodes to the bytes ca.proto gives and decodes what an Istio agent sends (metadata skipped)', () => {
  const m = { csr: '-----BEGIN CERTIFICATE REQUEST-----\nabc\n', validity_duration: 86_400 };
  assert.deepEqual(encodeCertificateRequest(m), Buffer.from(Req.encode(Req.fromObject(m)).finish()));
  const agent = Req.encode(Req.fromObject({ csr: 'x', validity_duration: 3600, metadata: { fields: { ClusterID: { stringValue: 'cluster-1' }, n: { numberValue: 2 } } } })).finish();
  assert.deepEqual(decodeCertificateRequest(agent), { csr: 'x', validity_duration: 3600 });
  // proto3 defaults for absent fields; a negative lifetime survives (the service rejects it by name).
  assert.deepEqual(decodeCertificateRequest(new Uint8Array()), { csr: '', validity_duration: 0 });
  assert.equal(decodeCertificateRequest(Req.encode(Req.fromObject({ validity_duration: -5 })).finish()).validity_duration, -5);
});

test('a response round-trips through ca.proto in both directions', () => {
  const chain = ['leaf', 'intermediate', 'root'];
  assert.deepEqual(encodeCertificateResponse({ cert_chain: chain }), Buffer.from(Res.encode(Res.fromObject({ cert_chain: chain })).finish()));
  assert.deepEqual(decodeCertificateResponse(Res.encode(Res.fromObject({ cert_chain: chain })).finish()), { cert_chain: chain });
  assert.deepEqual(decodeCertificateResponse(new Uint8Array()), { cert_chain: [] });
});

test('the service definition is the unary CreateCertificate at its gRPC path', () => {
  const d = certServiceDefinition()['CreateCertificate']!;
  assert.equal(d.path, CERT_SERVICE_METHOD_PATH);
  assert.equal(d.requestStream, false);
  assert.equal(d.responseStream, false);
});
