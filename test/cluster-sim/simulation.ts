/**
 * One seed of the whole-cluster simulation: a cluster of real nodes is built (bootstrap, then
 * joins through the admin protocol), simulated clients run the three workloads while the
 * nemesis injects faults for `steps` steps of 100 simulated ms (replicas compared as it goes),
 * then every fault heals, the final state is read, the replicas must converge to identical
 * files, and the checkers judge the history. Everything hangs off one seeded PRNG and the
 * virtual clock, so a seed replays exactly.
 */
import type { UnsafeSwitches } from '../../src/server/node.ts';
import { History, type Op } from '../faults/history.ts';
import { Prng } from '../sim/prng.ts';
import { Nemesis, type NemesisStats } from './nemesis.ts';
import { compareReplicas } from './replica-check.ts';
import { FencedClock, Scheduler } from './scheduler.ts';
import { SimSession } from './sim-client.ts';
import { loadSharedSqlite, SimCluster, type SimNodeSettings } from './sim-cluster.ts';
import { ADMIN_HOST, SimNetwork } from './sim-network.ts';
import { createWorkloads, type SimWorkload } from './sim-workloads.ts';

/** The test-only switches of `NodeOptions.unsafeForTesting`, by their command-line names. */
export const BUG_SWITCHES = {
  'ack-before-commit': 'ackBeforeCommit',
  'reads-without-barrier': 'readsWithoutBarrier',
  'keep-transaction-on-refused-proposal': 'keepTransactionOnRefusedProposal',
  'statements-before-term-applied': 'statementsBeforeTermApplied',
  'run-requests-of-departed-clients': 'runRequestsOfDepartedClients',
  'truncate-on-corruption': 'truncateOnCorruption',
} as const satisfies Record<string, keyof UnsafeSwitches>;

export type BugName = keyof typeof BUG_SWITCHES;

export interface ClusterSimOptions {
  seed: number;
  nodes: 3 | 5;
  /** Steps of the fault phase, 100 simulated ms each. */
  steps: number;
  bug?: BugName;
  /** Trace lines kept for a failure report. */
  traceLines?: number;
}

export interface ClusterSimStats {
  simulatedMs: number;
  events: number;
  ops: number;
  ok: number;
  fail: number;
  info: number;
  nemesis: NemesisStats;
  checkpoints: number;
  snapshots: number;
  connections: number;
  /** Starts refused on a log damaged in the middle (as they must be). */
  refusedStarts: number;
}

export interface ClusterSimResult {
  ok: boolean;
  seed: number;
  problems: string[];
  stats: ClusterSimStats;
  trace: string[];
  /** A digest of the history and the final files: equal for two runs of one seed. */
  fingerprint: string;
  /** The operations the clients ran, for a closer look at a failure. */
  history: readonly Op[];
}

export const STEP_MS = 100;
const CLIENTS = 4;
/** The first clients only read. */
const READERS = 1;
/** Above the nodes' commit timeout: a client gives up only on a request the network lost. */
const REQUEST_TIMEOUT_MS = 8000;
const SETUP_MS_MAX = 30_000;
const DRAIN_MS_MAX = 60_000;
const FINAL_READ_MS_MAX = 30_000;
const CONVERGE_MS_MAX = 30_000;
const REPLICA_CHECK_EVERY_STEPS = 5;
/** Before the last fail-over the cluster gets this long to settle (every node back, a leader). */
const FINAL_FAILOVER_SETTLE_MS = 3000;
/** The clients go on this long after the last fail-over began. */
const FINAL_FAILOVER_RUN_MS = 6000;

/** History on the virtual clock: the fault suite's records, with simulated times. */
class SimHistory extends History {
  constructor(private readonly scheduler: Scheduler) {
    super();
  }

  override nowMs(): number {
    return this.scheduler.nowMs;
  }
}

class Trace {
  private readonly lines: string[] = [];
  constructor(
    private readonly scheduler: Scheduler,
    private readonly linesMax: number,
  ) {}

  add(line: string): void {
    this.lines.push(`[${(this.scheduler.nowMs / 1000).toFixed(3)} s] ${line}`);
    if (this.lines.length > this.linesMax * 4) this.lines.splice(0, this.lines.length - this.linesMax);
  }

  tail(): string[] {
    return this.lines.slice(-this.linesMax);
  }
}

/** Node settings for one seed: small WAL and snapshot thresholds, so checkpoints and snapshots happen. */
export function drawSettings(rng: Prng): SimNodeSettings {
  return {
    tickMs: 100,
    electionTimeoutTicks: 10,
    walFramesMax: 16 + rng.int(200),
    snapshotThresholdEntries: 32 + rng.int(400),
    snapshotTrailingEntries: 8 + rng.int(200),
    commitTimeoutMs: 5000,
    busyTimeoutMs: 2000,
    storage: { readMs: 0.05, writeMs: 0.05 + rng.next() * 0.3, syncMs: 0.2 + rng.next() * 3 },
    tearProbability: 0.5,
  };
}

export async function runClusterSimulation(options: ClusterSimOptions): Promise<ClusterSimResult> {
  // Real I/O (loading the WebAssembly module) happens before virtual time starts, never during.
  await loadSharedSqlite();
  const scheduler = new Scheduler();
  const rng = new Prng(options.seed);
  const trace = new Trace(scheduler, options.traceLines ?? 60);
  const log = (line: string): void => trace.add(line);
  const settings = drawSettings(rng);
  const network = new SimNetwork(scheduler, rng.fork(), 0.3 + rng.next() * 2);
  const unsafe: UnsafeSwitches = options.bug ? { [BUG_SWITCHES[options.bug]]: true } : {};
  const cluster = new SimCluster(scheduler, network, rng.fork(), settings, unsafe, log, options.nodes);
  const history = new SimHistory(scheduler);
  const workloads = createWorkloads(history);
  const problems: string[] = [];
  const clock = new FencedClock(scheduler);
  const session = (host: string, database: string, sessionRng: Prng): SimSession =>
    new SimSession({ dial: network.dialStream(host), clock, rng: sessionRng, servers: () => cluster.addresses, database, requestTimeoutMs: REQUEST_TIMEOUT_MS });
  const admin = session(ADMIN_HOST, 'admin', rng.fork());
  const clientHosts = Array.from({ length: CLIENTS }, (_, index) => `client-${index}`);
  const nemesis = new Nemesis(scheduler, cluster, rng.fork(), admin, log, 0.05 + rng.next() * 0.05, {
    readers: clientHosts.slice(0, READERS),
    writers: clientHosts.slice(READERS),
  });

  const drive = <T>(what: string, limitMs: number, work: Promise<T>): Promise<T> => scheduler.drive(what, limitMs, work);
  /** Retries `work` until it succeeds or `limitMs` of simulated time passed (then it throws). */
  const retry = async (what: string, work: () => Promise<unknown>, limitMs = SETUP_MS_MAX): Promise<void> => {
    const deadlineMs = scheduler.nowMs + limitMs;
    for (let attempt = 0; ; attempt++) {
      if (scheduler.nowMs > deadlineMs) throw new Error(`${what} kept failing for ${limitMs} simulated ms`);
      try {
        await work();
        return;
      } catch (error) {
        if (attempt % 10 === 9) log(`${what}: attempt ${attempt + 1} failed: ${(error as Error).message}`);
        await scheduler.sleep(50 + rng.int(200));
      }
    }
  };

  let fingerprint = '';
  try {
    // --- the cluster: one node bootstraps, the others join as voters through the protocol
    await drive('bootstrap', SETUP_MS_MAX, cluster.start(cluster.slots[0]!, true));
    for (const slot of cluster.slots.slice(1)) await drive(`start node ${slot.id}`, SETUP_MS_MAX, cluster.start(slot));
    await drive(
      'joining every node',
      SETUP_MS_MAX,
      (async () => {
        for (const slot of cluster.slots.slice(1)) {
          await retry(`add node ${slot.id}`, () => admin.admin({ type: 'add', id: BigInt(slot.id), address: slot.address }, 'empty'));
          await retry(`promote node ${slot.id}`, () => admin.admin({ type: 'assign', id: BigInt(slot.id), role: 0 }, 'empty'));
        }
      })(),
    );
    const setupSessions = workloads.map((w) => session('setup', w.database, rng.fork()));
    await drive(
      'workload setup',
      SETUP_MS_MAX,
      Promise.all(workloads.map((w, i) => retry(`${w.name} setup`, () => w.setup(setupSessions[i]!)))),
    );
    for (const s of setupSessions) s.close();
    if (cluster.fatalErrors.length > 0) throw new Error(cluster.fatalErrors.join('; '));

    // --- workload and faults
    let stopping = false;
    /** How often a client leaves right after sending its first request to a new leader. */
    let leaveAfterReconnect = 0.5;
    const readable = workloads.filter((w) => w.readOnly !== undefined);
    const clients = Array.from({ length: CLIENTS }, (_, index) => runClient(index, rng.fork()));
    async function runClient(index: number, clientRng: Prng): Promise<void> {
      const sessions = new Map<SimWorkload, SimSession>(workloads.map((w) => [w, session(clientHosts[index]!, w.database, clientRng.fork())]));
      while (!stopping) {
        // Readers only read: they keep asking a deposed leader while the writers wait on it.
        const reader = index < READERS;
        const workload = clientRng.pick(reader ? readable : workloads);
        const s = sessions.get(workload)!;
        // A client that gives up on its first request after a fail-over (still waiting for the
        // new leader to apply the old term, or queued): what it began must die with it.
        const reconnecting = !s.connected;
        if (reader) {
          await workload.readOnly!(s, index, clientRng);
        } else if (clientRng.chance(reconnecting ? leaveAfterReconnect : 0.02)) {
          await s.abandon(workload.abandonedSql(clientRng), clientRng.int(8)).catch(() => {});
        } else {
          await workload.operate(s, index, clientRng);
        }
        await scheduler.sleep(s.connected ? clientRng.int(30) : 5 + clientRng.int(40));
      }
      for (const s of sessions.values()) s.close();
    }

    for (let step = 0; step < options.steps; step++) {
      nemesis.step();
      await scheduler.runUntil(scheduler.nowMs + STEP_MS);
      if (step % REPLICA_CHECK_EVERY_STEPS === 0) problems.push(...compareReplicas(cluster, workloads.map((w) => w.database)));
      if (cluster.fatalErrors.length > 0 || scheduler.uncaught.length > 0 || problems.length > 0) break;
    }

    // --- one last fail-over under load, then heal, let the clients finish, read the final state
    if (problems.length === 0 && cluster.fatalErrors.length === 0) {
      nemesis.healAll();
      await scheduler.runUntil(scheduler.nowMs + FINAL_FAILOVER_SETTLE_MS);
      // Most clients give up on their first request to the next leader: whatever they began
      // there must not outlive them, and nothing more will abort it.
      leaveAfterReconnect = 0.9;
      nemesis.finalFailover();
      await scheduler.runUntil(scheduler.nowMs + FINAL_FAILOVER_RUN_MS);
    }
    nemesis.healAll();
    stopping = true;
    await drive('clients finishing their last operations', DRAIN_MS_MAX, Promise.all(clients));
    await drive('membership changes finishing', DRAIN_MS_MAX, waitUntil(scheduler, () => !nemesis.busy));
    await drive('every node back as a voter', SETUP_MS_MAX, ensureVoters(cluster, admin, retry));
    const finalSessions = workloads.map((w) => session('final', w.database, rng.fork()));
    for (const [i, workload] of workloads.entries()) {
      // Reads never wait for the write loop, so only a write shows a database that a leftover
      // transaction holds forever (a departed client's, say).
      try {
        const probe = finalSessions[i]!;
        await drive(`a final write to ${workload.name}`, FINAL_READ_MS_MAX, retry(`final write to ${workload.name}`, () => probe.exec('CREATE TABLE IF NOT EXISTS liveness_probe (x INTEGER)').then(() => probe.exec('INSERT INTO liveness_probe VALUES (1)')), FINAL_READ_MS_MAX - 1000));
      } catch (error) {
        problems.push(`liveness: ${(error as Error).message} after every fault healed`);
      }
      try {
        await drive(`the final read of ${workload.name}`, FINAL_READ_MS_MAX, retry(`final read of ${workload.name}`, () => workload.readFinal(finalSessions[i]!), FINAL_READ_MS_MAX - 1000));
      } catch (error) {
        problems.push(`liveness: ${(error as Error).message} after every fault healed`);
      }
    }
    for (const s of finalSessions) s.close();
    try {
      await drive('replicas converging', CONVERGE_MS_MAX, waitUntil(scheduler, () => converged(cluster)));
      problems.push(...compareReplicas(cluster, workloads.map((w) => w.database)));
    } catch (error) {
      problems.push(`${(error as Error).message}: ${describeIndexes(cluster)}`);
    }
    for (const workload of workloads) {
      const report = workload.check();
      if (report.ok !== true) problems.push(...report.problems.map((p) => `${workload.name}: ${p}`));
    }
    fingerprint = digest(JSON.stringify(history.toJSON()) + describeIndexes(cluster) + scheduler.eventsRun);
  } catch (error) {
    problems.push(`the run could not go on: ${(error as Error).message}`);
  }
  // A node that stopped itself, or threw out of an event, explains what follows: it goes first.
  problems.unshift(...cluster.fatalErrors, ...cluster.violations, ...scheduler.uncaught.map((e) => `uncaught in a node's event: ${e.stack ?? e.message}`));
  let checkpoints = 0;
  let snapshots = 0;
  for (const slot of cluster.running()) {
    const status = cluster.status(slot)!;
    checkpoints = Math.max(checkpoints, status.checkpoints);
    snapshots += status.snapshots;
  }
  cluster.shutDown();
  const counts = history.counts();
  return {
    ok: problems.length === 0,
    seed: options.seed,
    problems,
    stats: {
      simulatedMs: scheduler.nowMs,
      events: scheduler.eventsRun,
      ...counts,
      nemesis: nemesis.stats,
      checkpoints,
      snapshots,
      connections: network.stats.connectionsOpened,
      refusedStarts: cluster.refusedStarts,
    },
    trace: trace.tail(),
    fingerprint,
    history: history.ops,
  };
}

function waitUntil(scheduler: Scheduler, condition: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const poll = (): void => {
      if (condition()) resolve();
      else scheduler.after(STEP_MS, poll);
    };
    poll();
  });
}

/** Every node runs (but one out for its damaged log), knows the same leader, and applied the same, complete log. */
function converged(cluster: SimCluster): boolean {
  const statuses = cluster.slots.filter((slot) => !cluster.isOut(slot)).map((slot) => cluster.status(slot));
  if (statuses.some((s) => s === undefined)) return false;
  const first = statuses[0]!;
  return statuses.every(
    (s) => s!.appliedIndex === first.appliedIndex && s!.commitIndex === first.commitIndex && s!.lastIndex === s!.appliedIndex && s!.leaderId === first.leaderId && s!.leaderId !== 0,
  );
}

function describeIndexes(cluster: SimCluster): string {
  return cluster.slots
    .map((slot) => {
      const s = cluster.status(slot);
      if (cluster.isOut(slot)) return `node ${slot.id} out (refused its damaged log)`;
      return s ? `node ${slot.id} ${s.state} term ${s.term} commit ${s.commitIndex} applied ${s.appliedIndex} last ${s.lastIndex}` : `node ${slot.id} down`;
    })
    .join('; ');
}

type Retry = (what: string, work: () => Promise<unknown>) => Promise<void>;

async function ensureVoters(cluster: SimCluster, admin: SimSession, retry: Retry): Promise<void> {
  for (const slot of cluster.slots.filter((s) => !cluster.isOut(s))) {
    await retry(`membership of node ${slot.id}`, async () => {
      const { nodes } = await admin.admin({ type: 'cluster', format: 1 }, 'nodes');
      const member = nodes.find((n) => n.id === BigInt(slot.id));
      if (!member) await admin.admin({ type: 'add', id: BigInt(slot.id), address: slot.address }, 'empty');
      if (member?.role !== 0) await admin.admin({ type: 'assign', id: BigInt(slot.id), role: 0 }, 'empty');
    });
  }
}

function digest(text: string): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 16777619) >>> 0;
    h2 = Math.imul(h2 ^ c, 2246822519) >>> 0;
  }
  return `${h1.toString(16).padStart(8, '0')}${h2.toString(16).padStart(8, '0')}`;
}
