/** `x-request-id` values: random UUIDs from one pooled source for the process (ADR 0143). */
import { IdSource } from '../tracing/context.js';

const IDS = new IdSource();

export function requestId(): string {
  return IDS.uuid();
}
