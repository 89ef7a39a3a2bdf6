import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PUSH_ORDER, ROUTE_TYPE, type XdsServer } from '../../src/xds/index.js';
import { DeltaClient, FULL_SUBSCRIPTION, SotwClient, fullSnapshot, newChannel, startServer, waitUntil } from './helpers.js';

function converged(xds: XdsServer, count: number, version: string): boolean {
  const st = xds.status();
  return (
    st.length === count &&
    st.every((p) => p.types.length === PUSH_ORDER.length && p.types.every((t) => t.versionAcked === version))
  );
}

test('50 concurrent proxies (25 SotW, 25 delta) converge on v1, then on v2', async (t) => {
  const h = await startServer();
  t.after(() => h.close());
  const N = 50;
  // One snapshot object for everyone, as the push pipeline will do for identical proxies.
  const v1 = fullSnapshot('v1');
  for (let i = 0; i < N; i++) h.cache.setSnapshot(`n${i}`, v1);
  const channels = Array.from({ length: 5 }, () => newChannel(h.address));
  const clients: (SotwClient | DeltaClient)[] = [];
  for (let i = 0; i < N; i++) {
    const ch = channels[i % channels.length]!;
    const c = i % 2 === 0 ? new SotwClient(ch, { id: `n${i}` }, { autoAck: true }) : new DeltaClient(ch, { id: `n${i}` }, { autoAck: true });
    for (const [typeUrl, names] of FULL_SUBSCRIPTION) {
      if (c instanceof SotwClient) c.request(typeUrl, names);
      else c.subscribe(typeUrl, names);
    }
    clients.push(c);
  }
  await waitUntil(() => converged(h.xds, N, 'v1'), 'all 50 on v1', 15_000);

  const v2 = fullSnapshot('v2');
  for (let i = 0; i < N; i++) h.cache.setSnapshot(`n${i}`, v2);
  await waitUntil(() => converged(h.xds, N, 'v2'), 'all 50 on v2', 15_000);

  const expectedRoute = v2.get(ROUTE_TYPE)!.resources.get('r1')!.version;
  for (const c of clients) {
    if (c instanceof SotwClient) {
      assert.equal(c.accepted.get(ROUTE_TYPE), 'v2');
      assert.deepEqual((c.state.get(ROUTE_TYPE)?.get('r1')?.['virtual_hosts'] as { name: string }[])[0]!.name, 'vhv2');
    } else {
      assert.equal(c.systemVersion.get(ROUTE_TYPE), 'v2');
      assert.equal(c.versions.get(ROUTE_TYPE)?.get('r1'), expectedRoute);
    }
    c.close();
  }
  await waitUntil(() => h.xds.streamCount() === 0 && h.cache.watchCount() === 0, 'all gone');
  for (const ch of channels) ch.close();
});
