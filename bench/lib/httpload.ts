/**
 * Steady traffic through a sidecar's outbound HTTP proxy while something else happens (a control
 * plane killed, a replica going away): `workers` keep-alive loops, each sending the next request
 * when the last one answered. Every non-200 and every socket error is a failure, kept with what
 * it said. Used by the resilience benchmark and by the restart/failover tests.
 */
import http from 'node:http';

export interface LoadResult {
  ok: number;
  failed: number;
  /** The first few failures: status and body, or the socket error. */
  failures: string[];
}

export class HttpLoad {
  private readonly agent: http.Agent;
  private running = true;
  private readonly loops: Promise<void>[] = [];
  readonly result: LoadResult = { ok: 0, failed: 0, failures: [] };

  /** `proxy` is the sidecar's outbound listener (`ip:15001`); `url` the absolute URL to ask it. */
  constructor(
    private readonly proxy: string,
    private readonly url: string,
    workers = 4,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: workers });
    for (let i = 0; i < workers; i++) this.loops.push(this.loop());
  }

  private fail(what: string): void {
    this.result.failed++;
    if (this.result.failures.length < 10) this.result.failures.push(what);
  }

  private once(): Promise<void> {
    const [host, port] = [this.proxy.slice(0, this.proxy.lastIndexOf(':')), Number(this.proxy.slice(this.proxy.lastIndexOf(':') + 1))];
    const u = new URL(this.url);
    return new Promise((resolve) => {
      const req = http.request({ host, port, path: this.url, agent: this.agent, headers: { host: u.host }, timeout: 10_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => {
          if (res.statusCode === 200) this.result.ok++;
          else this.fail(`${res.statusCode} ${body.slice(0, 200)}`);
          resolve();
        });
        res.on('error', (e) => {
          this.fail(`response: ${e.message}`);
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => {
        this.fail(`request: ${e.message}`);
        resolve();
      });
      req.end();
    });
  }

  private async loop(): Promise<void> {
    while (this.running) await this.once();
  }

  /** Stops after the requests in flight; returns the totals. */
  async stop(): Promise<LoadResult> {
    this.running = false;
    await Promise.all(this.loops);
    this.agent.destroy();
    return this.result;
  }
}

