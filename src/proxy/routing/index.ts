export { route, pickWeighted, type RouteResult, type ForwardResult, type RedirectResult, type DirectResult, type Random, type RouteOptions } from './router.js';
export { matchRoute, matchHeader, matchString, parseQuery, pathOnly, type RouteRequest, type HeaderValue } from './match.js';
export { selectVirtualHost, stripPort } from './vhost.js';
export { applyHeaderMutations, substitute, type HeaderMap } from './headers.js';
export { isRetriable, backoffMs, type AttemptOutcome } from './retry.js';
export { faultFor, decideFault, hits, FAULT_FILTER_NAME, type FaultDecision } from './fault.js';
export { mirrorRequest, mirrorsToSend, mirrorVia, shadowHost, type MirrorDeps } from './mirror.js';
