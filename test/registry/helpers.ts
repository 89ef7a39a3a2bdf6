import type { Resource } from '../../src/config/types.js';
import { ManualTimers } from '../../src/mesh/timers.js';

const src = { file: 'test.yaml', line: 1 };

export function svc(name: string, spec: Record<string, unknown>, namespace = 'default', annotations?: Record<string, string>): Resource {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace, ...(annotations ? { annotations } : {}) }, spec, source: src };
}

export function we(name: string, spec: Record<string, unknown>, namespace = 'default'): Resource {
  return { apiVersion: 'networking.istio.io/v1', kind: 'WorkloadEntry', metadata: { name, namespace }, spec, source: src };
}

export function se(name: string, spec: Record<string, unknown>, namespace = 'default'): Resource {
  return { apiVersion: 'networking.istio.io/v1', kind: 'ServiceEntry', metadata: { name, namespace }, spec, source: src };
}

export const helloworld = (ports: unknown[] = [{ name: 'http', port: 5000 }]) => svc('helloworld', { selector: { app: 'helloworld' }, ports });

/** Timers driven by `advance(ms)`, so grace periods run in no real time. */
export { ManualTimers as FakeTimers };
