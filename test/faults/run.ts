/**
 * One fault-injection run: start a cluster behind fault proxies, create the workloads' schemas,
 * run concurrent clients while the nemesis injects faults, heal, read the final state, check.
 * A failed run keeps its folder (history, fault schedule, node logs, data) and names the seed.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Database, dialTcp } from '../../runtimes/node/client.ts';
import { Prng } from '../sim/prng.ts';
import { FaultCluster } from './fault-cluster.ts';
import { History } from './history.ts';
import { checkReplicas } from './replica-check.ts';
import { FAULT_KINDS, Nemesis, restoreVoters, type FaultEvent, type FaultKind } from './nemesis.ts';
import { createWorkloads, RegisterWorkload, type CheckReport, type Workload, type WorkloadName } from './workloads.ts';

export interface RunOptions {
  seed: number;
  nodes: number;
  seconds: number;
  /** Folder for run folders (a failed run's stays there). */
  outRoot: string;
  faults?: readonly FaultKind[];
  /** Extra `start` flags for the nodes (e.g. `--unsafe-for-testing ack-before-commit`). */
  extraArgs?: readonly string[];
  clientsPerWorkload?: number;
  /**
   * Register clients that read on the node they are connected to (readFrom 'any', each starting
   * at a different node), alternately at linearizable (held to linearizability) and session (held
   * to read-your-writes and monotonic reads). Default 2.
   */
  followerReadClients?: number;
  /** Register clients reading on the leader at the lease level, held to linearizability. Default 1. */
  leaseReadClients?: number;
  faultMsMin?: number;
  faultMsMax?: number;
  quietMsMin?: number;
  quietMsMax?: number;
  /** Keep the run folder even when the run passes. */
  keep?: boolean;
  log?: (line: string) => void;
}

export interface RunResult {
  seed: number;
  nodes: number;
  seconds: number;
  ops: number;
  ok: number;
  fail: number;
  info: number;
  faults: FaultEvent[];
  verdicts: Record<WorkloadName, CheckReport>;
  /** Byte-identical database files on every node after healing. */
  replicas?: CheckReport;
  passed: boolean;
  /**
   * Node log lines that show a broken invariant whatever the clients saw (a committed entry that
   * could not be applied leaves a replica diverged). Any such line fails the run.
   */
  logAlerts: string[];
  /** Set when the run could not complete (the cluster never healed, a final read failed, ...). */
  error?: string;
  /** The kept run folder (always for a failed run). */
  folder?: string;
}

/** Client options: bounded waits so a paused or isolated node costs seconds, not minutes. */
type ClientOptions = ConstructorParameters<typeof Database>[0];

function clientOptions(servers: readonly string[], database: string, extra: Partial<ClientOptions> = {}): ClientOptions {
  return { servers, database, dial: dialTcp, timeoutMs: 5000, requestTimeoutMs: 3000, dialTimeoutMs: 1000, ...extra };
}

/** `servers` starting at the `k`-th: a follower-read client's nearest node. */
function rotated(servers: readonly string[], k: number): string[] {
  const at = k % servers.length;
  return [...servers.slice(at), ...servers.slice(0, at)];
}

async function withRetries<T>(what: string, timeoutMs: number, attempt: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`${what} failed for ${timeoutMs} ms: ${(error as Error).message}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

export async function runFaults(options: RunOptions): Promise<RunResult> {
  const log = options.log ?? (() => undefined);
  mkdirSync(options.outRoot, { recursive: true });
  const folder = mkdtempSync(join(options.outRoot, `seed-${options.seed}-`));
  const rng = new Prng(options.seed);
  const nemesisRng = rng.fork();
  const history = new History();
  const workloads = createWorkloads(history);
  const result: RunResult = {
    seed: options.seed,
    nodes: options.nodes,
    seconds: options.seconds,
    ops: 0,
    ok: 0,
    fail: 0,
    info: 0,
    faults: [],
    verdicts: {} as Record<WorkloadName, CheckReport>,
    passed: false,
    logAlerts: [],
  };
  let cluster: FaultCluster | undefined;
  let nemesis: Nemesis | undefined;
  try {
    cluster = await FaultCluster.start({
      nodes: options.nodes,
      root: folder,
      extraArgs: ['--commit-timeout-ms', '3000', ...(options.extraArgs ?? [])],
    });
    log(`cluster of ${options.nodes} up in ${folder}`);
    for (const workload of workloads) {
      const db = new Database(clientOptions(cluster.addresses, workload.database));
      await withRetries(`creating the ${workload.name} schema`, 30_000, () => workload.setup(db));
      await db.close();
    }

    const clients: Promise<void>[] = [];
    let stopped = false;
    const clientCount = options.clientsPerWorkload ?? 2;
    let clientNumber = 0;
    for (const workload of workloads) {
      for (let c = 0; c < clientCount; c++) {
        clients.push(clientLoop(workload, clientNumber++, rng.fork(), cluster.addresses, () => stopped));
      }
      if (!(workload instanceof RegisterWorkload)) continue;
      for (let c = 0; c < (options.followerReadClients ?? 2); c++) {
        const servers = rotated(cluster.addresses, c + 1);
        const consistency = c % 2 === 0 ? 'linearizable' : 'session';
        if (consistency === 'session') workload.sessionClients.add(clientNumber);
        clients.push(clientLoop(workload, clientNumber++, rng.fork(), servers, () => stopped, { readFrom: 'any', consistency }));
      }
      for (let c = 0; c < (options.leaseReadClients ?? 1); c++) {
        clients.push(clientLoop(workload, clientNumber++, rng.fork(), cluster.addresses, () => stopped, { consistency: 'lease' }));
      }
    }
    nemesis = new Nemesis(cluster, nemesisRng, {
      kinds: options.faults ?? FAULT_KINDS,
      faultMsMin: options.faultMsMin ?? 1500,
      faultMsMax: options.faultMsMax ?? 5000,
      quietMsMin: options.quietMsMin ?? 500,
      quietMsMax: options.quietMsMax ?? 2500,
      nowMs: () => history.nowMs(),
      log: (line) => log(`  ${(history.nowMs() / 1000).toFixed(1)}s ${line}`),
    });
    const nemesisDone = nemesis.run();
    await new Promise((r) => setTimeout(r, options.seconds * 1000));
    nemesis.stop();
    await nemesisDone;
    stopped = true;
    await Promise.all(clients);

    await cluster.healAll(90_000);
    log(`healed: ${await withRetries('restoring voters', 30_000, () => restoreVoters(cluster!, Math.min(3, options.nodes)))}`);
    for (const workload of workloads) {
      const db = new Database(clientOptions(cluster.addresses, workload.database));
      await withRetries(`the final read of ${workload.name}`, 60_000, () => workload.readFinal(db));
      await db.close();
    }
    for (const workload of workloads) result.verdicts[workload.name] = workload.check();
    result.replicas = await checkReplicas(cluster, workloads.map((w) => w.database), 60_000);
    result.passed = Object.values(result.verdicts).every((v) => v.ok !== false) && result.replicas.ok === true;
  } catch (error) {
    result.error = (error as Error).message;
    result.passed = false;
  } finally {
    Object.assign(result, history.counts());
    result.faults = nemesis?.events ?? [];
    await cluster?.destroy();
  }
  if (cluster) result.logAlerts = scanLogs(cluster.nodes.map((n) => n.logPath));
  if (result.logAlerts.length > 0) result.passed = false;
  if (!result.passed || options.keep) {
    writeFileSync(join(folder, 'history.json'), JSON.stringify(history.toJSON(), null, 0).replaceAll('},{', '},\n{'));
    writeFileSync(join(folder, 'faults.json'), JSON.stringify(result.faults, null, 2));
    writeFileSync(join(folder, 'final.json'), JSON.stringify(Object.fromEntries(workloads.map((w) => [w.name, w.finalState()]))));
    writeFileSync(join(folder, 'verdicts.json'), JSON.stringify({ seed: result.seed, nodes: result.nodes, error: result.error, verdicts: result.verdicts, replicas: result.replicas, logAlerts: result.logAlerts }, null, 2));
    result.folder = folder;
  } else {
    rmSync(folder, { recursive: true, force: true });
  }
  return result;
}

async function clientLoop(
  workload: Workload,
  client: number,
  rng: Prng,
  servers: readonly string[],
  stopped: () => boolean,
  extra: Partial<ClientOptions> = {},
): Promise<void> {
  const db = new Database(clientOptions(servers, workload.database, extra));
  try {
    while (!stopped()) {
      await workload.operate(db, client, rng);
      // A little think time: keeps 6+ clients from starving the nodes on a small machine.
      await new Promise((r) => setTimeout(r, rng.int(10)));
    }
  } finally {
    await db.close();
  }
}

/** Log lines that mean a replica diverged or a node hit an internal error. */
const ALERT_PATTERN = /failed to apply entry|internal error|uncaught|unhandled/i;
const ALERTS_MAX = 10;

function scanLogs(paths: readonly string[]): string[] {
  const alerts: string[] = [];
  let total = 0;
  for (const path of paths) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      if (!ALERT_PATTERN.test(line)) continue;
      total++;
      if (alerts.length < ALERTS_MAX) alerts.push(line.slice(0, 300));
    }
  }
  if (total > alerts.length) alerts.push(`... ${total - alerts.length} more alert lines in the node logs`);
  return alerts;
}
