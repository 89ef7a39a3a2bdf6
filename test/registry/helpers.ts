import type { Resource } from '../../src/config/types.js';
import type { Timers } from '../../src/registry/autoregister.js';

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
export class FakeTimers implements Timers {
  now = 0;
  private seq = 0;
  private readonly tasks = new Map<number, { at: number; fn: () => void }>();

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.seq;
    this.tasks.set(id, { at: this.now + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.tasks.delete(handle as number);
  }

  get pending(): number {
    return this.tasks.size;
  }

  advance(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      const due = [...this.tasks].filter(([, t]) => t.at <= until).sort(([a, x], [b, y]) => x.at - y.at || a - b)[0];
      if (!due) break;
      this.tasks.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
    }
    this.now = until;
  }
}
