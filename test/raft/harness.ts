/** A small synchronous cluster of real RaftNode cores for scenario tests (no randomness of its own beyond a seeded PRNG). */
import { decodeMessage, encodeMessage, MemoryStorage, RaftNode } from '../../src/raft/index.ts';
import type { Configuration, Entry, Message, NodeId, RaftConfig, ReadState, Ready, Snapshot } from '../../src/raft/index.ts';
import { Prng } from '../sim/prng.ts';

export interface HarnessNode {
  id: NodeId;
  storage: MemoryStorage;
  raft: RaftNode;
  applied: Entry[];
  snapshots: Snapshot[];
  readStates: ReadState[];
  readies: Ready[];
}

export class Harness {
  readonly nodes = new Map<NodeId, HarnessNode>();
  private queue: Message[] = [];
  /** Directed links that drop messages: `${from}>${to}`. */
  readonly blocked = new Set<string>();
  readonly rng: Prng;
  messagesSent: Message[] = [];

  constructor(
    voters: number[],
    readonly extra: Partial<RaftConfig> = {},
    seed = 1,
  ) {
    this.rng = new Prng(seed);
    const config: Configuration = { members: voters.map((id) => ({ id, address: `127.0.0.1:${9000 + id}`, role: 'voter' })) };
    for (const id of voters) {
      const storage = new MemoryStorage();
      RaftNode.bootstrap(storage, config);
      this.addNode(id, storage);
    }
  }

  addNode(id: NodeId, storage = new MemoryStorage(), applied?: number): HarnessNode {
    const raft = new RaftNode({
      id,
      storage,
      electionTimeoutTicks: 10,
      heartbeatTicks: 1,
      random: () => this.rng.next(),
      ...(applied !== undefined ? { applied } : {}),
      ...this.extra,
    });
    const node: HarnessNode = { id, storage, raft, applied: [], snapshots: [], readStates: [], readies: [] };
    this.nodes.set(id, node);
    this.process(node);
    return node;
  }

  node(id: NodeId): HarnessNode {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  process(node: HarnessNode): void {
    while (node.raft.hasReady()) {
      const rd = node.raft.ready();
      node.readies.push(rd);
      if (rd.snapshot) {
        node.storage.applySnapshot(rd.snapshot);
        node.snapshots.push(rd.snapshot);
      }
      node.storage.append(rd.entries);
      if (rd.hardState) node.storage.setHardState(rd.hardState);
      for (const m of rd.messages) {
        // Through the codec, as on a real network.
        const copy = decodeMessage(encodeMessage(m));
        this.queue.push(copy);
        this.messagesSent.push(copy);
      }
      node.applied.push(...rd.committedEntries);
      node.readStates.push(...rd.readStates);
      node.raft.advance(rd);
    }
  }

  /** Delivers messages until none are left (bounded). */
  deliverAll(maxMessages = 100000): number {
    let n = 0;
    while (this.queue.length > 0) {
      if (++n > maxMessages) throw new Error('message storm: more than maxMessages delivered');
      const m = this.queue.shift()!;
      if (this.blocked.has(`${m.from}>${m.to}`)) continue;
      const node = this.nodes.get(m.to);
      if (!node) continue;
      node.raft.step(m);
      this.process(node);
    }
    return n;
  }

  tick(ids: NodeId[] = [...this.nodes.keys()], times = 1): void {
    for (let t = 0; t < times; t++) {
      for (const id of ids) {
        const node = this.node(id);
        node.raft.tick();
        this.process(node);
      }
      this.deliverAll();
    }
  }

  /** Ticks everyone until some node is leader (bounded). */
  electLeader(maxTicks = 200): HarnessNode {
    for (let t = 0; t < maxTicks; t++) {
      const leader = this.leader();
      if (leader) return leader;
      this.tick();
    }
    throw new Error('no leader elected');
  }

  leader(): HarnessNode | undefined {
    const leaders = [...this.nodes.values()].filter((n) => n.raft.status().state === 'leader');
    if (leaders.length === 0) return undefined;
    return leaders.reduce((a, b) => (a.raft.status().term >= b.raft.status().term ? a : b));
  }

  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.blocked.add(`${id}>${other}`);
      this.blocked.add(`${other}>${id}`);
    }
  }

  heal(): void {
    this.blocked.clear();
  }

  /** Replaces a node's core as after a crash: storage (the disk) survives, memory does not. */
  restart(id: NodeId): HarnessNode {
    const old = this.node(id);
    this.queue = this.queue.filter((m) => m.to !== id);
    return this.addNode(id, old.storage);
  }

  propose(node: HarnessNode, text: string): number {
    const r = node.raft.propose(new TextEncoder().encode(text));
    if (!r.ok) throw r.error;
    this.process(node);
    this.deliverAll();
    return r.index;
  }
}

export function texts(entries: Entry[]): string[] {
  return entries.filter((e) => e.type === 1).map((e) => new TextDecoder().decode(e.data));
}
