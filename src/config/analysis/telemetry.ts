/**
 * Tracing config across resources (ADR 0085): a Telemetry naming a provider the MeshConfig does
 * not define reports nothing (an error); a provider whose service is not in the registry gives no
 * sidecar a cluster to export to (a warning: it may be a peer's); several Telemetries in one
 * namespace — only the first by name applies (a warning).
 */
import { SHORT_FORM_PROVIDER, type MeshConfigSpec } from '../kinds/mesh.js';
import type { TelemetrySpec } from '../kinds/telemetry.js';
import type { ConfigError } from '../types.js';
import { definedHosts, type Analyzer } from './context.js';

export const tracingProviders: Analyzer = {
  name: 'tracing-providers',
  run: (ctx) => {
    const out: ConfigError[] = [];
    const mesh = ctx.of<MeshConfigSpec>('MeshConfig')[0];
    const providers = new Map((mesh?.spec.extensionProviders ?? []).map((p) => [p.name, p] as const));
    const names = new Set(providers.keys());
    if (mesh?.spec.tracing) names.add(SHORT_FORM_PROVIDER);
    const hosts = new Set(definedHosts(ctx));
    mesh?.spec.extensionProviders?.forEach((p, i) => {
      const svc = p.opentelemetry?.service;
      if (!svc) return;
      const host = svc.includes('/') ? svc.slice(svc.indexOf('/') + 1) : svc;
      if (!hosts.has(host)) out.push(ctx.problem('warning', mesh, ['spec', 'extensionProviders', i, 'opentelemetry', 'service'], `${JSON.stringify(host)} is not a Service or ServiceEntry here: sidecars using provider ${JSON.stringify(p.name)} will not trace`));
    });
    const firstByNs = new Map<string, string>();
    for (const t of ctx.of<TelemetrySpec>('Telemetry')) {
      const ns = t.metadata.namespace ?? 'default';
      const first = firstByNs.get(ns);
      if (first === undefined || t.metadata.name < first) firstByNs.set(ns, t.metadata.name);
      t.spec.tracing?.forEach((e, i) => {
        e.providers?.forEach((p, j) => {
          if (!names.has(p.name)) out.push(ctx.problem('error', t, ['spec', 'tracing', i, 'providers', j, 'name'], `no extensionProvider named ${JSON.stringify(p.name)} in the MeshConfig: no spans would be reported`));
        });
      });
    }
    for (const t of ctx.of<TelemetrySpec>('Telemetry')) {
      const ns = t.metadata.namespace ?? 'default';
      if (firstByNs.get(ns) !== t.metadata.name) out.push(ctx.problem('warning', t, ['metadata', 'name'], `namespace ${ns} has several Telemetries: only ${firstByNs.get(ns)} (the first by name) applies`));
    }
    return out;
  },
};
