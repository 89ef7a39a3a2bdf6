/**
 * Request mirroring (Envoy's request_mirror_policies): a fire-and-forget copy of the request to
 * another cluster. The response is read and dropped, failures are ignored, and nothing waits for
 * it, so the mirror can never slow down or fail the real request. As Envoy does, the copy's Host
 * gets `-shadow` appended (`reviews:9080` → `reviews-shadow:9080`) so the target can tell.
 *
 * Only a request whose body is in memory can be copied (the caller buffers small bodies when a
 * route mirrors); a streamed body would have to be teed, which Isle does not do: such requests
 * are not mirrored.
 */
import type { ClusterModel, ConfigGraph, EndpointModel, EndpointsModel, MirrorPolicyModel } from '../model.js';
import { hits } from './fault.js';

/** Envoy's shadow host: `-shadow` goes before the port. */
export function shadowHost(host: string): string {
  const m = /^(\[[^\]]*\]|[^:]*)(:\d+)?$/.exec(host);
  if (!m) return `${host}-shadow`;
  return `${m[1]}-shadow${m[2] ?? ''}`;
}

export interface MirrorSend {
  (
    req: { method: string; path: string; headers: Record<string, string | string[]>; body: Buffer | null; perTryTimeoutMs: number },
    cluster: ClusterModel,
    endpoint: EndpointModel,
  ): Promise<{ kind: string; response?: { resume(): unknown } }>;
}

export interface MirrorDeps {
  graph: ConfigGraph;
  pick: (cluster: ClusterModel, endpoints: EndpointsModel | undefined) => EndpointModel | undefined;
  send: MirrorSend;
  random: () => number;
  log?: (msg: string) => void;
}

/** Which policies fire for this request (each draws its own fraction). */
export function mirrorsToSend(policies: readonly MirrorPolicyModel[] | undefined, random: () => number): MirrorPolicyModel[] {
  return (policies ?? []).filter((p) => hits(p.fraction, random));
}

/**
 * Sends the copies and returns at once. `headers` is copied before it is changed; `body` is the
 * buffered request body (null when there is none). Returns how many copies were started.
 */
export function mirrorRequest(
  deps: MirrorDeps,
  policies: readonly MirrorPolicyModel[] | undefined,
  req: { method: string; path: string; headers: Record<string, string | string[]>; body: Buffer | null },
): number {
  let started = 0;
  for (const p of mirrorsToSend(policies, deps.random)) {
    const cluster = deps.graph.clusters.get(p.cluster);
    if (!cluster) continue;
    const ep = deps.pick(cluster, deps.graph.endpoints.get(p.cluster));
    if (!ep) continue;
    const headers = { ...req.headers };
    const host = typeof headers['host'] === 'string' ? headers['host'] : '';
    if (!p.keepHost && host) headers['host'] = shadowHost(host);
    delete headers['x-envoy-attempt-count'];
    started++;
    // A mirror that hangs must not hold a connection forever.
    deps
      .send({ method: req.method, path: req.path, headers, body: req.body, perTryTimeoutMs: 30_000 }, cluster, ep)
      .then((o) => o.response?.resume())
      .catch((e: unknown) => deps.log?.(`isle proxy: mirror to ${p.cluster} failed: ${String(e)}`));
  }
  return started;
}

/** The listener's side: mirror through the proxy's own LB and pools (one call from the router filter). */
export function mirrorVia(
  deps: { pick: (cluster: ClusterModel, endpoints: EndpointsModel | undefined, ctx: { previous: ReadonlySet<string>; avoidPrevious: boolean; attempt: number }) => EndpointModel | undefined; pools: { send: MirrorSend }; random?: () => number; log?: (msg: string) => void },
  graph: ConfigGraph,
  policies: readonly MirrorPolicyModel[] | undefined,
  req: { method: string; path: string; headers: Record<string, string | string[]>; body: Buffer | null },
): number {
  if (!policies?.length) return 0;
  return mirrorRequest(
    {
      graph,
      pick: (c, e) => deps.pick(c, e, { previous: new Set(), avoidPrevious: false, attempt: 1 }),
      send: deps.pools.send.bind(deps.pools),
      random: deps.random ?? Math.random,
      log: deps.log,
    },
    policies,
    req,
  );
}
