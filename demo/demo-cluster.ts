/**
 * The page's side of the demo cluster: starts nodes with the package's browser `startNode` (each
 * in its Web Worker, OPFS storage), wires them to the in-page network, kills/restarts/isolates
 * them, polls their status, and turns status changes into timeline events. No DOM here;
 * `main.ts` renders what this reports.
 */
import { eraseBrowserNode, startNode, type BrowserEmbeddedNode } from '../runtimes/browser/library.ts';
import type { NodeMemory } from '../src/server/memory-usage.ts';
import type { NodeStatus } from '../src/server/node-options.ts';
import { InPageBroker, InPageEndpoint } from './in-page-network.ts';

export const NODES_MAX = 5;
export const NODES_MIN = 1;
export const CONSOLE_ADDRESS = 'console';
/** The storage name of node N is `demo-node-N` (an OPFS directory of the package's browser node). */
const STORAGE_NAME_PREFIX = 'demo-';
const NODE_COUNT_KEY = 'dqlite-demo:nodes';
const CLUSTER_KEY = 'in-page-demo-cluster';
const POLL_INTERVAL_MS = 250;
const STARTUP_WAIT_MS = 90_000;

export type NodePhase = 'starting' | 'joining' | 'running' | 'failed';

/** What a node reports about its memory, when it does (a field of its status). */
export type { NodeMemory } from '../src/server/memory-usage.ts';

export type DemoNodeStatus = NodeStatus & { memory?: NodeMemory };

export type EventKind = 'election' | 'leader' | 'checkpoint' | 'snapshot' | 'fault' | 'heal' | 'info' | 'error';

export interface TimelineEvent {
  atMs: number;
  kind: EventKind;
  text: string;
}

export interface NodeView {
  index: number;
  address: string;
  /** The worker exists (not killed). */
  alive: boolean;
  phase: NodePhase | 'killed';
  error?: string;
  isolated: boolean;
  status?: DemoNodeStatus;
  /** Wall time of the last checkpoint this page saw the node make. */
  lastCheckpointAtMs?: number;
}

interface NodeSlot {
  index: number;
  address: string;
  /** The node while its worker runs; `starting` while `startNode` has not resolved. */
  running: BrowserEmbeddedNode | 'starting' | undefined;
  /** Each launch gets a new generation: a late answer from a killed worker is ignored. */
  generation: number;
  view: NodeView;
}

export function addressOf(index: number): string {
  return `node-${index}`;
}

function storageName(index: number): string {
  return STORAGE_NAME_PREFIX + addressOf(index);
}

export function indexOf(address: string): number {
  const match = /^node-(\d+)$/.exec(address);
  return match ? Number(match[1]) : 0;
}

export interface DemoClusterOptions {
  /** The demo's node worker (in-page-worker.ts): the package's worker plus the in-page network. */
  workerUrl: URL;
  onEvent: (event: TimelineEvent) => void;
  onUpdate: (nodes: readonly NodeView[]) => void;
  /** A node's worker is running (started, or restarted): the page may open its databases. */
  onNodeRunning?: (index: number, node: BrowserEmbeddedNode) => void;
}

export class DemoCluster {
  readonly broker = new InPageBroker({ alwaysReachable: [CONSOLE_ADDRESS] });
  /** The page's own network endpoint, for the SQL console and the write burst. */
  readonly consoleEndpoint: InPageEndpoint;
  private readonly slots = new Map<number, NodeSlot>();
  private readonly options: DemoClusterOptions;
  private pollTimer: ReturnType<typeof setInterval> | undefined;
  private polling = false;
  private lastLeaderLabel = '';

  constructor(options: DemoClusterOptions) {
    this.options = options;
    const channel = new MessageChannel();
    this.broker.attach(CONSOLE_ADDRESS, channel.port1);
    this.consoleEndpoint = new InPageEndpoint(channel.port2, CONSOLE_ADDRESS);
  }

  /** Node count of the cluster stored in this browser, or 0 when there is none. */
  static storedNodeCount(): number {
    const stored = Number(localStorage.getItem(NODE_COUNT_KEY) ?? '0');
    return Number.isInteger(stored) && stored >= NODES_MIN && stored <= NODES_MAX ? stored : 0;
  }

  nodes(): NodeView[] {
    return [...this.slots.values()].sort((a, b) => a.index - b.index).map((slot) => slot.view);
  }

  addresses(): string[] {
    return this.nodes().map((n) => n.address);
  }

  /**
   * Starts `count` nodes: recovers the stored cluster when there is one, else bootstraps node 1
   * and joins the others one at a time (one membership change at a time).
   */
  async startCluster(count: number): Promise<void> {
    if (!Number.isInteger(count) || count < NODES_MIN || count > NODES_MAX) {
      throw new RangeError(`the demo runs ${NODES_MIN} to ${NODES_MAX} nodes, not ${count}`);
    }
    this.startPolling();
    const stored = DemoCluster.storedNodeCount();
    if (stored > 0) {
      this.emit('info', `recovering ${stored} nodes from OPFS`);
      await Promise.all(Array.from({ length: stored }, (_, i) => this.launch(i + 1)));
      for (let i = stored + 1; i <= count; i++) await this.addNode();
      return;
    }
    this.emit('info', `starting a new ${count}-node cluster`);
    for (let i = 1; i <= count; i++) await this.addNode();
  }

  /** Adds the next node (up to NODES_MAX) and waits until it has joined. */
  async addNode(): Promise<void> {
    const index = this.slots.size + 1;
    if (index > NODES_MAX) throw new RangeError(`the demo runs at most ${NODES_MAX} nodes`);
    localStorage.setItem(NODE_COUNT_KEY, String(index));
    await this.launch(index);
    await this.waitFor(index, (view) => view.phase === 'running', 'join the cluster');
  }

  /** Terminates the node's worker, as a crash would: no hand-over, no flush beyond what Raft synced. */
  kill(index: number): void {
    const slot = this.slot(index);
    if (!slot.running) return;
    if (slot.running !== 'starting') slot.running.kill();
    slot.running = undefined;
    slot.generation++;
    this.broker.detach(slot.address, `${slot.address} crashed`);
    slot.view = { ...slot.view, alive: false, phase: 'killed' };
    delete slot.view.status;
    this.emit('fault', `${slot.address} killed`);
    this.update();
  }

  /** A new worker on the same OPFS directory: the node recovers its log and rejoins. */
  async restart(index: number): Promise<void> {
    const slot = this.slot(index);
    if (slot.running) return;
    this.emit('info', `${slot.address} restarting from its OPFS storage`);
    await this.launch(index);
  }

  isolate(index: number): void {
    const address = this.slot(index).address;
    this.broker.isolate(address);
    this.slot(index).view.isolated = true;
    this.emit('fault', `${address} isolated from its peers (partition)`);
    this.update();
  }

  heal(index?: number): void {
    for (const slot of this.slots.values()) {
      if (index !== undefined && slot.index !== index) continue;
      if (!slot.view.isolated) continue;
      this.broker.heal(slot.address);
      slot.view.isolated = false;
      this.emit('heal', `${slot.address} reconnected (partition healed)`);
    }
    this.update();
  }

  setLinkDelay(a: number, b: number, delayMs: number): void {
    this.broker.setDelay(addressOf(a), addressOf(b), delayMs);
    if (delayMs > 0) this.emit('fault', `link ${addressOf(a)} ↔ ${addressOf(b)} slowed to ${delayMs} ms`);
    else this.emit('heal', `link ${addressOf(a)} ↔ ${addressOf(b)} back to full speed`);
  }

  /** Stops every node and erases the cluster's OPFS storage. */
  async reset(): Promise<void> {
    for (const slot of this.slots.values()) {
      if (slot.running && slot.running !== 'starting') slot.running.kill();
      if (slot.running) this.broker.detach(slot.address);
      slot.running = undefined;
      slot.generation++;
    }
    this.slots.clear();
    this.broker.heal();
    localStorage.removeItem(NODE_COUNT_KEY);
    // Terminated workers release their file handles asynchronously; the erase waits for them.
    for (let i = 1; i <= NODES_MAX; i++) await eraseBrowserNode(storageName(i));
    this.lastLeaderLabel = '';
    this.emit('info', 'cluster erased');
    this.update();
  }

  /** Resolves when a node leads and every live node agrees on it. */
  waitForLeader(timeoutMs = STARTUP_WAIT_MS): Promise<NodeView> {
    return this.waitUntil(() => {
      const live = this.nodes().filter((n) => n.status);
      const leader = live.find((n) => n.status!.state === 'leader');
      return leader && live.every((n) => n.status!.leaderId === leader.status!.id) ? leader : undefined;
    }, timeoutMs, 'a leader to be elected');
  }

  private slot(index: number): NodeSlot {
    const slot = this.slots.get(index);
    if (!slot) throw new RangeError(`there is no ${addressOf(index)}`);
    return slot;
  }

  private async launch(index: number): Promise<void> {
    const address = addressOf(index);
    let slot = this.slots.get(index);
    if (!slot) {
      slot = { index, address, running: undefined, generation: 0, view: { index, address, alive: false, phase: 'starting', isolated: false } };
      this.slots.set(index, slot);
    }
    const generation = ++slot.generation;
    slot.running = 'starting';
    slot.view = { ...slot.view, alive: true, phase: 'starting' };
    delete slot.view.error;
    delete slot.view.status;
    this.update();
    const channel = new MessageChannel();
    this.broker.attach(address, channel.port1);
    const current = (): boolean => slot.generation === generation;
    try {
      const node = await startNode({
        name: storageName(index),
        address,
        // Node 1 starts the cluster; the others join through whichever nodes already run.
        bootstrap: index === 1,
        join: index === 1 ? [] : Array.from({ length: NODES_MAX }, (_, i) => addressOf(i + 1)).filter((a) => a !== address),
        clusterKey: CLUSTER_KEY,
        storage: 'opfs',
        workerUrl: this.options.workerUrl,
        workerName: address,
        hostPort: channel.port2,
        tickMs: 100,
        commitTimeoutMs: 5000,
        walFramesMax: 200,
        // Low, so that a write burst shows snapshots and log compaction on the timeline.
        snapshotThresholdEntries: 256,
        snapshotTrailingEntries: 128,
        votersMax: NODES_MAX,
        log: (line) => {
          if (!current()) return;
          if (/still joining|added to the cluster as a spare/.test(line) && slot.view.phase === 'starting') slot.view = { ...slot.view, phase: 'joining' };
          this.logLineEvent(address, line.replace(/^\[browser node \d+\] /, ''));
        },
      });
      if (!current()) {
        node.kill(); // Killed or reset while starting.
        return;
      }
      slot.running = node;
      slot.view = { ...slot.view, phase: 'running' };
      this.options.onNodeRunning?.(index, node);
      if (!node.info.fresh) this.emit('info', `${address} recovered from OPFS`);
      node.addEventListener('fatal', (event) => {
        if (current()) this.emit('error', `${address} stopped itself: ${(event as Event & { error: Error }).error.message}`);
      });
      this.update();
    } catch (error) {
      if (!current()) return;
      slot.running = undefined;
      this.broker.detach(address);
      slot.view = { ...slot.view, alive: false, phase: 'failed', error: error instanceof Error ? error.message : String(error) };
      this.emit('error', `${address} failed to start: ${slot.view.error}`);
      this.update();
    }
  }

  private startPolling(): void {
    this.pollTimer ??= setInterval(() => void this.pollAll(), POLL_INTERVAL_MS);
  }

  private async pollAll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      await Promise.all(
        [...this.slots.values()].map(async (slot) => {
          const running = slot.running;
          if (!running || running === 'starting') return;
          let status: DemoNodeStatus;
          try {
            status = await running.status();
          } catch {
            return; // The worker was terminated during the call.
          }
          if (slot.running !== running) return;
          this.absorb(slot, status);
        }),
      );
      this.checkLeader();
      this.update();
    } finally {
      this.polling = false;
    }
  }

  private absorb(slot: NodeSlot, after: DemoNodeStatus): void {
    const before = slot.view.status;
    const view: NodeView = { ...slot.view, status: after };
    if (before) {
      if (after.state !== before.state) {
        if (after.state === 'candidate' || after.state === 'precandidate') {
          this.emit('election', `${slot.address} starts an election (term ${after.term})`);
        } else if (after.state === 'leader') {
          this.emit('leader', `${slot.address} became leader (term ${after.term})`);
        } else if (before.state === 'leader') {
          this.emit('election', `${slot.address} stepped down to ${after.state} (term ${after.term})`);
        }
      }
      if (after.checkpoints > before.checkpoints) {
        view.lastCheckpointAtMs = Date.now();
        this.emit('checkpoint', `${slot.address} checkpointed the WAL into the database (#${after.checkpoints})`);
      }
      if (after.snapshots > before.snapshots) {
        this.emit('snapshot', `${slot.address} took a snapshot at index ${after.snapshotIndex}`);
      }
    }
    slot.view = view;
  }

  private logLineEvent(address: string, text: string): void {
    if (/installed a snapshot/.test(text)) this.emit('snapshot', `${address} ${text}`);
    else if (/added to the cluster|promoted|bootstrapped|recovered from OPFS/.test(text)) this.emit('info', `${address} ${text}`);
    else if (/^failed|fatal/.test(text)) this.emit('error', `${address} ${text}`);
  }

  private checkLeader(): void {
    const leaders = this.nodes().filter((n) => n.status?.state === 'leader');
    const label = leaders.map((n) => `${n.address}@${n.status!.term}`).join(',');
    if (label === this.lastLeaderLabel) return;
    this.lastLeaderLabel = label;
    if (leaders.length === 0) this.emit('election', 'no node is leader');
    else if (leaders.length > 1) this.emit('election', `two leaders in different terms: ${leaders.map((n) => `${n.address} (term ${n.status!.term})`).join(', ')} — the older one cannot commit`);
  }

  private waitFor(index: number, test: (view: NodeView) => boolean, what: string): Promise<NodeView> {
    return this.waitUntil(() => {
      const view = this.slots.get(index)?.view;
      if (view?.phase === 'failed') throw new Error(`${addressOf(index)} failed to ${what}: ${view.error ?? 'unknown error'}`);
      return view && test(view) ? view : undefined;
    }, STARTUP_WAIT_MS, `${addressOf(index)} to ${what}`);
  }

  private waitUntil<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const deadline = performance.now() + timeoutMs;
    return new Promise<T>((resolve, reject) => {
      const check = (): void => {
        let result: T | undefined;
        try {
          result = probe();
        } catch (error) {
          reject(error);
          return;
        }
        if (result !== undefined) resolve(result);
        else if (performance.now() > deadline) reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
        else setTimeout(check, POLL_INTERVAL_MS);
      };
      check();
    });
  }

  private emit(kind: EventKind, text: string): void {
    this.options.onEvent({ atMs: Date.now(), kind, text });
  }

  private update(): void {
    this.options.onUpdate(this.nodes());
  }
}
