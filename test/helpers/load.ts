/** Load helpers for tests (not a test file): the benchmark's HttpLoad and a zero-failure check. */
import assert from 'node:assert/strict';
import { HttpLoad, type LoadResult } from '../../bench/lib/httpload.js';

export { HttpLoad, type LoadResult };

/** After an event (a kill, a move): 50 more answered requests, then stop and require that none failed. */
export async function expectNoFailures(load: HttpLoad, waitFor: (what: string, f: () => boolean) => Promise<unknown>): Promise<LoadResult> {
  const okNow = load.result.ok;
  await waitFor('traffic after the event', () => load.result.ok >= okNow + 50);
  const r = await load.stop();
  assert.equal(r.failed, 0, `failed requests: ${r.failed} of ${r.ok + r.failed}: ${r.failures.join(' | ')}`);
  assert.ok(r.ok > 100, `requests served: ${r.ok}`);
  return r;
}
