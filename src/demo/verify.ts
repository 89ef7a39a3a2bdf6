/** Seed 000's verification: `for i in $(seq 1 10); do curl helloworld:5000/hello; done` from a sleep pod. */
import { request } from 'node:http';
import { execIn } from '../proxy/capture/netns.js';

export interface Answer {
  status: number;
  body: string;
}

/** One request through a sidecar's outbound HTTP proxy (absolute-form, as `curl -x` sends it). */
export function viaProxy(proxyHost: string, proxyPort: number, url: string, headers: Record<string, string> = {}, timeoutMs = 5000): Promise<Answer> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const req = request(
      // A new connection per request, like a curl loop: the sidecar balances each one.
      { host: proxyHost, port: proxyPort, method: 'GET', path: url, headers: { host: u.host, ...headers }, agent: false, timeout: timeoutMs },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body.trim() }));
        res.on('error', (e) => resolve({ status: 0, body: `error: ${e.message}` }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (e) => resolve({ status: 0, body: `error: ${e.message}` }));
    req.end();
  });
}

/** The versions seen in `Hello version: vN, instance: …` answers. */
export function versionsOf(answers: readonly Answer[]): Map<string, number> {
  const seen = new Map<string, number>();
  for (const a of answers) {
    const m = /^Hello version: (\S+), instance: /.exec(a.body);
    if (a.status === 200 && m) seen.set(m[1]!, (seen.get(m[1]!) ?? 0) + 1);
  }
  return seen;
}

export async function helloLoop(proxyHost: string, proxyPort: number, n = 10, url = 'http://helloworld:5000/hello'): Promise<Answer[]> {
  const out: Answer[] = [];
  for (let i = 0; i < n; i++) out.push(await viaProxy(proxyHost, proxyPort, url));
  return out;
}

/** Proxy settings a shell may carry: a pod has none, and the point is that the app needs none. */
const PROXY_ENV = /^(https?|all|no|ftp)_proxy$/i;

/**
 * One plain `curl -s URL` inside network namespace `ns`, as an app in a pod runs it: no proxy
 * flags or variables; the pod's sidecar captures the connection. `status` is the HTTP status curl
 * saw, or 0 when curl got no answer (the body then says why).
 */
export async function curlIn(ns: string, url: string, timeoutMs = 5000): Promise<Answer> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !PROXY_ENV.test(k)));
  const r = await execIn(ns, env, timeoutMs)('curl', ['-s', '-w', '\n%{http_code}', url]);
  const cut = r.stdout.lastIndexOf('\n');
  const status = Number(r.stdout.slice(cut + 1));
  if (r.code === 0 && status > 0) return { status, body: r.stdout.slice(0, Math.max(0, cut)).trim() };
  return { status: 0, body: `curl failed (exit ${r.code})${r.stderr.trim() ? `: ${r.stderr.trim()}` : ''}` };
}
