/**
 * Real dqlite-wasm node processes with mutual TLS on loopback, certificates made by the real
 * `dqlite-wasm cert` command, status read over HTTPS with a client certificate.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { clientTlsOptions, resolveTlsSettings, type TlsSettings } from '../../runtimes/node/tls.ts';
import { freePort, waitFor, type NodeStatusView } from '../helpers/cluster.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const run = promisify(execFile);

/** `dqlite-wasm cert …` as a user runs it. */
export async function certCommand(...args: string[]): Promise<void> {
  await run(process.execPath, ['--import', './scripts/ts-loader.mjs', 'bin/cli.ts', 'cert', ...args], { cwd: ROOT, timeout: 30_000 });
}

export interface TlsFiles {
  cert: string;
  key: string;
  ca?: string;
}

/** A node's certificate files, and the Deno binary when it runs on Deno instead of Node. */
export interface NodeSpec extends TlsFiles {
  deno?: string;
  /** More `start` flags, e.g. `--tls-client-cert websocket-optional`. */
  args?: string[];
}

export function tlsSettingsOf(files: TlsFiles): TlsSettings {
  return resolveTlsSettings({
    cert: readFileSync(files.cert, 'utf8'),
    key: readFileSync(files.key, 'utf8'),
    ...(files.ca && { ca: readFileSync(files.ca, 'utf8') }),
  });
}

export interface TlsNode {
  address: string;
  dir: string;
  files: NodeSpec;
  process: ChildProcess | undefined;
  output: string[];
}

export class TlsCluster {
  readonly nodes: TlsNode[] = [];
  readonly clusterKey = 'tls-test-key-' + Math.random().toString(36).slice(2);

  private constructor(
    private readonly root: string,
    /** Credentials the test uses to read node status. */
    private readonly observer: TlsSettings,
  ) {}

  static async start(root: string, nodeFiles: NodeSpec[], observer: TlsFiles): Promise<TlsCluster> {
    const cluster = new TlsCluster(root, tlsSettingsOf(observer));
    for (const [i, files] of nodeFiles.entries()) {
      cluster.nodes.push({ address: `127.0.0.1:${await freePort()}`, dir: join(root, `node${i + 1}`), files, process: undefined, output: [] });
    }
    try {
      cluster.spawn(0);
      await waitFor('node 1 to lead', 30_000, async () => ((await cluster.status(0)).state === 'leader' ? true : undefined));
      for (let i = 1; i < cluster.nodes.length; i++) cluster.spawn(i, [cluster.nodes[0]!.address]);
      await cluster.waitForMembers(nodeFiles.length);
    } catch (error) {
      cluster.stop();
      throw new Error(`${(error as Error).message}\n--- node output ---\n${cluster.dumpOutput()}`);
    }
    return cluster;
  }

  get addresses(): string[] {
    return this.nodes.map((n) => n.address);
  }

  /** Starts node `index`; a node added with `addNode` joins through `join`. */
  spawn(index: number, join: string[] = []): void {
    const node = this.nodes[index]!;
    const entry = node.files.deno ? ['run', '-A', '--no-lock', 'runtimes/deno/main.ts'] : ['--import', './scripts/ts-loader.mjs', 'bin/cli.ts'];
    const args = [...entry, 'start', '--address', node.address, '--dir', node.dir];
    args.push('--cluster-key', this.clusterKey, '--tls-cert', node.files.cert, '--tls-key', node.files.key);
    if (node.files.ca) args.push('--tls-ca', node.files.ca);
    if (join.length > 0) args.push('--join', join.join(','));
    args.push(...(node.files.args ?? []));
    const child = spawn(node.files.deno ?? process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const record = (chunk: Buffer): void => {
      node.output.push(chunk.toString());
      if (node.output.length > 2000) node.output.splice(0, 1000);
    };
    child.stdout!.on('data', record);
    child.stderr!.on('data', record);
    node.process = child;
  }

  /** A node that is not (yet) a member, started with `files`. */
  async addNode(files: TlsFiles): Promise<number> {
    this.nodes.push({ address: `127.0.0.1:${await freePort()}`, dir: join(this.root, `node${this.nodes.length + 1}`), files, process: undefined, output: [] });
    const index = this.nodes.length - 1;
    this.spawn(index, this.addresses.slice(0, index));
    return index;
  }

  async waitForMembers(count: number): Promise<void> {
    await waitFor(`${count} members, ${Math.min(count, 3)} voters`, 40_000, async () => {
      const status = await this.status(0);
      const voters = status.members.filter((m) => m.role === 'voter').length;
      return status.members.length === count && voters === Math.min(count, 3) && status.leaderId !== 0 ? true : undefined;
    });
  }

  /** The node's JSON status over HTTPS, with the observer's client certificate. */
  status(index: number): Promise<NodeStatusView> {
    const [host, port] = this.nodes[index]!.address.split(':') as [string, string];
    return new Promise((resolve, reject) => {
      const request = httpsRequest(
        { host, port: Number(port), path: '/status', agent: false, timeout: 3000, ...clientTlsOptions(this.observer, host) },
        (response) => {
          let body = '';
          response.on('data', (chunk: Buffer) => (body += chunk.toString()));
          response.on('end', () => {
            if (response.statusCode !== 200) reject(new Error(`node ${index + 1} answered ${response.statusCode}: ${body}`));
            else resolve(JSON.parse(body) as NodeStatusView);
          });
        },
      );
      request.on('timeout', () => request.destroy(new Error('status request timed out')));
      request.on('error', reject);
      request.end();
    });
  }

  output(index: number): string {
    return this.nodes[index]!.output.join('');
  }

  dumpOutput(): string {
    return this.nodes.map((n, i) => `== node ${i + 1} (${n.address})\n${n.output.join('').slice(-4000)}`).join('\n');
  }

  async kill(index: number): Promise<void> {
    const child = this.nodes[index]!.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  stop(): void {
    for (const node of this.nodes) if (node.process && node.process.exitCode === null) node.process.kill('SIGKILL');
  }

  async destroy(): Promise<void> {
    for (let i = 0; i < this.nodes.length; i++) await this.kill(i);
  }
}
