/**
 * Network namespaces for the capture tests and the TCP data-plane bench: a hub namespace holding one bridge, and one namespace
 * per workload joined to it by a veth pair (`eth0` inside, 10.70.N.M/16), with a default route
 * through eth0 so service addresses route out and the nat OUTPUT rules see them. Nothing is
 * created in the host's namespace. Names are prefixed `islecap`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Why the capture tests cannot run here, or undefined (shared with `isle demo --netns`). */
export { captureUnsupported, execIn } from '../../src/proxy/capture/netns.js';

export const HUB = 'islecap-hub';

async function ip(...args: string[]): Promise<void> {
  await run('ip', args);
}

export class Topology {
  private readonly made: string[] = [];

  /** `tag` keeps the names of concurrently running test files apart (short: names are ≤ 15 chars). */
  constructor(private readonly tag: string) {}

  get hub(): string {
    return `${HUB}${this.tag}`;
  }

  async create(): Promise<void> {
    await this.destroy();
    await ip('netns', 'add', this.hub);
    this.made.push(this.hub);
    await ip('-n', this.hub, 'link', 'add', 'br0', 'type', 'bridge');
    await ip('-n', this.hub, 'link', 'set', 'br0', 'up');
  }

  /** A namespace `islecap<tag>-<name>` with address `addr` on eth0 (/16). */
  async add(name: string, addr: string): Promise<string> {
    const ns = `islecap${this.tag}-${name}`;
    const host = `v${this.tag}${name}`.slice(0, 15);
    await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    await ip('netns', 'add', ns);
    this.made.push(ns);
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
    await ip('-n', this.hub, 'link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    await ip('-n', this.hub, 'link', 'set', host, 'master', 'br0', 'up');
    await ip('-n', ns, 'addr', 'add', `${addr}/16`, 'dev', 'eth0');
    await ip('-n', ns, 'link', 'set', 'eth0', 'up');
    await ip('-n', ns, 'route', 'add', 'default', 'dev', 'eth0');
    return ns;
  }

  async destroy(): Promise<void> {
    for (const ns of this.made.splice(0).reverse()) await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    await run('ip', ['netns', 'del', this.hub]).catch(() => undefined);
  }
}

/** A long-running process in `ns` whose stdout lines can be awaited. */
export class NsProcess {
  readonly child: ChildProcess;
  out = '';
  err = '';

  constructor(ns: string, cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
    this.child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    this.child.stdout!.on('data', (c: Buffer) => (this.out += c.toString()));
    this.child.stderr!.on('data', (c: Buffer) => (this.err += c.toString()));
  }

  waitFor(re: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${re} in stdout:\n${this.out}\nstderr:\n${this.err.slice(-3000)}`));
      }, timeoutMs);
      const check = (): void => {
        const m = re.exec(this.out);
        if (m) {
          cleanup();
          resolve(m);
        }
      };
      const onExit = (): void => {
        cleanup();
        reject(new Error(`exited (${this.child.exitCode}) before ${re}; stdout:\n${this.out}\nstderr:\n${this.err.slice(-3000)}`));
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        this.child.stdout!.off('data', check);
        this.child.off('exit', onExit);
      };
      this.child.stdout!.on('data', check);
      this.child.once('exit', onExit);
      check();
    });
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    return new Promise((resolve) => {
      const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
      this.child.once('exit', (code) => {
        clearTimeout(t);
        resolve(code);
      });
      this.child.kill(signal);
    });
  }
}
