/** The proxy's xDS client: ADS (delta or SotW), validation, warming, NACKs. */
export { XdsClient, DEFAULT_INITIAL_FETCH_TIMEOUT_MS, type XdsClientOptions, type XdsClientStatus, type XdsProtocol, type NackEvent } from './client.js';
export { XdsState, XDS_TYPES, ROOTCA, type AcceptedResource, type RejectedUpdate, type TypeState, type Update, type HandleResult, type ResolveResult } from './state.js';
export { exponentialBackoff, type Backoff, type BackoffOptions } from '../../mesh/backoff.js';
