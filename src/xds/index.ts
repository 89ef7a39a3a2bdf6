/** Envoy xDS v3 for Isle: protos, codec, snapshot cache and the ADS server. */
export * from '../mesh/typeurls.js';
export * from './protos.js';
export * from './ads.js';
export * from './codec.js';
export * from './cache.js';
export * from './server.js';
