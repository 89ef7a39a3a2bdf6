/**
 * PeerAuthentication → inbound listeners (src/generate/peerauthn.ts, lds.ts): scope
 * precedence (workload > namespace > mesh), UNSET inheritance, port-level overrides, and the
 * filter chains of STRICT / PERMISSIVE / DISABLE.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MtlsMode, PeerAuthenticationSpec } from '../../src/config/kinds/security.js';
import type { Resource } from '../../src/config/types.js';
import { decodeListener } from '../../src/proxy/decode/listener.js';
import { generateListeners } from '../../src/generate/index.js';
import { inboundMtlsMode, workloadMtls } from '../../src/generate/peerauthn.js';
import { LISTENER_TYPE } from '../../src/mesh/typeurls.js';
import { helloworldSidecar, push } from './fixtures.js';
import { assertGolden } from './golden.js';

const src = { file: 'pa.yaml', line: 1 };

function pa(name: string, namespace: string, mode: MtlsMode | undefined, extra: Partial<PeerAuthenticationSpec> = {}): Resource<PeerAuthenticationSpec> {
  return {
    apiVersion: 'security.istio.io/v1',
    kind: 'PeerAuthentication',
    metadata: { name, namespace },
    spec: { ...(mode ? { mtls: { mode } } : {}), ...extra },
    source: src,
  };
}

const meshStrict = pa('default', 'istio-system', 'STRICT');
const nsDisable = pa('default', 'sample', 'DISABLE');
const workload = (mode: MtlsMode | undefined, portLevelMtls?: Record<string, { mode?: MtlsMode }>) =>
  pa('helloworld', 'sample', mode, { selector: { matchLabels: { app: 'helloworld' } }, ...(portLevelMtls ? { portLevelMtls } : {}) });

/** Inbound listeners of helloworld-v1's sidecar (5000 HTTP, 9090 gRPC) under `pas`. */
function inbound(pas: Resource<PeerAuthenticationSpec>[], inboundMtlsMode?: 'STRICT' | 'PERMISSIVE' | 'DISABLE') {
  const p = push({ peerAuthentications: pas, ...(inboundMtlsMode ? { inboundMtlsMode } : {}) });
  const proxy = helloworldSidecar(p);
  return { p, proxy, listeners: generateListeners(p, proxy).filter((l) => l['traffic_direction'] === 'INBOUND') };
}

type Chain = { name?: string; filter_chain_match?: { transport_protocol?: string }; transport_socket?: unknown };
const chains = (l: Record<string, unknown>) => ((l['filter_chains'] ?? []) as Chain[]).map((c) => `${c.name}:${c.filter_chain_match?.transport_protocol ?? '*'}${c.transport_socket ? ':tls' : ''}`);
const shape = (ls: Record<string, unknown>[]) => Object.fromEntries(ls.map((l) => [l['name'] as string, chains(l)]));

const STRICT = ['mtls:tls:tls'];
const PERMISSIVE = ['mtls:tls:tls', 'plaintext:raw_buffer'];
const DISABLE = ['plaintext:*'];

describe('PeerAuthentication → inbound listeners', () => {
  it("nothing set: PERMISSIVE (Istio's default); the push option is only the fallback", () => {
    assert.deepEqual(shape(inbound([]).listeners), { '127.1.0.10_5000': PERMISSIVE, '127.1.0.10_9090': PERMISSIVE });
    assert.deepEqual(shape(inbound([], 'STRICT').listeners), { '127.1.0.10_5000': STRICT, '127.1.0.10_9090': STRICT });
  });

  it('mesh-wide STRICT (root namespace, no selector) (golden)', () => {
    const { listeners } = inbound([meshStrict]);
    assert.deepEqual(shape(listeners), { '127.1.0.10_5000': STRICT, '127.1.0.10_9090': STRICT });
    assertGolden('lds-peerauthn-mesh-strict', LISTENER_TYPE, listeners);
  });

  it('namespace DISABLE over mesh STRICT: plaintext only, no TLS inspector (golden)', () => {
    const { listeners } = inbound([meshStrict, nsDisable]);
    assert.deepEqual(shape(listeners), { '127.1.0.10_5000': DISABLE, '127.1.0.10_9090': DISABLE });
    assert.equal(listeners[0]!['listener_filters'], undefined);
    assertGolden('lds-peerauthn-namespace-disable', LISTENER_TYPE, listeners);
    // Another namespace's policy does not apply; a selector in the root namespace is ignored (Istio).
    assert.deepEqual(shape(inbound([meshStrict, pa('default', 'other', 'DISABLE'), pa('sel', 'istio-system', 'DISABLE', { selector: { matchLabels: { app: 'helloworld' } } })]).listeners)['127.1.0.10_5000'], STRICT);
  });

  it('workload PERMISSIVE beats namespace DISABLE and mesh STRICT (golden)', () => {
    const { listeners } = inbound([meshStrict, nsDisable, workload('PERMISSIVE')]);
    assert.deepEqual(shape(listeners), { '127.1.0.10_5000': PERMISSIVE, '127.1.0.10_9090': PERMISSIVE });
    assertGolden('lds-peerauthn-workload-permissive', LISTENER_TYPE, listeners);
    // A selector that does not match the workload does nothing.
    const other = pa('other', 'sample', 'PERMISSIVE', { selector: { matchLabels: { app: 'reviews' } } });
    assert.deepEqual(shape(inbound([meshStrict, nsDisable, other]).listeners)['127.1.0.10_5000'], DISABLE);
  });

  it('UNSET inherits: workload UNSET under namespace UNSET under mesh STRICT → STRICT', () => {
    const { p, proxy } = inbound([meshStrict, pa('default', 'sample', 'UNSET'), workload('UNSET')]);
    const m = workloadMtls(p, proxy);
    assert.equal(m.mode, 'STRICT');
    assert.deepEqual(m.from, ['istio-system/default', 'sample/default', 'sample/helloworld']);
  });

  it('port level: 9090 DISABLE, 5000 UNSET (inherits the workload STRICT) (golden)', () => {
    const { p, proxy, listeners } = inbound([nsDisable, workload('STRICT', { '9090': { mode: 'DISABLE' }, '5000': { mode: 'UNSET' } })]);
    assert.deepEqual(shape(listeners), { '127.1.0.10_5000': STRICT, '127.1.0.10_9090': DISABLE });
    assert.equal(inboundMtlsMode(p, proxy, 9090), 'DISABLE');
    assertGolden('lds-peerauthn-port-level', LISTENER_TYPE, listeners);
    // Port-level PERMISSIVE under namespace STRICT.
    const mixed = inbound([pa('default', 'sample', 'STRICT'), workload(undefined, { '5000': { mode: 'PERMISSIVE' } })]);
    assert.deepEqual(shape(mixed.listeners), { '127.1.0.10_5000': PERMISSIVE, '127.1.0.10_9090': STRICT });
  });

  it("of two namespace-wide policies the first by name applies (Istio: the oldest)", () => {
    const { listeners } = inbound([pa('zz', 'sample', 'DISABLE'), pa('aa', 'sample', 'STRICT')]);
    assert.deepEqual(shape(listeners)['127.1.0.10_5000'], STRICT);
  });

  it("every mode's listener decodes with Isle's proxy", () => {
    for (const pas of [[meshStrict], [nsDisable], [workload('PERMISSIVE')]]) {
      for (const l of inbound(pas).listeners) {
        const r = decodeListener(l);
        assert.ok(!('errors' in r), JSON.stringify(r));
      }
    }
  });
});
