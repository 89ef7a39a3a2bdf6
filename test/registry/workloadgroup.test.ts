import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WorkloadGroupSpec } from '../../src/config/kinds/networking.js';
import type { Resource } from '../../src/config/types.js';
import { ipOfPeer, resolveWorkloadGroup, type RegistrationClaim } from '../../src/registry/workloadgroup.js';

function group(name: string, sa: string, labels: Record<string, string>, opts: { ns?: string; addresses?: string; template?: Partial<WorkloadGroupSpec['template']> } = {}): Resource<WorkloadGroupSpec> {
  return {
    apiVersion: 'networking.istio.io/v1',
    kind: 'WorkloadGroup',
    metadata: { name, namespace: opts.ns ?? 'default', ...(opts.addresses ? { annotations: { 'isle.dev/workload-addresses': opts.addresses } } : {}) },
    spec: { metadata: { labels }, template: { serviceAccount: sa, ...(opts.template ?? {}) } },
    source: { file: 'groups.yaml', line: 1 },
  } as unknown as Resource<WorkloadGroupSpec>;
}

const GROUPS = [
  group('helloworld-v1', 'helloworld', { app: 'helloworld', version: 'v1' }, { template: { locality: 'r1/z1', network: 'n1', ports: { http: 8080 } } }),
  group('helloworld-v2', 'helloworld', { app: 'helloworld', version: 'v2' }),
  group('sleep', 'sleep', { app: 'sleep' }, { addresses: '127.1.0.0/16, 10.0.0.7' }),
  group('other-ns', 'sleep', { app: 'sleep' }, { ns: 'other' }),
];

const claim = (c: Partial<RegistrationClaim>): RegistrationClaim => ({ namespace: 'default', serviceAccount: 'sleep', address: '127.0.0.1', connectionAddress: '127.0.0.1:40000', cluster: 'cluster-1', ...c });

describe('resolveWorkloadGroup', () => {
  const table: { name: string; claim: RegistrationClaim; ok?: Record<string, unknown>; refused?: RegExp }[] = [
    { name: 'the only group of the identity, address = xDS source', claim: claim({}), ok: { name: 'sleep-127-0-0-1', labels: { app: 'sleep' } } },
    { name: 'hijack: sleep certificate names the helloworld group', claim: claim({ group: 'helloworld-v1' }), refused: /helloworld-v1 is for service account helloworld, the proxy's certificate is for sleep/ },
    { name: 'a group of another namespace does not count', claim: claim({ namespace: 'nowhere' }), refused: /no WorkloadGroup in namespace nowhere/ },
    { name: 'unknown group', claim: claim({ group: 'nope' }), refused: /no WorkloadGroup default\/nope/ },
    { name: 'two groups for one identity: the proxy must name one', claim: claim({ serviceAccount: 'helloworld' }), refused: /several WorkloadGroups .*helloworld-v1, helloworld-v2/ },
    {
      name: 'everything but address and name from the group',
      claim: claim({ serviceAccount: 'helloworld', group: 'helloworld-v1', address: '127.0.0.1' }),
      ok: { labels: { app: 'helloworld', version: 'v1' }, locality: 'r1/z1', network: 'n1', ports: { http: 8080 }, serviceAccount: 'helloworld', cluster: 'cluster-1' },
    },
    { name: 'an address that is not the connection source and not listed is refused', claim: claim({ serviceAccount: 'helloworld', group: 'helloworld-v2', address: '127.1.0.10' }), refused: /address 127\.1\.0\.10 is neither the source .*127\.0\.0\.1/ },
    { name: 'an address in the group annotation (CIDR)', claim: claim({ address: '127.1.9.9' }), ok: { address: '127.1.9.9' } },
    { name: 'an address in the group annotation (single IP)', claim: claim({ address: '10.0.0.7' }), ok: { address: '10.0.0.7' } },
    { name: 'outside the annotation', claim: claim({ address: '10.0.0.8' }), refused: /neither the source/ },
    { name: 'plaintext loopback port trusts the claimed address', claim: claim({ address: '10.9.9.9', connectionAddress: undefined }), ok: { address: '10.9.9.9' } },
    { name: 'IPv4-mapped connection source', claim: claim({ address: '127.0.0.5', connectionAddress: 'ipv4:[::ffff:127.0.0.5]:1234' }), ok: { address: '127.0.0.5' } },
  ];
  for (const t of table) {
    it(t.name, () => {
      const r = resolveWorkloadGroup(t.claim, GROUPS);
      if (t.refused) {
        assert.equal(r.ok, false, JSON.stringify(r));
        assert.match((r as { reason: string }).reason, t.refused);
      } else {
        assert.equal(r.ok, true, JSON.stringify(r));
        const meta = (r as unknown as { meta: Record<string, unknown> }).meta;
        for (const [k, v] of Object.entries(t.ok!)) assert.deepEqual(meta[k], v, k);
      }
    });
  }

  it('ipOfPeer understands grpc-js peer strings', () => {
    assert.equal(ipOfPeer('127.0.0.1:5000'), '127.0.0.1');
    assert.equal(ipOfPeer('[::1]:5000'), '::1');
    assert.equal(ipOfPeer('ipv4:10.1.2.3:99'), '10.1.2.3');
    assert.equal(ipOfPeer('unknown'), undefined);
  });
});
