export { route, pickWeighted, type RouteResult, type ForwardResult, type RedirectResult, type DirectResult, type Random, type RouteOptions } from './router.js';
export { matchRoute, matchHeader, matchString, parseQuery, pathOnly, type RouteRequest, type HeaderValue } from './match.js';
export { selectVirtualHost, stripPort } from './vhost.js';
export { applyHeaderMutations, substitute, type HeaderMap } from './headers.js';
export { isRetriable, backoffMs, type AttemptOutcome } from './retry.js';
