/** The config model: kinds, parsing, validation, loading and analysis of user config. */
export * from './types.js';
export { parseConfigText, fieldLine, DEFAULT_NAMESPACE } from './parse.js';
export { listConfigFiles, loadConfigPaths, loadConfig, type LoadResult } from './load.js';
export { analyze, ANALYZERS, type Analyzer, type AnalyzeOptions } from './analyze.js';
export {
  DESCRIPTORS, descriptorFor, exportedKinds, isKind, preferredApiVersion, apiVersions, type KindDescriptor,
} from './descriptors.js';
export { parseDuration, formatPath, type Path } from './schema.js';
export { fqdn, hostMatches } from './hosts.js';
export type * from './kinds/core.js';
export type * from './kinds/networking.js';
export type * from './kinds/security.js';
export type { MeshConfigSpec, RemoteClusterSpec, Locality } from './kinds/mesh.js';
export { parseLocality } from './kinds/mesh.js';
export type { Labels, WorkloadSelector } from './kinds/common.js';
