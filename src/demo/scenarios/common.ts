/**
 * What the scenarios share: their `Scenario` shape, live config edits (written into a running
 * cluster's config directory, as a user would), plaintext and sidecar clients, polling, and
 * stopping or restarting a helloworld app behind its sidecar.
 */
import { rename, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import type { Running } from '../running.js';
import type { DemoCluster, DemoTopology, DemoWorkload } from '../topology.js';
import { viaProxy, versionsOf, type Answer } from '../verify.js';

export interface Scenario {
  name: string;
  /** Which seed it demonstrates, e.g. `seed 002`. */
  seed: string;
  topology: DemoTopology;
  /** Files written into a cluster's config directory at start, over (and replacing) the base ones; '' = leave out. */
  config: (topo: DemoTopology, c: DemoCluster) => Record<string, string>;
  /** Prints what it measured; true when the scenario behaved as its seed says. */
  verify: (r: Running, say: (s: string) => void) => Promise<boolean>;
}

export const OUTBOUND_PORT = 15001;

/** Writes (or replaces) one file in a running cluster's config directory, atomically. */
export async function writeConfig(r: Running, cluster: string, file: string, text: string): Promise<void> {
  const path = join(r.dir, cluster, file);
  const tmp = join(r.dir, `.${cluster}-${file}.tmp`);
  await writeFile(tmp, text);
  await rename(tmp, path);
}

export async function removeConfig(r: Running, cluster: string, file: string): Promise<void> {
  await rm(join(r.dir, cluster, file), { force: true });
}

/** A request through a sleep workload's sidecar (its outbound HTTP proxy, as `curl -x`). */
export function viaSidecar(sleep: DemoWorkload, url: string, headers: Record<string, string> = {}): Promise<Answer> {
  return viaProxy(sleep.ip, OUTBOUND_PORT, url, headers);
}

export async function requests(sleep: DemoWorkload, n: number, url: string, headers: Record<string, string> = {}): Promise<Answer[]> {
  const out: Answer[] = [];
  for (let i = 0; i < n; i++) out.push(await viaSidecar(sleep, url, headers));
  return out;
}

/** Plain HTTP straight to `host:port` (a client without a sidecar): `curl http://host:port/hello`. */
export function plaintext(host: string, port: number, path = '/hello', timeoutMs = 3000): Promise<Answer> {
  return new Promise((resolve) => {
    const req = request({ host, port, path, method: 'GET', agent: false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
      res.on('error', (e) => resolve({ status: 0, body: `error: ${e.message}` }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => resolve({ status: 0, body: `error: ${(e as NodeJS.ErrnoException).code ?? e.message}` }));
    req.end();
  });
}

/** Polls `pred` until it holds or `ms` pass; true when it held. */
export async function until(pred: () => Promise<boolean>, ms: number, everyMs = 250): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await pred()) return true;
    if (Date.now() >= end) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** `v1: 700 (70.0 %), v2: …` plus failures, for the printout. */
export function describe(answers: readonly Answer[]): string {
  const seen = versionsOf(answers);
  const failed = answers.length - [...seen.values()].reduce((a, b) => a + b, 0);
  const parts = [...seen.keys()].sort().map((v) => `${v}: ${seen.get(v)} (${((100 * seen.get(v)!) / answers.length).toFixed(1)} %)`);
  if (failed > 0) parts.push(`failed: ${failed} (${[...new Set(answers.filter((a) => !/^Hello version/.test(a.body) || a.status !== 200).map((a) => (a.status ? `HTTP ${a.status}` : a.body)))].slice(0, 3).join('; ')})`);
  return parts.join(', ');
}

/** Whether each wanted share (percent) is met within ± `tolerance` percentage points. */
export function withinShares(answers: readonly Answer[], want: Record<string, number>, tolerance: number): boolean {
  const seen = versionsOf(answers);
  return Object.entries(want).every(([v, pct]) => Math.abs((100 * (seen.get(v) ?? 0)) / answers.length - pct) <= tolerance);
}

export function mark(ok: boolean): string {
  return ok ? '✓' : '✗';
}

export function workload(r: Running, cluster: string, name: string): DemoWorkload {
  const w = r.topo.workloads.find((x) => x.cluster === cluster && x.name === name);
  if (!w) throw new Error(`no workload ${cluster}/${name}`);
  return w;
}

/** Stops a helloworld's app process; its sidecar stays and answers 503 (the app refuses connections). */
export async function stopApp(r: Running, w: DemoWorkload): Promise<void> {
  const m = r.sup.processes.find((p) => p.spec.name === `${w.cluster}-${w.name}-app` && !p.exited);
  if (!m) return;
  (r.expectedExits ??= new Set()).add(m);
  await r.sup.stopOne(m);
}

/** Starts a helloworld's app again on the port its sidecar forwards to. */
export async function startApp(r: Running, w: DemoWorkload): Promise<void> {
  const addr = r.appAddress.get(`${w.cluster}/${w.name}`);
  if (!addr) throw new Error(`no app address for ${w.cluster}/${w.name}`);
  await r.sup.start({ name: `${w.cluster}-${w.name}-app`, args: ['demo-app', 'helloworld', '--app-version', w.version!, '--listen', addr], ready: /^listening (\S+) instance (\S+)/ });
}

/** The usual config files of a scenario cluster (the base ones of topology.ts replaced). */
export function serviceYaml(namespace: string, port = 5000): string {
  return `apiVersion: v1
kind: Service
metadata:
  name: helloworld
  namespace: ${namespace}
  labels:
    app: helloworld
    service: helloworld
spec:
  ports:
  - port: ${port}
    name: http
  selector:
    app: helloworld
`;
}

export function serviceAccountYaml(name: string, namespace: string): string {
  return `apiVersion: v1
kind: ServiceAccount
metadata:
  name: ${name}
  namespace: ${namespace}
`;
}
