// CA directories made the way Istio's tools/certs Makefiles make them (common.mk: root-ca.conf,
// %/intermediate.conf): openssl, O=Istio, an intermediate with only a DNS SAN and L=<cluster>, no
// SPIFFE URI. Keys are RSA 2048 instead of the Makefiles' 4096 only to keep tests fast.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openssl, tempDir } from './fixtures.js';

const REQ = (dn: string, ext: string) => `[ req ]
encrypt_key = no
prompt = no
utf8 = yes
default_md = sha256
default_bits = 2048
req_extensions = req_ext
x509_extensions = req_ext
distinguished_name = req_dn
[ req_ext ]
${ext}
[ req_dn ]
${dn}
`;

/** root-ca + cluster1-cacerts, as `make -f Makefile.selfsigned.mk root-ca cluster1-cacerts` does. */
export function istioCacerts(cluster = 'cluster1'): { dir: string; rootPem: string } {
  const top = tempDir('isle-istio-certs-');
  const ok = (args: string[], cwd = top) => {
    const r = openssl(args, cwd);
    assert.equal(r.status, 0, `openssl ${args.join(' ')}: ${r.stderr}`);
  };
  writeFileSync(join(top, 'root-ca.conf'), REQ('O = Istio\nCN = Root CA', 'subjectKeyIdentifier = hash\nbasicConstraints = critical, CA:true\nkeyUsage = critical, digitalSignature, nonRepudiation, keyEncipherment, keyCertSign'));
  ok(['genrsa', '-out', 'root-key.pem', '2048']);
  ok(['req', '-sha256', '-new', '-key', 'root-key.pem', '-config', 'root-ca.conf', '-out', 'root-cert.csr']);
  ok(['x509', '-req', '-sha256', '-days', '3650', '-signkey', 'root-key.pem', '-extensions', 'req_ext', '-extfile', 'root-ca.conf', '-in', 'root-cert.csr', '-out', 'root-cert.pem']);
  const dir = join(top, cluster);
  mkdirSync(dir);
  writeFileSync(
    join(dir, 'intermediate.conf'),
    REQ(`O = Istio\nCN = Intermediate CA\nL = ${cluster}`, 'subjectKeyIdentifier = hash\nbasicConstraints = critical, CA:true, pathlen:0\nkeyUsage = critical, digitalSignature, nonRepudiation, keyEncipherment, keyCertSign\nsubjectAltName=@san\n[ san ]\nDNS.1 = istiod.istio-system.svc'),
  );
  ok(['genrsa', '-out', 'ca-key.pem', '2048'], dir);
  ok(['req', '-new', '-config', 'intermediate.conf', '-key', 'ca-key.pem', '-out', 'cluster-ca.csr'], dir);
  ok(['x509', '-req', '-sha256', '-days', '730', '-CA', '../root-cert.pem', '-CAkey', '../root-key.pem', '-CAcreateserial', '-extensions', 'req_ext', '-extfile', 'intermediate.conf', '-in', 'cluster-ca.csr', '-out', 'ca-cert.pem'], dir);
  const rootPem = readFileSync(join(top, 'root-cert.pem'), 'utf8');
  writeFileSync(join(dir, 'cert-chain.pem'), readFileSync(join(dir, 'ca-cert.pem'), 'utf8') + rootPem);
  writeFileSync(join(dir, 'root-cert.pem'), rootPem);
  return { dir, rootPem };
}

