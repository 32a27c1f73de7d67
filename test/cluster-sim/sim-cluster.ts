/**
 * Real `ClusterNode`s (real engines, gateways, database loops) on the simulated runtime: each node
 * is a slot with a disk that survives crashes; an incarnation is one process lifetime on it.
 * A crash freezes the incarnation (clock, storage and network stop reaching it) and discards its
 * engine; a restart builds a new engine and node on what the disk kept.
 */
import { ClusterNode, type NodeOptions, type NodeStatus, type UnsafeSwitches } from '../../src/server/node.ts';
import { RaftLogCorruptError } from '../../src/server/raft-log.ts';
import type { Runtime } from '../../src/runtime.ts';
import { Engine } from '../../wasm/index.ts';
import { loadDefaultSqlite } from '../../wasm/sqlite-api.ts';
import type { Prng } from '../sim/prng.ts';
import { FencedClock, type Scheduler } from './scheduler.ts';
import { SimNetwork } from './sim-network.ts';
import type { LogDamage } from './log-corruption.ts';
import { SimDisk, type CrashReport, type StorageLatency } from './sim-storage.ts';

/** Node settings one seed runs with (some drawn from the seed). */
export interface SimNodeSettings {
  tickMs: number;
  electionTimeoutTicks: number;
  walFramesMax: number;
  snapshotThresholdEntries: number;
  snapshotTrailingEntries: number;
  commitTimeoutMs: number;
  busyTimeoutMs: number;
  storage: StorageLatency;
  tearProbability: number;
}

interface Incarnation {
  clock: FencedClock;
  engine: Engine | undefined;
  node: ClusterNode | undefined;
  number: number;
}

export interface NodeSlot {
  readonly index: number;
  /** A node rebuilt after refusing its damaged log joins as a new member, under a new id. */
  id: number;
  readonly address: string;
  readonly disk: SimDisk;
  incarnation: Incarnation | undefined;
  incarnations: number;
  crashes: number;
  /**
   * Damage the nemesis put in the middle of this node's log while it was down. Its next start
   * must refuse (RAFT_LOG_CORRUPT); then the node stays out of the cluster (`refused`).
   */
  logDamage: (LogDamage & { refused: boolean }) | undefined;
}

export const CLUSTER_KEY = 'simulated-cluster-key';

let sharedSqlite: Promise<unknown> | undefined;

/**
 * One SQLite module for every engine of the process: an engine is a VFS and connections inside
 * it, so a node restart costs no module instantiation, and nothing waits on real I/O mid-run.
 */
export function loadSharedSqlite(): Promise<unknown> {
  sharedSqlite ??= loadDefaultSqlite();
  return sharedSqlite;
}

export class SimCluster {
  readonly slots: NodeSlot[];
  readonly fatalErrors: string[] = [];
  /** Safety violations that do not stop the run, so the checkers can show what follows from them. */
  readonly violations: string[] = [];
  /**
   * What the first replica to apply each log index emitted for it (change feed events): every
   * other replica, and every replay after a restart, must emit the same.
   */
  private readonly committedChanges = new Map<number, string>();
  /** Starts refused, as they must be, on a log damaged in the middle. */
  refusedStarts = 0;
  /** Ids of rebuilt nodes: above every original one. */
  private nextFreshId = 100;

  constructor(
    private readonly scheduler: Scheduler,
    readonly network: SimNetwork,
    private readonly rng: Prng,
    private readonly settings: SimNodeSettings,
    private readonly unsafe: UnsafeSwitches,
    private readonly trace: (line: string) => void,
    nodes: number,
  ) {
    this.slots = Array.from({ length: nodes }, (_, index) => ({
      index,
      id: index + 1,
      address: `10.0.0.${index + 1}:9001`,
      disk: new SimDisk(),
      incarnation: undefined,
      incarnations: 0,
      crashes: 0,
      logDamage: undefined,
    }));
  }

  get addresses(): string[] {
    return this.slots.map((slot) => slot.address);
  }

  /** Starts the node of `slot` on its disk; resolves once it serves (or when it died starting). */
  async start(slot: NodeSlot, bootstrap = false): Promise<void> {
    // The id this incarnation runs under (a rebuilt node gets a new one).
    const id = slot.id;
    if (slot.incarnation) throw new Error(`node ${id} is already running`);
    const clock = new FencedClock(this.scheduler);
    const incarnation: Incarnation = { clock, engine: undefined, node: undefined, number: ++slot.incarnations };
    slot.incarnation = incarnation;
    const random = this.rng.fork();
    const runtime: Runtime = {
      name: 'node',
      clock,
      randomBytes: (length) => {
        const bytes = new Uint8Array(length);
        for (let i = 0; i < length; i++) bytes[i] = random.int(256);
        return bytes;
      },
      dialWebSocket: this.network.dialWebSocket(slot.address),
    };
    const storage = slot.disk.open(clock, this.settings.storage, this.rng.fork());
    const sqlite = await loadSharedSqlite();
    const engine = await Engine.create({ loadSqlite: async () => sqlite });
    incarnation.engine = engine;
    const options: NodeOptions = {
      id,
      address: slot.address,
      runtime,
      storage,
      engine,
      clusterKey: CLUSTER_KEY,
      bootstrap,
      tickMs: this.settings.tickMs,
      electionTimeoutTicks: this.settings.electionTimeoutTicks,
      walFramesMax: this.settings.walFramesMax,
      snapshotThresholdEntries: this.settings.snapshotThresholdEntries,
      snapshotTrailingEntries: this.settings.snapshotTrailingEntries,
      commitTimeoutMs: this.settings.commitTimeoutMs,
      busyTimeoutMs: this.settings.busyTimeoutMs,
      votersMax: this.slots.length,
      unsafeForTesting: this.unsafe,
      log: (line) => this.trace(`node ${id}: ${line}`),
      onFatal: (error) => {
        if (slot.incarnation === incarnation) this.fatalErrors.push(`node ${id} stopped itself: ${error.message}`);
      },
    };
    let node: ClusterNode;
    try {
      node = await ClusterNode.start(options);
    } catch (error) {
      if (slot.incarnation !== incarnation) return;
      const damage = slot.logDamage;
      if (damage && (error as { code?: unknown }).code === 'RAFT_LOG_CORRUPT') {
        // What must happen: the node stays down, as it would until an operator rebuilds it.
        damage.refused = true;
        this.refusedStarts++;
        if (!(error instanceof RaftLogCorruptError) || error.file !== damage.file || error.offset !== damage.recordOffset) {
          const named = error instanceof RaftLogCorruptError ? `${error.file} at byte ${error.offset}` : 'no file and offset';
          this.violations.push(`node ${id} refused its damaged log but named ${named}, not ${damage.file} at byte ${damage.recordOffset}`);
        }
        slot.incarnation = undefined;
        clock.fence();
        slot.disk.release();
        this.trace(`node ${id}: refused to start on its damaged log, as it must: ${(error as Error).message.slice(0, 160)}`);
        return;
      }
      this.fatalErrors.push(`node ${id} failed to start: ${(error as Error).stack ?? String(error)}`);
      return;
    }
    if (slot.incarnation !== incarnation) return;
    const damage = slot.logDamage;
    if (damage) {
      this.violations.push(
        `node ${id} started on a log with damaged acknowledged entries (entry ${damage.index}'s record at byte ${damage.recordOffset} of ${damage.file}, ${damage.bytes} of its bytes changed)`,
      );
      slot.logDamage = undefined;
    }
    incarnation.node = node;
    node.changeLog().commits.subscribe((event) => {
      if (event.snapshot) return;
      const seen = JSON.stringify({ database: event.database, changes: event.changes }, (_key, value: unknown) => (typeof value === 'bigint' ? `${value}n` : value));
      const first = this.committedChanges.get(event.index);
      if (first === undefined) this.committedChanges.set(event.index, seen);
      else if (first !== seen) this.violations.push(`node ${id} emitted other changes for index ${event.index} than the first replica to apply it: ${seen.slice(0, 200)} vs ${first.slice(0, 200)}`);
    });
    this.network.listen(slot.address, node);
    this.trace(`node ${id}: started (incarnation ${incarnation.number})`);
  }

  /** Kills the process of `slot`: no shutdown, unsynced writes lost or torn. */
  crash(slot: NodeSlot): CrashReport | undefined {
    const incarnation = slot.incarnation;
    if (!incarnation) return undefined;
    slot.incarnation = undefined;
    slot.crashes++;
    incarnation.clock.fence();
    this.network.crashHost(slot.address);
    const report = slot.disk.crash(this.rng, this.settings.tearProbability);
    // The dead incarnation can run no more code (its clock, disk and sockets are fenced), so its
    // databases can be closed to give their memory back to the shared SQLite module.
    const engine = incarnation.engine;
    if (engine) for (const name of engine.databases()) engine.get(name)?.close();
    return report;
  }

  /** A node that refused to start on its damaged log: it is out of the cluster until rebuilt. */
  isOut(slot: NodeSlot): boolean {
    return slot.logDamage?.refused === true;
  }

  /**
   * What an operator does with a node that refused its damaged log (after removing its member):
   * empties its data directory and starts it as a new, empty node under a new id, to be added.
   */
  async rebuild(slot: NodeSlot): Promise<void> {
    if (!this.isOut(slot) || slot.incarnation) throw new Error(`node ${slot.id} is not out of the cluster`);
    slot.disk.wipe();
    slot.logDamage = undefined;
    const oldId = slot.id;
    slot.id = this.nextFreshId++;
    this.trace(`node ${oldId}: data directory emptied; starting again as node ${slot.id}`);
    await this.start(slot);
  }

  running(): NodeSlot[] {
    return this.slots.filter((slot) => slot.incarnation?.node !== undefined);
  }

  node(slot: NodeSlot): ClusterNode | undefined {
    return slot.incarnation?.node;
  }

  engine(slot: NodeSlot): Engine | undefined {
    return slot.incarnation?.node ? slot.incarnation.engine : undefined;
  }

  status(slot: NodeSlot): NodeStatus | undefined {
    return slot.incarnation?.node?.status();
  }

  /** The slot of the node that believes it leads with the highest term. */
  leader(): NodeSlot | undefined {
    let best: { slot: NodeSlot; term: number } | undefined;
    for (const slot of this.running()) {
      const status = this.status(slot)!;
      if (status.state === 'leader' && (!best || status.term > best.term)) best = { slot, term: status.term };
    }
    return best?.slot;
  }

  /** Stops every node cleanly at the end of a run, freeing its engine. */
  shutDown(): void {
    for (const slot of this.slots) {
      const incarnation = slot.incarnation;
      if (!incarnation) continue;
      incarnation.clock.fence();
      this.network.crashHost(slot.address);
      slot.disk.release();
      const engine = incarnation.engine;
      if (engine) for (const name of engine.databases()) engine.get(name)?.close();
      slot.incarnation = undefined;
    }
  }
}
