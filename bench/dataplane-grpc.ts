/**
 * The gRPC rows of `npm run bench -- dataplane` (issue 14): unary calls/s of @grpc/grpc-js
 * clients (closed loop, several channels, several calls in flight each) against a grpc-js app,
 * direct and through the sidecar pair — the client sidecar's outbound listener (h2c), HTTP/2 over
 * mTLS between the sidecars (the port is named `grpc`, ADR 0080), h2c to the app. The app and the
 * load generator are processes of their own, on the same cores as everything else.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpuSeconds, fmt, rssBytes, startIsle, startProcess, table, type Child } from './lib/common.js';

const here = dirname(fileURLToPath(import.meta.url));

export const GRPC_AUTHORITY = 'echo:50051';

export interface GrpcRow {
  path: string;
  rps?: number;
  p50?: number;
  p99?: number;
  errors?: number;
  skipped?: string;
  proxies: Record<string, { cpu: number; rssMb: number }>;
}

/** The echo Service (a `grpc-` port) and its WorkloadGroup, written before the control plane starts. */
export function writeGrpcConfig(cfg: string, workloadAddresses: string): void {
  writeFileSync(
    join(cfg, 'echo.yaml'),
    `apiVersion: v1\nkind: Service\nmetadata:\n  name: echo\n  namespace: default\nspec:\n  selector:\n    app: echo\n  ports:\n  - name: grpc-echo\n    port: 50051\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata:\n  name: echo\n  namespace: default\n  annotations:\n    isle.dev/workload-addresses: "${workloadAddresses}"\nspec:\n  metadata:\n    labels:\n      app: echo\n  template:\n    serviceAccount: echo\n`,
  );
}

async function load(target: string, authority: string, seconds: number): Promise<{ rps: number; errors: number; lastError: string; p50: number; p99: number }> {
  // The generator prints one JSON line when done.
  const p = await startProcess(process.execPath, [join(here, 'lib', 'grpcload.js'), target, authority, String(seconds), '4', '8'], /^\{/m, (seconds + 60) * 1000);
  await p.stop();
  return JSON.parse(p.out().trim().split('\n').pop()!);
}

/**
 * Starts the gRPC app and its sidecar, measures direct and through the pair, stops what it
 * started. `common` are the `isle proxy` flags shared with the HTTP rows; `client` is the running
 * client sidecar and `outbound` its outbound listener.
 */
export async function runGrpcRows(o: { seconds: number; ip: string; common: string[]; token: (sa: string) => string; client: Child; outbound: string; log: (s: string) => void }): Promise<GrpcRow[]> {
  const procs: Child[] = [];
  const rows: GrpcRow[] = [];
  try {
    const app = await startProcess(process.execPath, [join(here, 'lib', 'grpcapp.js'), '127.0.0.1'], /listening (\S+)/);
    procs.push(app);
    const appAddr = /listening (\S+)/.exec(app.out())![1]!;
    const server = await startIsle(['proxy', ...o.common, '--ip', o.ip, '--service-account', 'echo', '--labels', 'app=echo', '--token', o.token('echo'), '--app-port', `50051=${appAddr.split(':')[1]}`], /listener \S+ inbound /);
    procs.push(server);
    const paths = [
      { path: 'gRPC direct', target: appAddr, authority: '-', pids: { app: app.proc.pid! } },
      { path: 'gRPC isle sidecar pair, mTLS h2', target: o.outbound, authority: GRPC_AUTHORITY, pids: { app: app.proc.pid!, 'client sidecar': o.client.proc.pid!, 'server sidecar': server.proc.pid! } },
    ];
    // The pair is usable once the echo endpoint reached the client sidecar: a short probe run until calls succeed.
    for (let i = 0; i < 100; i++) {
      const probe = await load(o.outbound, GRPC_AUTHORITY, 0.3).catch(() => undefined);
      if (probe && probe.errors === 0 && probe.rps > 0) break;
    }
    for (const p of paths) {
      o.log(`  ${p.path}, ${o.seconds} s`);
      const before = Object.fromEntries(Object.entries(p.pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
      const t0 = performance.now();
      try {
        const r = await load(p.target, p.authority, o.seconds);
        const secs = (performance.now() - t0) / 1000;
        const proxies = Object.fromEntries(Object.entries(p.pids).map(([k, pid]) => [k, { cpu: (cpuSeconds(pid) - before[k]!) / secs, rssMb: rssBytes(pid) / 2 ** 20 }]));
        rows.push({ path: p.path, rps: r.rps, p50: r.p50, p99: r.p99, errors: r.errors, proxies });
        if (r.errors) o.log(`    ${r.errors} errors, last: ${r.lastError}`);
      } catch (e) {
        rows.push({ path: p.path, skipped: e instanceof Error ? e.message.split('\n')[0] : String(e), proxies: {} });
      }
    }
  } finally {
    for (const p of procs.reverse()) await p.stop();
  }
  return rows;
}

export function grpcMarkdown(rows: GrpcRow[], seconds: number): string {
  const direct = rows.find((r) => r.path === 'gRPC direct')?.rps;
  const body = rows.map((r) => [
    r.path,
    r.rps !== undefined ? fmt(r.rps) + (direct && r.path !== 'gRPC direct' ? ` (${fmt((r.rps / direct) * 100)} % of direct)` : '') : (r.skipped ?? '—'),
    r.p50 !== undefined ? fmt(r.p50, 2) : '—',
    r.p99 !== undefined ? fmt(r.p99, 2) : '—',
    r.errors !== undefined ? fmt(r.errors) : '—',
    Object.entries(r.proxies)
      .filter(([k]) => k !== 'app')
      .map(([k, u]) => `${k} ${fmt(u.cpu * 100)} % CPU, ${fmt(u.rssMb)} MB`)
      .join('; ') || '—',
  ]);
  return [
    `gRPC unary, 64 B requests / 1 KB replies, @grpc/grpc-js: 4 channels × 8 calls in flight (closed loop), ${seconds} s per row; h2c into the client sidecar, HTTP/2 over mTLS between the sidecars, h2c to the app.`,
    '',
    table(['path', 'calls/s', 'p50 ms', 'p99 ms', 'errors', 'proxy CPU and RSS'], body),
  ].join('\n');
}
