/**
 * A cluster of real node processes, each behind its own fault proxy: node i listens on a private
 * port and advertises its proxy's port, so peers and clients reach it only through the proxy.
 * Status comes from the private port (the observer is never partitioned). Node output goes to
 * one log file per node, kept across restarts, for the violation report.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor, type NodeStatusView } from '../helpers/cluster.ts';
import { reservePort, type ReservedPort } from '../helpers/ports.ts';
import { FaultNetwork } from './proxy.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface FaultNode {
  index: number;
  /** What the node listens on (for the observer only). */
  privateAddress: string;
  privatePort: ReservedPort;
  /** What peers and clients use: the proxy. */
  address: string;
  proxyPort: number;
  dir: string;
  logPath: string;
  id: number;
  process: ChildProcess | undefined;
  paused: boolean;
  log: WriteStream;
}

export interface FaultClusterOptions {
  nodes: number;
  /** Where node data and logs go. */
  root: string;
  /** Extra `start` flags for every node (tuning, unsafe test switches). */
  extraArgs?: string[];
}

/** Restarts of one node on a new port after EADDRINUSE before it counts as a failure. */
const PORT_RETRIES_MAX = 3;

/** Clusters not destroyed yet, so an interrupted command can kill their processes. */
const live = new Set<FaultCluster>();

/** SIGKILLs every node of every live cluster (paused ones too): for Ctrl-C in the command. */
export function killAllNodesNow(): void {
  for (const cluster of live) {
    for (const node of cluster.nodes) {
      if (node.process && node.process.exitCode === null) node.process.kill('SIGKILL');
    }
  }
}

export class FaultCluster {
  readonly nodes: FaultNode[] = [];
  readonly network = new FaultNetwork();
  readonly clusterKey = 'fault-key-' + Math.random().toString(36).slice(2);

  private constructor(private readonly options: FaultClusterOptions) {}

  static async start(options: FaultClusterOptions): Promise<FaultCluster> {
    const cluster = new FaultCluster(options);
    live.add(cluster);
    mkdirSync(options.root, { recursive: true });
    for (let i = 0; i < options.nodes; i++) {
      // The proxies hold their ports for the cluster's life; the nodes' ports are reserved.
      const privatePort = reservePort();
      const privateAddress = `127.0.0.1:${privatePort.port}`;
      const proxyPort = await cluster.network.addProxy(0, privateAddress);
      const logPath = join(options.root, `node${i + 1}.log`);
      cluster.nodes.push({
        index: i,
        privateAddress,
        privatePort,
        address: `127.0.0.1:${proxyPort}`,
        proxyPort,
        dir: join(options.root, `node${i + 1}`),
        logPath,
        id: 0,
        process: undefined,
        paused: false,
        log: createWriteStream(logPath, { flags: 'a' }),
      });
    }
    try {
      cluster.spawn(0);
      await cluster.waitForLeader(30_000);
      for (let i = 1; i < options.nodes; i++) cluster.spawn(i);
      await waitFor(`${options.nodes} members`, 60_000, async () => {
        const status = await cluster.status(0);
        const voters = status.members.filter((m) => m.role === 'voter').length;
        return voters === Math.min(options.nodes, 3) && status.members.length === options.nodes ? true : undefined;
      });
      for (const node of cluster.nodes) {
        node.id = await waitFor(`node ${node.index + 1} to know the leader`, 30_000, async () => {
          const status = await cluster.status(node.index);
          return status.leaderId !== 0 ? status.id : undefined;
        });
      }
    } catch (error) {
      await cluster.destroy();
      throw error;
    }
    return cluster;
  }

  get addresses(): string[] {
    return this.nodes.map((n) => n.address);
  }

  indexOfId(id: number): number {
    return this.nodes.findIndex((n) => n.id === id);
  }

  /** Starts node `index`; `attempt` counts restarts on a new port after EADDRINUSE. */
  spawn(index: number, attempt = 0): void {
    const node = this.nodes[index]!;
    const args = [
      '--import',
      './scripts/ts-loader.mjs',
      'bin/cli.ts',
      'start',
      '--address',
      node.privateAddress,
      '--advertise',
      node.address,
      '--dir',
      node.dir,
      '--cluster-key',
      this.clusterKey,
      ...(this.options.extraArgs ?? []),
    ];
    if (index > 0) args.push('--join', this.nodes.filter((n) => n.index !== index).map((n) => n.address).join(','));
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    node.log.write(`==== ${new Date().toISOString()} spawned pid ${child.pid}\n`);
    let portTaken = false;
    const record = (chunk: Buffer): void => {
      node.log.write(chunk);
      if (chunk.includes('EADDRINUSE')) portTaken = true;
    };
    child.stdout!.on('data', record);
    child.stderr!.on('data', record);
    child.once('exit', (code, signal) => {
      node.log.write(`==== ${new Date().toISOString()} exited code ${code} signal ${signal}\n`);
      // Someone outside the reservations bound the node's port: move the node, not the blame.
      if (portTaken && code !== 0 && signal === null && node.process === child && live.has(this)) this.respawnOnNewPort(node, attempt);
    });
    node.process = child;
    node.paused = false;
  }

  private respawnOnNewPort(node: FaultNode, attempt: number): void {
    if (attempt >= PORT_RETRIES_MAX) return;
    const taken = node.privateAddress;
    node.privatePort.release();
    node.privatePort = reservePort();
    node.privateAddress = `127.0.0.1:${node.privatePort.port}`;
    this.network.retarget(node.proxyPort, node.privateAddress);
    node.log.write(`==== ${new Date().toISOString()} ${taken} was in use: restarting on ${node.privateAddress}\n`);
    this.spawn(node.index, attempt + 1);
  }

  isRunning(index: number): boolean {
    const child = this.nodes[index]!.process;
    return !!child && child.exitCode === null && child.signalCode === null;
  }

  /** kill -9; resolves once the process is gone. */
  async kill(index: number): Promise<void> {
    const node = this.nodes[index]!;
    const child = node.process;
    if (!child || !this.isRunning(index)) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    node.process = undefined;
    node.paused = false;
  }

  pause(index: number): void {
    const node = this.nodes[index]!;
    if (!this.isRunning(index) || node.paused) return;
    node.process!.kill('SIGSTOP');
    node.paused = true;
    node.log.write(`==== ${new Date().toISOString()} SIGSTOP\n`);
  }

  resume(index: number): void {
    const node = this.nodes[index]!;
    if (!this.isRunning(index) || !node.paused) return;
    node.process!.kill('SIGCONT');
    node.paused = false;
    node.log.write(`==== ${new Date().toISOString()} SIGCONT\n`);
  }

  /** Notes a nemesis action in every node's log, so the logs line up with the schedule. */
  mark(line: string): void {
    for (const node of this.nodes) node.log.write(`==== ${new Date().toISOString()} nemesis: ${line}\n`);
  }

  async status(index: number): Promise<NodeStatusView> {
    const response = await fetch(`http://${this.nodes[index]!.privateAddress}/status`, { signal: AbortSignal.timeout(2000) });
    if (!response.ok) throw new Error(`node ${index + 1} answered ${response.status}`);
    return (await response.json()) as NodeStatusView;
  }

  /** The index of a live node that says it leads, or undefined. */
  async leader(): Promise<number | undefined> {
    for (const node of this.nodes) {
      if (!this.isRunning(node.index) || node.paused) continue;
      try {
        if ((await this.status(node.index)).state === 'leader') return node.index;
      } catch {
        // down or busy
      }
    }
    return undefined;
  }

  waitForLeader(timeoutMs: number): Promise<number> {
    return waitFor('a leader', timeoutMs, () => this.leader());
  }

  /** Heals the network, resumes paused nodes, restarts dead ones, and waits for one leader all agree on. */
  async healAll(timeoutMs: number): Promise<void> {
    this.network.heal();
    for (const node of this.nodes) {
      if (node.paused) this.resume(node.index);
      if (!this.isRunning(node.index)) this.spawn(node.index);
    }
    await waitFor('every node to follow one leader', timeoutMs, async () => {
      const statuses = await Promise.all(this.nodes.map((n) => this.status(n.index)));
      const leaderId = statuses[0]!.leaderId;
      return leaderId !== 0 && statuses.every((s) => s.leaderId === leaderId) ? true : undefined;
    });
  }

  async destroy(): Promise<void> {
    live.delete(this);
    for (const node of this.nodes) {
      if (node.paused) this.resume(node.index);
      await this.kill(node.index);
    }
    await this.network.close();
    for (const node of this.nodes) node.privatePort.release();
    await Promise.all(this.nodes.map((n) => new Promise<void>((resolve) => n.log.end(() => resolve()))));
  }
}
