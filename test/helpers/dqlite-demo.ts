/**
 * Starts and stops a real dqlite cluster made of Debian's `dqlite-demo` processes on loopback,
 * for interop tests and benchmarks. Every process started here is killed by `stop()` and, as a
 * last resort, when the Node process exits.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';

export interface DqliteDemoNode {
  /** Address of the dqlite protocol ("127.0.0.1:port"), what clients dial. */
  readonly address: string;
  /** Address of the demo's HTTP API. */
  readonly apiAddress: string;
  process: ChildProcess | undefined;
}

export interface DqliteDemoCluster {
  readonly nodes: DqliteDemoNode[];
  /** The dqlite addresses of all nodes. */
  readonly addresses: string[];
  readonly dataDir: string;
  /** SIGKILL node `index` (no handover) and wait for it to exit. */
  kill(index: number): Promise<void>;
  /** Start node `index` again with its data directory. */
  restart(index: number): Promise<void>;
  /** The current leader's address according to the real `dqlite` shell, or '' when none. */
  leader(): Promise<string>;
  /** Wait until some node reports `voters` voters in the cluster. */
  waitForVoters(voters: number, timeoutMs?: number): Promise<void>;
  /** Kill every process and remove the data directory. */
  stop(): Promise<void>;
}

export interface DqliteDemoOptions {
  size?: number;
  /** Time allowed for the cluster to form. Default 30 s. */
  readyTimeoutMs?: number;
  /** Pass --verbose and forward the nodes' logs to stderr. */
  verbose?: boolean;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

/** Ports come from outside the kernel's ephemeral range, reserved (see ports.ts). */
export { freePort };

/** Runs the real `dqlite` shell once; resolves with stdout (rejects on a non-zero exit). */
export function dqliteShell(servers: readonly string[], database: string, command: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('dqlite', ['-s', servers.join(','), database, command], { timeout: timeoutMs }, (error, stdout, stderr) => {
      if (error) reject(new Error(`dqlite ${command}: ${error.message} ${stderr}`));
      else resolve(stdout);
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function startDqliteDemoCluster(options: DqliteDemoOptions = {}): Promise<DqliteDemoCluster> {
  installExitHook();
  const size = options.size ?? 3;
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const dataDir = mkdtempSync(join(tmpdir(), 'dqlite-demo-'));
  const nodes: DqliteDemoNode[] = [];
  for (let i = 0; i < size; i++) {
    nodes.push({ address: `127.0.0.1:${await freePort()}`, apiAddress: `127.0.0.1:${await freePort()}`, process: undefined });
  }
  const addresses = nodes.map((node) => node.address);

  const startNode = (index: number): void => {
    const node = nodes[index]!;
    const args = ['--api', node.apiAddress, '--db', node.address, '--dir', dataDir];
    if (index > 0) args.push('--join', addresses.filter((_, i) => i !== index).join(','));
    if (options.verbose) args.push('--verbose');
    const child = spawn('dqlite-demo', args, { stdio: ['ignore', options.verbose ? 'inherit' : 'ignore', options.verbose ? 'inherit' : 'ignore'] });
    live.add(child);
    child.once('exit', () => live.delete(child));
    node.process = child;
  };

  const leader = async (): Promise<string> => {
    for (const address of addresses) {
      try {
        const out = (await dqliteShell([address], 'demo', '.leader', 3_000)).trim();
        if (out !== '') return out;
      } catch {
        // The node is down or has no leader; ask the next one.
      }
    }
    return '';
  };

  const waitForVoters = async (voters: number, timeoutMs = readyTimeoutMs): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      for (const address of addresses) {
        try {
          last = await dqliteShell([address], 'demo', '.cluster', 3_000);
          if (last.split('\n').filter((line) => line.endsWith('|voter')).length >= voters) return;
        } catch (error) {
          last = (error as Error).message;
        }
      }
      await sleep(200);
    }
    throw new Error(`dqlite-demo cluster did not reach ${voters} voters in ${timeoutMs} ms; last answer: ${last}`);
  };

  const kill = async (index: number): Promise<void> => {
    const child = nodes[index]!.process;
    nodes[index]!.process = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  };

  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((_, i) => kill(i)));
    rmSync(dataDir, { recursive: true, force: true });
  };

  try {
    startNode(0);
    await waitForVoters(1);
    for (let i = 1; i < size; i++) startNode(i);
    await waitForVoters(size);
  } catch (error) {
    await stop();
    throw error;
  }

  return {
    nodes,
    addresses,
    dataDir,
    kill,
    restart: async (index) => startNode(index),
    leader,
    waitForVoters,
    stop,
  };
}
