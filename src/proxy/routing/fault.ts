/**
 * Envoy's fault filter (`envoy.filters.http.fault`) with per-route config: a fixed delay and/or
 * a fixed HTTP abort, each for a fraction of requests. It runs before the router, as in Envoy's
 * filter chain: delay first, then abort (an aborted request is also delayed when both hit).
 * It is pure apart from the timer, so the decision can be tested with a seeded random.
 */
import type { FaultModel, FractionModel, HttpConnectionManagerModel } from '../model.js';
import type { RouteResult } from './router.js';

export const FAULT_FILTER_NAME = 'envoy.filters.http.fault';

/** Envoy draws a number in [0, denominator) and hits when it is below the numerator. */
export function hits(f: FractionModel, random: () => number): boolean {
  if (f.numerator <= 0) return false;
  if (f.numerator >= f.denominator) return true;
  return Math.floor(random() * f.denominator) < f.numerator;
}

export interface FaultDecision {
  /** 0 = no delay. */
  readonly delayMs: number;
  /** undefined = no abort. */
  readonly abortStatus: number | undefined;
  /** A grpc_status abort's code (then abortStatus is 200). */
  readonly abortGrpcStatus?: number | undefined;
}

/** Which faults apply to this request: delay and abort are drawn independently, as in Envoy. */
export function decideFault(fault: FaultModel, random: () => number): FaultDecision {
  const delayMs = fault.delay && hits(fault.delay.fraction, random) ? fault.delay.fixedDelayMs : 0;
  const abort = fault.abort && hits(fault.abort.fraction, random) ? fault.abort : undefined;
  if (abort?.grpcStatus !== undefined) return { delayMs, abortStatus: abort.httpStatus, abortGrpcStatus: abort.grpcStatus };
  return { delayMs, abortStatus: abort?.httpStatus };
}

/**
 * The fault to inject for a routing decision, or undefined. The route's config is honoured only
 * when the HCM has the fault filter, as Envoy ignores per-filter config of absent filters.
 */
export function faultFor(hcm: HttpConnectionManagerModel, decision: RouteResult, random: () => number): FaultDecision | undefined {
  if (decision.kind !== 'route' && decision.kind !== 'redirect' && decision.kind !== 'direct') return undefined;
  const f = decision.route.fault;
  if (!f || !hcm.httpFilters.includes(FAULT_FILTER_NAME)) return undefined;
  const d = decideFault(f, random);
  return d.delayMs > 0 || d.abortStatus !== undefined ? d : undefined;
}
