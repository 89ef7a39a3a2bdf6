// Public API of Isle's PKI. Import from here, not from the modules: the x509 module must be
// initialised (crypto provider, Reflect shim) before @peculiar/x509 is used.
export { bundleTrustDomains, mergeBundles, parseBundle } from './bundle.js';
export {
  caSigner,
  createIntermediate,
  createRoot,
  validateClusterName,
  type CaSigner,
  type CreateIntermediateOptions,
  type CreateRootOptions,
  type IssuingCa,
  type RootCa,
} from './ca.js';
export {
  basicConstraintsOf,
  CLOCK_SKEW_MS,
  parseCertPem,
  parseCertsPem,
  subjectAltNames,
  trustDomainOf,
  type Cert,
} from './certs.js';
export { createCsr, parseCsr, type CreateCsrOptions, type ParsedCsr } from './csr.js';
export {
  analyzeCaDir,
  analyzeRootDir,
  analyzeWorkloadDir,
  detectLayout,
  loadCaDir,
  loadRootDir,
  loadWorkloadDir,
  type Check,
  type DirAnalysis,
  type Layout,
  type LoadOptions,
  type WorkloadMaterial,
} from './dirs.js';
export {
  assertWritable,
  CA_FILES,
  caFiles,
  CERT_MODE,
  KEY_MODE,
  ROOT_FILES,
  rootFiles,
  WORKLOAD_FILES,
  workloadFiles,
  writeFilesAtomic,
  type OutputFile,
} from './files.js';
export {
  describeCert,
  formatInspectReport,
  inspectPath,
  type CertificateInfo,
  type CsrInfo,
  type DirReport,
  type FileReport,
  type InspectReport,
  type PemItemInfo,
  type PrivateKeyInfo,
} from './inspect.js';
export { assertKeyType, DEFAULT_KEY_TYPE, describeKey, generateKey, isKeyType, KEY_TYPES, parsePrivateKeyPem, type KeyType } from './keys.js';
export { decodePem, encodePem, joinPem } from './pem.js';
export { DEFAULT_WORKLOAD_TTL_SECONDS, signWorkloadCsr, type SignedWorkload, type SignWorkloadOptions } from './sign.js';
export {
  buildSpiffeId,
  DEFAULT_TRUST_DOMAIN,
  parseSpiffeId,
  parseSubjectAltName,
  parseTrustDomainId,
  spiffeIdFromCert,
  trustDomainId,
  validateTrustDomain,
  type WorkloadIdentity,
} from './spiffe.js';
export { verifyChain, type VerifiedChain } from './verify.js';
