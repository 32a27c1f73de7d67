/**
 * Deterministic simulation of a Raft cluster: real RaftNode cores and MemoryStorage "disks",
 * a seeded scheduler that delivers, drops, duplicates, delays and reorders messages, partitions
 * (also one-way), crashes and restarts nodes (losing anything not persisted), changes membership
 * and compacts logs; the safety invariants are checked after every step, liveness after healing.
 */
import {
  decodeMessage,
  encodeMessage,
  MemoryStorage,
  MessageType,
  RaftNode,
  voterIds,
} from '../../src/raft/index.ts';
import type { ConfChange, Entry, Message, NodeId, RaftTestBug, Ready, Role } from '../../src/raft/index.ts';
import { Prng } from './prng.ts';

export interface SimOptions {
  seed: number;
  steps: number;
  bugs?: ReadonlySet<RaftTestBug>;
  /** Trace lines kept for the failure report. */
  traceLines?: number;
}

export type SimResult =
  | { ok: true; seed: number; stats: SimStats }
  | { ok: false; seed: number; invariant: string; message: string; step: number; trace: string[]; stats: SimStats };

export interface SimStats {
  nodes: number;
  steps: number;
  messagesDelivered: number;
  committed: number;
  leadersElected: number;
  crashes: number;
  confChanges: number;
  snapshotsSent: number;
}

export class InvariantViolation extends Error {
  constructor(readonly invariant: string, message: string) {
    super(message);
  }
}

const ELECTION_TICKS = 10;
const HEARTBEAT_TICKS = 2;
const SNAPSHOT_EVERY_ENTRIES = 24;
const SNAPSHOT_TRAILING_ENTRIES = 8;
const SNAPSHOT_PADDING_BYTES = 2500;
const NETWORK_MESSAGES_MAX = 3000;

interface InFlight {
  from: NodeId;
  to: NodeId;
  bytes: Uint8Array;
  dueTick: number;
}

interface SimNode {
  id: NodeId;
  address: string;
  storage: MemoryStorage;
  raft: RaftNode | undefined;
  /** The replicated state machine: a hash chain of applied entries. */
  appliedIndex: number;
  appliedHash: number;
  /** Highest commit index already folded into the global committed map. */
  commitChecked: number;
  /** Fraction of global ticks this node's clock sees. */
  clockRate: number;
}

function fnv(hash: number, bytes: Uint8Array): number {
  let h = hash >>> 0;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 16777619) >>> 0;
  }
  return h;
}

function fnvNumber(hash: number, n: number): number {
  let h = hash >>> 0;
  for (let i = 0; i < 7; i++) {
    h ^= Math.floor(n / 2 ** (8 * i)) & 0xff;
    h = Math.imul(h, 16777619) >>> 0;
  }
  return h;
}

function entryHash(e: Entry): number {
  return fnv(fnvNumber(fnvNumber(2166136261, e.type), e.index), e.data);
}

function encodeSnapshotData(index: number, hash: number): Uint8Array {
  const out = new Uint8Array(16 + SNAPSHOT_PADDING_BYTES);
  const v = new DataView(out.buffer);
  v.setFloat64(0, index, true);
  v.setUint32(8, hash, true);
  for (let i = 16; i < out.length; i++) out[i] = (i * 31 + hash) & 0xff;
  return out;
}

function decodeSnapshotData(data: Uint8Array): { index: number; hash: number } {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  return { index: v.getFloat64(0, true), hash: v.getUint32(8, true) };
}

export class Simulation {
  readonly rng: Prng;
  private readonly nodes = new Map<NodeId, SimNode>();
  private network: InFlight[] = [];
  /** Directed links that drop everything: `${from}>${to}`. */
  private blocked = new Set<string>();
  private tickNow = 0;
  private dropRate: number;
  private dupRate: number;
  private maxDelayTicks: number;
  private readonly appendBytesMax: number;
  private stormy = true;
  private killAfterStep = new Set<NodeId>();
  private deferred = new Set<NodeId>();
  private readCounter = 0;
  private readsIssued = new Map<number, number>();
  private deferRate: number;
  /** This run's leaders send a Ready's messages before writing its entries. */
  private readonly leaderSendsEarly: boolean;
  private readonly bugs: ReadonlySet<RaftTestBug> | undefined;
  private trace: string[] = [];
  private readonly traceLines: number;
  private proposalCounter = 0;
  stepNow = 0;

  // Global knowledge for the invariants.
  private leaderOfTerm = new Map<number, NodeId>();
  private committed = new Map<number, { term: number; hash: number }>();
  private maxCommitted = 0;
  private appliedHashAt = new Map<number, number>();
  private entryAt = new Map<string, string>();

  readonly stats: SimStats;

  constructor(readonly options: SimOptions) {
    this.rng = new Prng(options.seed);
    this.bugs = options.bugs;
    this.traceLines = options.traceLines ?? 40;
    const universe = 3 + this.rng.int(5);
    const initialMembers = Math.min(universe, 3 + this.rng.int(3));
    this.dropRate = this.rng.next() * 0.15;
    this.dupRate = this.rng.next() * 0.05;
    this.maxDelayTicks = 1 + this.rng.int(4);
    // Small appends split a new leader's catch-up, which exposes commit-rule bugs.
    this.appendBytesMax = this.rng.chance(0.5) ? 40 : 600;
    this.deferRate = this.rng.chance(0.5) ? 0 : this.rng.next() * 0.6;
    this.leaderSendsEarly = this.rng.chance(0.5);
    this.stats = { nodes: universe, steps: 0, messagesDelivered: 0, committed: 0, leadersElected: 0, crashes: 0, confChanges: 0, snapshotsSent: 0 };
    const members = [];
    for (let id = 1; id <= universe; id++) {
      const node: SimNode = {
        id,
        address: `127.0.0.1:${9000 + id}`,
        storage: new MemoryStorage(),
        raft: undefined,
        appliedIndex: 0,
        appliedHash: 0,
        commitChecked: 0,
        clockRate: this.rng.chance(0.5) ? 0.95 : 0.3 + this.rng.next() * 0.7,
      };
      this.nodes.set(id, node);
      if (id <= initialMembers) members.push({ id, address: node.address, role: 'voter' as Role });
    }
    for (const m of members) RaftNode.bootstrap(this.nodes.get(m.id)!.storage, { members });
    for (const node of this.nodes.values()) this.start(node);
    this.log(`start: ${universe} nodes, voters 1..${initialMembers}, drop ${this.dropRate.toFixed(3)}, dup ${this.dupRate.toFixed(3)}, delay<=${this.maxDelayTicks}`);
  }

  private log(line: string): void {
    this.trace.push(`[${this.stepNow}] ${line}`);
    if (this.trace.length > this.traceLines) this.trace.shift();
  }

  traceLinesSnapshot(): string[] {
    return this.trace.slice();
  }

  private start(node: SimNode): void {
    const snap = node.storage.snapshot();
    if (snap.meta.index > 0) {
      const sm = decodeSnapshotData(snap.data);
      node.appliedIndex = sm.index;
      node.appliedHash = sm.hash;
    } else {
      node.appliedIndex = 0;
      node.appliedHash = 0;
    }
    const config = {
      id: node.id,
      storage: node.storage,
      electionTimeoutTicks: ELECTION_TICKS,
      heartbeatTicks: HEARTBEAT_TICKS,
      random: () => this.rng.next(),
      applied: node.appliedIndex,
      maxInflightAppends: 4,
      maxEntriesBytesPerAppend: this.appendBytesMax,
      snapshotChunkBytes: 1024,
      ...(this.bugs ? { testBugs: this.bugs } : {}),
    };
    node.raft = new RaftNode(config);
    this.processReady(node);
  }

  private live(): SimNode[] {
    return [...this.nodes.values()].filter((n) => n.raft !== undefined);
  }

  leaders(): SimNode[] {
    return this.live().filter((n) => n.raft!.status().state === 'leader');
  }

  // ------------------------------------------------------------------ ready processing

  private processReady(node: SimNode): void {
    const raft = node.raft!;
    let guard = 0;
    while (raft.hasReady()) {
      if (++guard > 1000) throw new InvariantViolation('progress', `node ${node.id} keeps producing Ready batches`);
      const rd = raft.ready();
      const earlySend = this.leaderSendsEarly && rd.entries.length > 0 && !rd.snapshot && raft.status().state === 'leader';
      if (earlySend) {
        // The leader ships its appends while its own disk write is in flight (thesis §10.2.1).
        if (rd.hardState) node.storage.setHardState(rd.hardState);
        this.sendAll(rd);
        if (this.stormy && this.rng.chance(0.05)) {
          node.raft = undefined;
          this.deferred.delete(node.id);
          this.stats.crashes++;
          this.log(`n${node.id} crashes while writing entries ${rd.entries[0]!.index}..${rd.entries[rd.entries.length - 1]!.index} it already sent`);
          return;
        }
        this.persist(node, rd, false);
      } else {
        this.persist(node, rd, true);
        this.sendAll(rd);
      }
      this.apply(node, rd);
      for (const rs of rd.readStates) {
        const mustSee = this.readsIssued.get(rs.requestId);
        if (mustSee === undefined) throw new InvariantViolation('read index', `node ${node.id} answered read ${rs.requestId} that was never issued`);
        this.readsIssued.delete(rs.requestId);
        if (rs.index < mustSee) {
          throw new InvariantViolation('linearizable reads', `node ${node.id} answered read ${rs.requestId} at index ${rs.index}, but ${mustSee} was committed before it was issued`);
        }
      }
      raft.advance(rd);
      this.checkCommit(node);
      if (rd.softState?.state === 'leader') this.onBecameLeader(node);
    }
  }

  private sendAll(rd: Ready): void {
    for (const m of rd.messages) {
      if (m.type === MessageType.VoteResponse && !m.reject) this.log(`n${m.from} votes for n${m.to} in term ${m.term}`);
      this.send(m);
    }
  }

  private persist(node: SimNode, rd: Ready, withHardState: boolean): void {
    if (rd.snapshot) {
      node.storage.applySnapshot(rd.snapshot);
      const c = this.committed.get(rd.snapshot.meta.index);
      if (c && c.term !== rd.snapshot.meta.term) {
        throw new InvariantViolation('snapshot safety', `node ${node.id} installed a snapshot at ${rd.snapshot.meta.index} term ${rd.snapshot.meta.term}, but term ${c.term} was committed there`);
      }
      this.log(`n${node.id} installs snapshot @${rd.snapshot.meta.index}`);
    }
    if (rd.entries.length > 0) {
      node.storage.append(rd.entries);
      for (const e of rd.entries) {
        let prevTerm = -1;
        try {
          prevTerm = node.storage.term(e.index - 1);
        } catch {
          // Compacted: the previous entry is covered by the snapshot.
        }
        const key = `${e.index}/${e.term}`;
        const value = `${prevTerm}|${entryHash(e)}`;
        const seen = this.entryAt.get(key);
        if (seen === undefined) this.entryAt.set(key, value);
        else if (seen !== value) {
          const [seenPrev, seenHash] = seen.split('|');
          const [prev, hash] = value.split('|');
          if (seenHash !== hash || (seenPrev !== '-1' && prev !== '-1' && seenPrev !== prev)) {
            throw new InvariantViolation('log matching', `node ${node.id} holds entry ${key} as ${value}, another log holds it as ${seen}`);
          }
        }
      }
    }
    if (withHardState && rd.hardState) node.storage.setHardState(rd.hardState);
  }

  private apply(node: SimNode, rd: Ready): void {
    if (rd.snapshot) {
      const sm = decodeSnapshotData(rd.snapshot.data);
      const expected = this.appliedHashAt.get(sm.index);
      if (expected !== undefined && expected !== sm.hash) {
        throw new InvariantViolation('state machine safety', `node ${node.id} restored a snapshot whose state at ${sm.index} differs from what others applied`);
      }
      node.appliedIndex = sm.index;
      node.appliedHash = sm.hash;
    }
    for (const e of rd.committedEntries) {
      if (e.index !== node.appliedIndex + 1) {
        throw new InvariantViolation('applied prefix', `node ${node.id} applies index ${e.index} after ${node.appliedIndex}`);
      }
      const c = this.committed.get(e.index);
      if (c && c.term !== e.term) {
        throw new InvariantViolation('state machine safety', `node ${node.id} applies ${e.index}/${e.term} but ${e.index}/${c.term} was committed`);
      }
      node.appliedIndex = e.index;
      node.appliedHash = fnvNumber(node.appliedHash ^ entryHash(e), e.term);
      const expected = this.appliedHashAt.get(e.index);
      if (expected === undefined) this.appliedHashAt.set(e.index, node.appliedHash);
      else if (expected !== node.appliedHash) {
        throw new InvariantViolation('state machine safety', `node ${node.id}'s applied sequence up to ${e.index} differs from another node's`);
      }
    }
  }

  /** Folds the node's newly committed entries into the global committed map. */
  private checkCommit(node: SimNode): void {
    const commit = node.raft!.status().commit;
    const first = node.storage.firstIndex();
    for (let i = Math.max(node.commitChecked + 1, first); i <= commit; i++) {
      const term = node.raft!.termAt(i);
      if (term === undefined) continue;
      const hash = i <= node.storage.lastIndex() ? entryHash(node.storage.entries(i, i + 1)[0]!) : -1;
      const c = this.committed.get(i);
      if (!c) {
        this.committed.set(i, { term, hash });
        if (i > this.maxCommitted) {
          this.maxCommitted = i;
          this.stats.committed = i;
        }
      } else if (c.term !== term || (c.hash !== -1 && hash !== -1 && c.hash !== hash)) {
        throw new InvariantViolation('committed entries are never lost', `node ${node.id} commits ${i}/${term}, but ${i}/${c.term} was committed before`);
      }
    }
    if (commit > node.commitChecked && this.stormy && node.raft!.status().state === 'leader' && this.rng.chance(0.1)) {
      this.killAfterStep.add(node.id);
    }
    node.commitChecked = Math.max(node.commitChecked, commit);
  }

  /** A leader dies right after committing, before its queued messages leave the machine. */
  private killPending(): void {
    for (const id of this.killAfterStep) {
      const node = this.nodes.get(id)!;
      if (!node.raft) continue;
      this.network = this.network.filter((m) => m.from !== id);
      node.raft = undefined;
      this.stats.crashes++;
      this.log(`n${id} crashes right after committing`);
    }
    this.killAfterStep.clear();
  }

  private onBecameLeader(node: SimNode): void {
    const s = node.raft!.status();
    this.stats.leadersElected++;
    this.log(`n${node.id} becomes leader of term ${s.term} (last ${s.lastIndex}, commit ${s.commit})`);
    for (let i = s.firstIndex; i <= this.maxCommitted; i++) {
      const c = this.committed.get(i);
      if (!c) continue;
      const t = node.raft!.termAt(i);
      if (t !== c.term) {
        throw new InvariantViolation('leader completeness', `leader ${node.id} of term ${s.term} has ${t === undefined ? 'no entry' : `term ${t}`} at committed index ${i} (committed term ${c.term})`);
      }
    }
  }

  /** After every step: at most one leader per term. */
  checkElectionSafety(): void {
    for (const node of this.live()) {
      const s = node.raft!.status();
      if (s.state !== 'leader') continue;
      const other = this.leaderOfTerm.get(s.term);
      if (other === undefined) this.leaderOfTerm.set(s.term, node.id);
      else if (other !== node.id) {
        throw new InvariantViolation('election safety', `nodes ${other} and ${node.id} were both leader in term ${s.term}`);
      }
    }
  }

  // ------------------------------------------------------------------ network

  private send(m: Message): void {
    if (m.type === MessageType.Snapshot) this.stats.snapshotsSent++;
    if (this.network.length >= NETWORK_MESSAGES_MAX) this.network.shift();
    this.network.push({ from: m.from, to: m.to, bytes: encodeMessage(m), dueTick: this.tickNow + this.rng.int(this.maxDelayTicks + 1) });
  }

  private deliverOne(): boolean {
    const due: number[] = [];
    for (let i = 0; i < this.network.length; i++) if (this.network[i]!.dueTick <= this.tickNow) due.push(i);
    if (due.length === 0) return false;
    const i = this.rng.pick(due);
    const msg = this.network[i]!;
    if (this.rng.chance(this.dupRate)) {
      this.network.push({ ...msg, dueTick: this.tickNow + this.rng.int(this.maxDelayTicks + 1) });
    }
    this.network.splice(i, 1);
    if (this.rng.chance(this.dropRate) || this.blocked.has(`${msg.from}>${msg.to}`)) return true;
    const node = this.nodes.get(msg.to);
    if (!node?.raft) return true;
    const m = decodeMessage(msg.bytes);
    node.raft.step(m);
    this.stats.messagesDelivered++;
    this.afterInput(node);
    return true;
  }

  private tickAll(): void {
    this.tickNow++;
    for (const node of this.live()) {
      // Clocks drift: each node has its own rate, and a paused one (GC, VM freeze) does not tick.
      if (!this.rng.chance(node.clockRate)) continue;
      node.raft!.tick();
      this.afterInput(node);
    }
  }

  /**
   * Like a real node that batches, a node sometimes leaves its Ready for later: a crash before
   * then loses everything in it (appended entries, votes, messages), as unsynced data would be.
   */
  private afterInput(node: SimNode): void {
    if (this.rng.chance(this.deferRate)) this.deferred.add(node.id);
    else {
      this.deferred.delete(node.id);
      this.processReady(node);
    }
  }

  private flushDeferred(all: boolean): void {
    for (const id of [...this.deferred]) {
      if (!all && !this.rng.chance(0.5)) continue;
      this.deferred.delete(id);
      const node = this.nodes.get(id)!;
      if (node.raft) this.processReady(node);
    }
  }

  // ------------------------------------------------------------------ faults and workload

  private propose(): void {
    const leaders = this.leaders();
    if (leaders.length === 0) return;
    const node = this.rng.pick(leaders);
    const data = new TextEncoder().encode(`p${++this.proposalCounter}`);
    const r = node.raft!.propose(data);
    if (r.ok) this.log(`n${node.id} propose p${this.proposalCounter} -> ${r.index}/${r.term}`);
    this.processReady(node);
  }

  private crash(): void {
    const live = this.live();
    if (live.length === 0) return;
    const node = this.rng.pick(live);
    node.raft = undefined;
    this.deferred.delete(node.id);
    this.stats.crashes++;
    this.log(`n${node.id} crashes`);
    if (this.rng.chance(0.5)) {
      // A quick reboot: back with only what it had persisted.
      this.log(`n${node.id} restarts`);
      this.start(node);
    }
  }

  private restart(): void {
    const dead = [...this.nodes.values()].filter((n) => n.raft === undefined);
    if (dead.length === 0) return;
    const node = this.rng.pick(dead);
    this.log(`n${node.id} restarts`);
    this.start(node);
  }

  private partition(): void {
    const ids = [...this.nodes.keys()];
    const kind = this.rng.int(3);
    if (kind === 0) {
      const side = new Set(ids.filter(() => this.rng.chance(0.5)));
      for (const a of ids) for (const b of ids) if (side.has(a) !== side.has(b)) this.blocked.add(`${a}>${b}`);
      this.log(`partition {${[...side].join(',')}} | rest`);
    } else if (kind === 1) {
      const a = this.rng.pick(ids);
      for (const b of ids) if (b !== a) this.blocked.add(`${a}>${b}`);
      this.log(`one-way: n${a} cannot send`);
    } else {
      const a = this.rng.pick(ids);
      for (const b of ids) if (b !== a) this.blocked.add(`${b}>${a}`);
      this.log(`one-way: n${a} cannot receive`);
    }
  }

  private heal(): void {
    this.blocked.clear();
    for (const node of this.nodes.values()) if (node.clockRate === 0) node.clockRate = 1;
    this.log('heal partitions and paused clocks');
  }

  /** A node's timers stop (long GC, starved event loop) while it still handles messages. */
  private pauseClock(): void {
    const live = this.live();
    if (live.length === 0) return;
    const node = this.rng.pick(live);
    node.clockRate = 0;
    this.log(`n${node.id}'s clock pauses`);
  }

  private changeMembership(): void {
    const leaders = this.leaders();
    if (leaders.length === 0) return;
    const leader = this.rng.pick(leaders);
    const config = leader.raft!.status().configuration;
    const target = this.rng.pick([...this.nodes.values()]);
    const member = config.members.find((m) => m.id === target.id);
    const roles: Role[] = ['voter', 'standby', 'spare'];
    let change: ConfChange;
    if (!member) change = { type: 'add', id: target.id, address: target.address, role: this.rng.pick(roles) };
    else if (this.rng.chance(0.25)) change = { type: 'remove', id: target.id };
    else change = { type: 'assign', id: target.id, role: this.rng.pick(roles.filter((r) => r !== member.role)) };
    const r = leader.raft!.proposeConfChange(change);
    if (r.ok) {
      this.stats.confChanges++;
      this.log(`n${leader.id} proposes ${JSON.stringify(change)} at ${r.index}`);
    }
    this.processReady(leader);
  }

  private transfer(): void {
    const leaders = this.leaders();
    if (leaders.length === 0) return;
    const leader = this.rng.pick(leaders);
    const voters = voterIds(leader.raft!.status().configuration).filter((id) => id !== leader.id);
    if (voters.length === 0) return;
    const to = this.rng.pick(voters);
    const r = leader.raft!.transferLeadership(to);
    if (r.ok) this.log(`n${leader.id} transfers leadership to n${to}`);
    this.processReady(leader);
  }

  private readIndex(): void {
    // Every node that believes it leads gets a read: stale leaders are the interesting ones.
    for (const leader of this.leaders()) {
      const requestId = ++this.readCounter;
      // Linearizable: the read must see everything committed anywhere before it was issued.
      if (leader.raft!.readIndex(requestId).ok) this.readsIssued.set(requestId, this.maxCommitted);
      this.processReady(leader);
    }
  }

  private compact(): void {
    const live = this.live();
    if (live.length === 0) return;
    const node = this.rng.pick(live);
    const snapIndex = node.storage.snapshot().meta.index;
    if (node.appliedIndex - snapIndex < SNAPSHOT_EVERY_ENTRIES) return;
    const index = node.appliedIndex;
    node.storage.createSnapshot(index, node.raft!.configurationAt(index), encodeSnapshotData(index, node.appliedHash));
    node.storage.compact(Math.max(0, index - SNAPSHOT_TRAILING_ENTRIES));
    this.log(`n${node.id} snapshots at ${index}`);
  }

  /**
   * The leader takes a burst of proposals, gets them to at most one follower, then is cut off:
   * this leaves divergent uncommitted suffixes across terms (the setting of Raft's Figure 8).
   */
  private burstThenIsolate(): void {
    const leaders = this.leaders();
    if (leaders.length === 0) return;
    const leader = this.rng.pick(leaders);
    const n = 1 + this.rng.int(4);
    for (let i = 0; i < n; i++) leader.raft!.propose(new TextEncoder().encode(`b${++this.proposalCounter}`));
    this.processReady(leader);
    const ids = [...this.nodes.keys()].filter((id) => id !== leader.id);
    const lucky = this.rng.chance(0.5) ? this.rng.pick(ids) : 0;
    for (let i = 0; i < this.network.length; ) {
      const m = this.network[i]!;
      if (m.from === leader.id && m.to === lucky) {
        this.network.splice(i, 1);
        const node = this.nodes.get(m.to)!;
        if (node.raft && !this.blocked.has(`${m.from}>${m.to}`)) {
          node.raft.step(decodeMessage(m.bytes));
          this.processReady(node);
        }
      } else if (m.from === leader.id) {
        this.network.splice(i, 1);
      } else i++;
    }
    const fate = this.rng.int(3);
    if (fate === 0) {
      leader.raft = undefined;
      this.deferred.delete(leader.id);
      this.stats.crashes++;
    } else {
      for (const b of ids) {
        this.blocked.add(`${leader.id}>${b}`);
        this.blocked.add(`${b}>${leader.id}`);
      }
      // A deposed leader whose timers are stalled keeps believing it leads until healed.
      if (fate === 2) leader.clockRate = 0;
    }
    this.log(`n${leader.id} burst of ${n}, reached ${lucky ? `n${lucky}` : 'nobody'}, then cut off`);
  }

  /** One scheduler step with faults. */
  step(): void {
    this.stepNow++;
    this.stats.steps++;
    // Weather: stormy periods bring crashes, partitions and leader kills; calm ones let work finish.
    if (this.stepNow % 250 === 1) {
      this.stormy = this.rng.chance(0.6);
      this.log(this.stormy ? 'storm' : 'calm');
    }
    const r = this.rng.next();
    const fault = this.stormy;
    if (r < 0.6) {
      if (!this.deliverOne()) this.tickAll();
    } else if (r < 0.8) this.tickAll();
    else if (r < 0.86) this.propose();
    else if (r < 0.88) this.compact();
    else if (r < 0.9) this.readIndex();
    else if (r < 0.908) {
      if (fault) this.crash();
    }
    else if (r < 0.92) this.restart();
    else if (r < 0.927) {
      if (fault) this.partition();
    } else if (r < 0.93) {
      if (fault) this.pauseClock();
    }
    else if (r < 0.935) this.heal();
    else if (r < 0.97) this.changeMembership();
    else if (r < 0.975) this.transfer();
    else if (r < 0.98) {
      this.dropRate = this.rng.next() * 0.2;
    } else {
      if (fault) this.burstThenIsolate();
    }
    // Clients keep reading from whoever claims to lead, also while two nodes do (old and new).
    if (r < 0.6 && this.rng.chance(0.2) && this.leaders().length > 1) this.readIndex();
    if (this.deferred.size > 0 && this.rng.chance(0.3)) this.flushDeferred(false);
    this.killPending();
    this.checkElectionSafety();
  }

  /**
   * A leader whose term no voter or standby of its configuration has passed. Removed servers
   * and spares hear nothing from it and may keep a higher term of their own for good (they ran
   * elections before they learnt their fate); they must not matter.
   */
  private leadsItsReplicas(leader: SimNode): boolean {
    const s = leader.raft!.status();
    return s.configuration.members.every((m) => {
      if (m.role === 'spare') return true;
      const r = this.nodes.get(m.id)?.raft;
      return r === undefined || r.status().term <= s.term;
    });
  }

  /**
   * Heals every fault, then requires a leader and the commit of fresh proposals within a bound.
   */
  checkLiveness(): void {
    this.heal();
    for (const node of this.nodes.values()) if (!node.raft) this.start(node);
    this.dropRate = 0;
    this.dupRate = 0;
    this.stormy = false;
    this.deferRate = 0;
    this.flushDeferred(true);
    this.log('liveness phase: all nodes up, network reliable');
    const boundTicks = 60 * ELECTION_TICKS;
    const want = new Map<string, { index: number; term: number }>();
    const startTick = this.tickNow;
    const proposeOn = (leader: SimNode, key: string): void => {
      const r = leader.raft!.propose(new TextEncoder().encode(key));
      if (r.ok) want.set(key, { index: r.index, term: r.term });
      this.processReady(leader);
    };
    while (this.tickNow - startTick < boundTicks) {
      while (this.deliverOne()) this.checkElectionSafety();
      this.tickAll();
      this.checkElectionSafety();
      const leader = this.leaders().find((l) => this.leadsItsReplicas(l));
      if (!leader) continue;
      const leaderTerm = leader.raft!.status().term;
      for (let i = 0; i < 5; i++) if (!want.has(`live${i}`)) proposeOn(leader, `live${i}`);
      let done = want.size === 5;
      for (const [key, at] of want) {
        const c = this.committed.get(at.index);
        if (c && c.term === at.term) continue;
        done = false;
        // Proposed under an older leader and lost with it: the client retries on the new one.
        if (at.term < leaderTerm) proposeOn(leader, key);
      }
      if (done) {
        const s = leader.raft!.status();
        const replicas = s.configuration.members.filter((m) => m.role !== 'spare').map((m) => m.id);
        const maxIndex = Math.max(...[...want.values()].map((w) => w.index));
        if (replicas.every((id) => this.nodes.get(id)!.appliedIndex >= maxIndex)) return;
      }
    }
    const states = this.live().map((n) => {
      const s = n.raft!.status();
      return `n${n.id}:${s.state}/t${s.term}/c${s.commit}/l${s.lastIndex}/roles=${s.configuration.members.map((m) => `${m.id}${m.role[0]}`).join('')}`;
    });
    throw new InvariantViolation('liveness', `no leader committing fresh proposals within ${boundTicks} ticks after healing: ${states.join(' ')}`);
  }
}

export function runSimulation(options: SimOptions): SimResult {
  let sim: Simulation | undefined;
  try {
    sim = new Simulation(options);
    for (let i = 0; i < options.steps; i++) sim.step();
    sim.checkLiveness();
    return { ok: true, seed: options.seed, stats: sim.stats };
  } catch (e) {
    const stats = sim?.stats ?? { nodes: 0, steps: 0, messagesDelivered: 0, committed: 0, leadersElected: 0, crashes: 0, confChanges: 0, snapshotsSent: 0 };
    const trace = sim?.traceLinesSnapshot() ?? [];
    if (e instanceof InvariantViolation) {
      return { ok: false, seed: options.seed, invariant: e.invariant, message: e.message, step: sim?.stepNow ?? 0, trace, stats };
    }
    const err = e as Error;
    return { ok: false, seed: options.seed, invariant: 'exception', message: `${err.message}\n${err.stack ?? ''}`, step: sim?.stepNow ?? 0, trace, stats };
  }
}
