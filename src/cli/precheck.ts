/**
 * `isle x precheck`: what `istioctl x precheck` is for Istio — before a first install, find what
 * would make it fail: addresses already taken, cluster CAs that do not share one root (or one trust
 * domain, or that claim the same cluster), certificates that this machine's clock sees as not yet
 * valid or expired. Every finding is printed; exit 1 if any is a failure.
 */
import { createHash } from 'node:crypto';
import type { Command } from 'commander';
import { addressesToBind } from '../demo/demo.js';
import { SEED_000 } from '../demo/topology.js';
import { IsleError } from '../errors.js';
import { bindProblem } from '../mesh/bindprobe.js';
import { analyzeCaDir, CLOCK_SKEW_MS, parseCertsPem, type Cert } from '../pki/index.js';
import type { CliIO } from './io.js';

export type Level = 'ok' | 'warn' | 'fail';

export interface Finding {
  level: Level;
  check: 'address' | 'ca' | 'trust' | 'clock';
  message: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** A certificate this close to expiry is worth a warning: an intermediate is renewed by hand. */
const EXPIRY_WARNING_MS = 30 * DAY_MS;

/** Whether `addr` (host:port) can be bound here now. */
export async function probeAddress(addr: string): Promise<Finding> {
  const why = await bindProblem(addr);
  return why === undefined ? { level: 'ok', check: 'address', message: `${addr} is free` } : { level: 'fail', check: 'address', message: `${addr}: ${why}` };
}

function fingerprint(c: Cert): string {
  return createHash('sha256').update(c.der).digest('hex').slice(0, 16);
}

function iso(d: Date): string {
  return d.toISOString().replace('.000Z', 'Z');
}

/** Clock and validity of one certificate as this machine sees it. */
export function clockFindings(label: string, c: Cert, now: Date): Finding[] {
  const from = c.px.notBefore.getTime();
  const to = c.px.notAfter.getTime();
  const t = now.getTime();
  if (from > t + CLOCK_SKEW_MS) {
    return [{ level: 'fail', check: 'clock', message: `${label}: not valid until ${iso(c.px.notBefore)}, but this machine's clock says ${iso(now)}: the clock is behind (or the certificate was made on a machine ahead) by ${Math.round((from - t) / 60000)} min` }];
  }
  if (to <= t) return [{ level: 'fail', check: 'clock', message: `${label}: expired at ${iso(c.px.notAfter)} (now ${iso(now)})` }];
  if (to - t < EXPIRY_WARNING_MS) return [{ level: 'warn', check: 'clock', message: `${label}: expires in ${Math.floor((to - t) / DAY_MS)} days (${iso(c.px.notAfter)})` }];
  if (from > t) return [{ level: 'warn', check: 'clock', message: `${label}: valid from ${iso(c.px.notBefore)}, ${Math.round((from - t) / 1000)} s ahead of this machine's clock (within the ${CLOCK_SKEW_MS / 60000} min allowed skew)` }];
  return [{ level: 'ok', check: 'clock', message: `${label}: valid ${iso(c.px.notBefore)} … ${iso(c.px.notAfter)}` }];
}

/** Each CA directory on its own, then together: one root, one trust domain, distinct clusters. */
export async function caFindings(dirs: readonly string[], opts: { now: Date; trustDomain?: string }): Promise<Finding[]> {
  const out: Finding[] = [];
  const seen: { dir: string; root: string; rootSubject: string; trustDomain: string; cluster: string | undefined }[] = [];
  for (const dir of dirs) {
    const a = await analyzeCaDir(dir, { now: opts.now, ...(opts.trustDomain !== undefined ? { trustDomain: opts.trustDomain } : {}) });
    // Clock findings cover validity in detail; the directory's own checks cover the rest.
    for (const f of a.checks.filter((c) => c.level !== 'ok' && c.code !== 'ERR_CERT_EXPIRED')) out.push({ level: f.level === 'fail' ? 'fail' : 'warn', check: 'ca', message: f.text });
    const clock = Object.entries(a.certs).flatMap(([file, certs]) => certs.flatMap((c, i) => clockFindings(`${dir}/${file}${certs.length > 1 ? `[${i}]` : ''}`, c, opts.now)));
    const bad = clock.filter((f) => f.level !== 'ok');
    out.push(...bad);
    if (bad.length === 0 && clock.length > 0) {
      const soonest = Math.min(...Object.values(a.certs).flat().map((c) => c.px.notAfter.getTime()));
      out.push({ level: 'ok', check: 'clock', message: `${dir}: every certificate is valid now by this machine's clock (first expiry ${iso(new Date(soonest))})` });
    }
    if (!a.value) continue;
    out.push({ level: 'ok', check: 'ca', message: `${dir}: consistent CA for cluster ${a.value.cluster ?? '(unnamed)'}, trust domain ${a.value.trustDomain}` });
    const roots = parseCertsPem(a.value.rootBundlePem, `${dir}/root-cert.pem`);
    seen.push({ dir, root: roots.map(fingerprint).sort().join(','), rootSubject: roots.map((r) => `${r.node.subject.replace(/\n/g, ', ')}, sha256 ${fingerprint(r)}`).join(' + '), trustDomain: a.value.trustDomain, cluster: a.value.cluster });
  }
  if (seen.length > 1) {
    const first = seen[0]!;
    const roots = new Set(seen.map((s) => s.root));
    if (roots.size === 1) out.push({ level: 'ok', check: 'trust', message: `all ${seen.length} clusters share one root (${first.rootSubject})` });
    else for (const s of seen.slice(1)) if (s.root !== first.root) out.push({ level: 'fail', check: 'trust', message: `${s.dir} trusts a different root (${s.rootSubject}) than ${first.dir} (${first.rootSubject}): their workloads cannot authenticate each other` });
    const tds = new Set(seen.map((s) => s.trustDomain));
    if (tds.size > 1) out.push({ level: 'fail', check: 'trust', message: `trust domains differ: ${seen.map((s) => `${s.dir}: ${s.trustDomain}`).join(', ')}` });
    const byCluster = new Map<string, string[]>();
    for (const s of seen) if (s.cluster !== undefined) byCluster.set(s.cluster, [...(byCluster.get(s.cluster) ?? []), s.dir]);
    for (const [cluster, ds] of byCluster) if (ds.length > 1) out.push({ level: 'fail', check: 'trust', message: `cluster ${cluster} is claimed by ${ds.length} intermediates (${ds.join(', ')}): each cluster needs its own` });
  }
  return out;
}

const MARK: Record<Level, string> = { ok: '✔', warn: '!', fail: '✘' };

export function registerPrecheck(program: Command, io: CliIO): void {
  const x = program.commands.find((c) => c.name() === 'x') ?? program.command('x').description('experimental commands');
  x.command('precheck')
    .description('before installing: addresses free, cluster CAs consistent and sharing one root, clocks and certificate validity')
    .option('--ca <dir>', "a cluster's cacerts directory (repeatable: every cluster of the mesh)", (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--listen <host:port>', 'an address a control plane, gateway or sidecar will bind (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--demo', "the addresses `isle demo` binds (seed 000's topology)")
    .option('--trust-domain <domain>', "trust domain for CAs that name none (Istio's tools/certs)")
    .option('--json', 'print the findings as JSON')
    .action(async (o: { ca: string[]; listen: string[]; demo?: boolean; trustDomain?: string; json?: boolean }) => {
      const addrs = [...o.listen, ...(o.demo ? addressesToBind(SEED_000) : [])];
      if (o.ca.length === 0 && addrs.length === 0) throw new IsleError('ERR_USAGE', 'isle x precheck: nothing to check: give --ca DIR (per cluster), --listen HOST:PORT or --demo');
      const now = new Date();
      const findings = [
        ...(await Promise.all(addrs.map(probeAddress))),
        ...(await caFindings(o.ca, { now, ...(o.trustDomain !== undefined ? { trustDomain: o.trustDomain } : {}) })),
      ];
      const fails = findings.filter((f) => f.level === 'fail').length;
      const warns = findings.filter((f) => f.level === 'warn').length;
      if (o.json) io.out(`${JSON.stringify({ failures: fails, warnings: warns, findings }, null, 2)}\n`);
      else {
        for (const f of findings) io.out(`${MARK[f.level]} ${f.check}: ${f.message}\n`);
        io.out(fails === 0 ? `no problems found${warns > 0 ? ` (${warns} warning${warns === 1 ? '' : 's'})` : ''}\n` : `${fails} problem${fails === 1 ? '' : 's'}, ${warns} warning${warns === 1 ? '' : 's'}\n`);
      }
      process.exitCode = fails > 0 ? 1 : 0;
    });
}
