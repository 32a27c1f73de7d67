/**
 * Real dqlite-wasm node processes on loopback for tests and benchmarks: start, kill -9, restart,
 * and read each node's status over its HTTP port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './ports.ts';
import type { NodeMemory } from '../../src/server/memory-usage.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface NodeStatusView {
  id: number;
  address: string;
  state: string;
  leaderId: number;
  leaderAddress: string;
  term: number;
  commitIndex: number;
  appliedIndex: number;
  lastIndex: number;
  snapshotIndex: number;
  members: { id: number; address: string; role: string }[];
  databases: { name: string; walFrames: number; pending: number }[];
  checkpoints: number;
  snapshots: number;
  memory: NodeMemory;
}

export interface TestNode {
  index: number;
  address: string;
  dir: string;
  process: ChildProcess | undefined;
  output: string[];
}

export interface ClusterOptions {
  nodes?: number;
  extraArgs?: string[];
  /** Flags for the node processes' Node.js itself (e.g. --cpu-prof). */
  nodeFlags?: string[];
  /** Print node output as it comes (for debugging a test). */
  verbose?: boolean;
  /** What node runs (default the TypeScript sources through the loader); e.g. ['dist/bin/cli.js'] for the build. */
  entry?: string[];
  /** The program started (default this Node.js), e.g. a `dqlite-wasm` command with `entry: []` and no nodeFlags. */
  command?: string;
}

/** Ports come from outside the kernel's ephemeral range, reserved (see ports.ts). */
export { freePort };

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      lastError = error;
    }
    await sleep(100);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ''}`);
}

export class TestCluster {
  readonly nodes: TestNode[] = [];
  readonly root: string;
  readonly clusterKey = 'test-cluster-key-' + Math.random().toString(36).slice(2);

  private constructor(private readonly options: ClusterOptions) {
    this.root = mkdtempSync(join(tmpdir(), 'dqlite-wasm-cluster-'));
  }

  static async start(options: ClusterOptions = {}): Promise<TestCluster> {
    const cluster = new TestCluster(options);
    const count = options.nodes ?? 3;
    for (let i = 0; i < count; i++) {
      cluster.nodes.push({
        index: i,
        address: `127.0.0.1:${await freePort()}`,
        dir: join(cluster.root, `node${i + 1}`),
        process: undefined,
        output: [],
      });
    }
    try {
      cluster.spawn(0);
      await cluster.waitForLeader();
      for (let i = 1; i < count; i++) cluster.spawn(i);
      await waitFor(`${count} voters`, 30_000, async () => {
        const status = await cluster.status(0);
        const voters = status.members.filter((m) => m.role === 'voter').length;
        return voters === Math.min(count, 3) && status.members.length === count ? true : undefined;
      });
      for (let i = 0; i < count; i++) {
        await waitFor(`node ${i + 1} to know the leader`, 20_000, async () =>
          (await cluster.status(i)).leaderId !== 0 ? true : undefined,
        );
      }
    } catch (error) {
      cluster.stop();
      throw new Error(`${(error as Error).message}\n--- node output ---\n${cluster.dumpOutput()}`);
    }
    return cluster;
  }

  get addresses(): string[] {
    return this.nodes.map((n) => n.address);
  }

  spawn(index: number): void {
    const node = this.nodes[index]!;
    const args = [
      ...(this.options.nodeFlags ?? []),
      ...(this.options.entry ?? ['--import', './scripts/ts-loader.mjs', 'bin/cli.ts']),
      'start',
      '--address',
      node.address,
      '--dir',
      node.dir,
      '--cluster-key',
      this.clusterKey,
      ...(this.options.extraArgs ?? []),
    ];
    if (index > 0) args.push('--join', this.nodes[0]!.address + ',' + this.nodes.filter((n) => n.index !== index).map((n) => n.address).join(','));
    const child = spawn(this.options.command ?? process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const record = (chunk: Buffer): void => {
      const text = chunk.toString();
      node.output.push(text);
      if (node.output.length > 2000) node.output.splice(0, 1000);
      if (this.options.verbose) process.stderr.write(`[n${index + 1}] ${text}`);
    };
    child.stdout!.on('data', record);
    child.stderr!.on('data', record);
    node.process = child;
  }

  /** kill -9 (or another signal); resolves once the process is gone. */
  async kill(index: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.nodes[index]!.process;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
    this.nodes[index]!.process = undefined;
  }

  isRunning(index: number): boolean {
    const child = this.nodes[index]!.process;
    return !!child && child.exitCode === null && child.signalCode === null;
  }

  async restart(index: number): Promise<void> {
    await this.kill(index);
    this.spawn(index);
    await waitFor(`node ${index + 1} to come back`, 20_000, async () => ((await this.status(index)) ? true : undefined));
  }

  async status(index: number): Promise<NodeStatusView> {
    const response = await fetch(`http://${this.nodes[index]!.address}/status`, { signal: AbortSignal.timeout(2000) });
    if (!response.ok) throw new Error(`node ${index + 1} answered ${response.status}`);
    return (await response.json()) as NodeStatusView;
  }

  /** The index of the node that the live nodes agree leads. */
  async waitForLeader(timeoutMs = 20_000, exclude: number[] = []): Promise<number> {
    return waitFor('a leader', timeoutMs, async () => {
      for (const node of this.nodes) {
        if (exclude.includes(node.index) || !this.isRunning(node.index)) continue;
        try {
          const status = await this.status(node.index);
          if (status.state === 'leader') return node.index;
        } catch {
          // not up yet
        }
      }
      return undefined;
    });
  }

  dumpOutput(): string {
    return this.nodes.map((n) => `== node ${n.index + 1} (${n.address})\n${n.output.join('').slice(-4000)}`).join('\n');
  }

  stop(): void {
    for (const node of this.nodes) {
      if (node.process && node.process.exitCode === null) node.process.kill('SIGKILL');
    }
  }

  async destroy(): Promise<void> {
    for (let i = 0; i < this.nodes.length; i++) await this.kill(i);
    rmSync(this.root, { recursive: true, force: true });
  }
}
