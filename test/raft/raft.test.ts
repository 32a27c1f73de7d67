import { describe, expect, it } from 'vitest';
import {
  EntryType,
  MemoryStorage,
  MessageType,
  NotLeaderError,
  RaftError,
  RaftNode,
  decodeConfChange,
} from '../../src/raft/index.ts';
import type { Entry, Message, Ready } from '../../src/raft/index.ts';
import { Harness, texts } from './harness.ts';
import type { HarnessNode } from './harness.ts';

describe('election', () => {
  it('a single bootstrapped node elects itself and commits proposals', () => {
    const h = new Harness([1]);
    const leader = h.electLeader();
    expect(leader.id).toBe(1);
    const index = h.propose(leader, 'a');
    expect(leader.raft.status().commit).toBe(index);
    expect(texts(leader.applied)).toEqual(['a']);
  });

  it('three nodes elect exactly one leader and replicate to all', () => {
    const h = new Harness([1, 2, 3]);
    const leader = h.electLeader();
    const term = leader.raft.status().term;
    const leaders = [...h.nodes.values()].filter((n) => n.raft.status().state === 'leader');
    expect(leaders).toHaveLength(1);
    h.propose(leader, 'x');
    h.propose(leader, 'y');
    h.tick(undefined, 2);
    for (const n of h.nodes.values()) {
      expect(texts(n.applied)).toEqual(['x', 'y']);
      expect(n.raft.status().term).toBe(term);
      expect(n.raft.status().leaderId).toBe(leader.id);
    }
  });

  it('a follower refuses proposals and names the leader', () => {
    const h = new Harness([1, 2, 3]);
    const leader = h.electLeader();
    h.tick(undefined, 2);
    const follower = [...h.nodes.values()].find((n) => n.id !== leader.id)!;
    const r = follower.raft.propose(new Uint8Array([1]));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).toBeInstanceOf(NotLeaderError);
      expect((r.error as NotLeaderError).leaderId).toBe(leader.id);
      expect(r.error.code).toBe('NOT_LEADER');
    }
  });

  it('check-quorum: an isolated leader steps down within two election timeouts, so writes fail', () => {
    const h = new Harness([1, 2, 3]);
    const leader = h.electLeader();
    h.isolate(leader.id);
    h.tick([leader.id], 20);
    expect(leader.raft.status().state).toBe('follower');
    expect(leader.raft.propose(new Uint8Array([1])).ok).toBe(false);
  });

  it('pre-vote: a partitioned node rejoining does not disrupt the leader or bump the term', () => {
    const h = new Harness([1, 2, 3]);
    const leader = h.electLeader();
    const term = leader.raft.status().term;
    const other = [...h.nodes.keys()].find((id) => id !== leader.id)!;
    h.isolate(other);
    h.tick(undefined, 100);
    expect(h.node(other).raft.status().term).toBe(term);
    h.heal();
    h.tick(undefined, 5);
    expect(h.leader()!.id).toBe(leader.id);
    expect(leader.raft.status().term).toBe(term);
  });

  it('without pre-vote a rejoining node does bump the term (the contrast that shows pre-vote works)', () => {
    const h = new Harness([1, 2, 3], { preVote: false, checkQuorum: false });
    const leader = h.electLeader();
    const term = leader.raft.status().term;
    const other = [...h.nodes.keys()].find((id) => id !== leader.id)!;
    h.isolate(other);
    h.tick(undefined, 100);
    expect(h.node(other).raft.status().term).toBeGreaterThan(term);
  });
});

describe('leadership transfer', () => {
  it('hands leadership to the chosen voter', () => {
    const h = new Harness([1, 2, 3]);
    const leader = h.electLeader();
    h.propose(leader, 'a');
    const to = [...h.nodes.keys()].find((id) => id !== leader.id)!;
    expect(leader.raft.transferLeadership(to).ok).toBe(true);
    h.process(leader);
    h.deliverAll();
    expect(h.leader()!.id).toBe(to);
    expect(leader.raft.status().state).toBe('follower');
    h.propose(h.leader()!, 'b');
    for (const n of h.nodes.values()) expect(texts(n.applied)).toEqual(['a', 'b']);
  });

  it('with no target given, picks the most up-to-date voter (shutdown on SIGTERM)', () => {
    const h = new Harness([1, 2, 3]);
    const leader = h.electLeader();
    h.propose(leader, 'a');
    const [behind, ahead] = [1, 2, 3].filter((id) => id !== leader.id);
    h.isolate(behind!);
    h.propose(leader, 'b');
    expect(leader.raft.transferLeadership().ok).toBe(true);
    expect(leader.raft.status().leadTransferee).toBe(ahead);
    h.process(leader);
    h.deliverAll();
    expect(h.leader()!.id).toBe(ahead);
    expect(new Harness([1]).electLeader().raft.transferLeadership().ok).toBe(false);
  });

  it('refuses proposals while transferring and rejects non-voters as target', () => {
    const h = new Harness([1, 2, 3]);
    const leader = h.electLeader();
    const to = [...h.nodes.keys()].find((id) => id !== leader.id)!;
    h.isolate(to);
    expect(leader.raft.transferLeadership(to).ok).toBe(true);
    const r = leader.raft.propose(new Uint8Array([1]));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('TRANSFER_IN_PROGRESS');
    const bad = leader.raft.transferLeadership(99);
    expect(bad.ok).toBe(false);
  });
});

describe('membership', () => {
  it('adds a spare (receives nothing), promotes to standby (replicates), then voter', () => {
    const h = new Harness([1, 2, 3]);
    const leader = h.electLeader();
    h.propose(leader, 'a');
    const n4 = h.addNode(4);
    const add = leader.raft.proposeConfChange({ type: 'add', id: 4, address: '127.0.0.1:9004', role: 'spare' });
    expect(add.ok).toBe(true);
    h.process(leader);
    h.tick(undefined, 3);
    expect(n4.raft.status().lastIndex).toBe(0);
    expect(h.messagesSent.some((m) => m.to === 4)).toBe(false);

    expect(leader.raft.proposeConfChange({ type: 'assign', id: 4, role: 'standby' }).ok).toBe(true);
    h.process(leader);
    h.tick(undefined, 3);
    expect(texts(n4.applied)).toEqual(['a']);
    expect(n4.raft.status().configuration.members.find((m) => m.id === 4)!.role).toBe('standby');
    // A standby does not count: with two voters down the leader cannot commit.
    const others = [1, 2, 3].filter((id) => id !== leader.id);
    h.isolate(others[0]!);
    h.isolate(others[1]!);
    h.blocked.delete(`${leader.id}>4`);
    h.blocked.delete(`4>${leader.id}`);
    const idx = leader.raft.propose(new Uint8Array([7]));
    expect(idx.ok).toBe(true);
    h.process(leader);
    h.tick([leader.id, 4], 1);
    expect(leader.raft.status().commit).toBeLessThan(idx.ok ? idx.index : 0);
    h.heal();
    h.tick(undefined, 3);

    const l2 = h.electLeader();
    expect(l2.raft.proposeConfChange({ type: 'assign', id: 4, role: 'voter' }).ok).toBe(true);
    h.process(l2);
    h.tick(undefined, 3);
    for (const n of h.nodes.values()) {
      expect(n.raft.status().configuration.members.filter((m) => m.role === 'voter').map((m) => m.id).sort()).toEqual([1, 2, 3, 4]);
    }
  });

  it('allows one change at a time and refuses to remove or demote the leader', () => {
    const h = new Harness([1, 2, 3]);
    const leader = h.electLeader();
    h.tick(undefined, 2);
    const first = leader.raft.proposeConfChange({ type: 'add', id: 4, address: 'x:1', role: 'spare' });
    expect(first.ok).toBe(true);
    const second = leader.raft.proposeConfChange({ type: 'add', id: 5, address: 'x:2', role: 'spare' });
    expect(second.ok).toBe(false);
    if (!second.ok) expect(second.error.code).toBe('CONF_CHANGE_IN_PROGRESS');
    h.process(leader);
    h.deliverAll();
    const self = leader.raft.proposeConfChange({ type: 'remove', id: leader.id });
    expect(self.ok).toBe(false);
    if (!self.ok) expect(self.error.code).toBe('INVALID_CONF_CHANGE');
    const dup = leader.raft.proposeConfChange({ type: 'add', id: 4, address: 'x:3', role: 'spare' });
    expect(dup.ok).toBe(false);
    const entry = leader.applied.find((e) => e.type === EntryType.ConfChange)!;
    expect(decodeConfChange(entry.data)).toEqual({ type: 'add', id: 4, address: 'x:1', role: 'spare' });
  });

  it('removing a voter shrinks the quorum', () => {
    const h = new Harness([1, 2, 3, 4]);
    const leader = h.electLeader();
    h.tick(undefined, 2);
    const [victim, down] = [1, 2, 3, 4].filter((id) => id !== leader.id);
    // Before: with two of four voters cut off nothing commits.
    h.isolate(victim!);
    h.isolate(down!);
    const stuck = leader.raft.propose(new Uint8Array([1]));
    expect(stuck.ok).toBe(true);
    h.process(leader);
    h.deliverAll();
    expect(leader.raft.status().commit).toBeLessThan(stuck.ok ? stuck.index : 0);
    h.heal();
    h.tick(undefined, 2);
    expect(leader.raft.proposeConfChange({ type: 'remove', id: victim! }).ok).toBe(true);
    h.process(leader);
    h.tick(undefined, 2);
    // After: three voters, one cut off, two of three commit.
    h.isolate(down!);
    h.isolate(victim!);
    const r = h.propose(leader, 'after-remove');
    expect(leader.raft.status().commit).toBeGreaterThanOrEqual(r);
    expect(leader.raft.status().configuration.members.map((m) => m.id)).not.toContain(victim);
  });
});

describe('snapshots', () => {
  it('a follower behind the compacted log gets the snapshot in chunks and surfaces it in Ready', () => {
    const h = new Harness([1, 2, 3], { snapshotChunkBytes: 100 });
    const leader = h.electLeader();
    h.tick(undefined, 2);
    const lagging = [1, 2, 3].find((id) => id !== leader.id)!;
    h.isolate(lagging);
    for (let i = 0; i < 20; i++) h.propose(leader, `e${i}`);
    const applied = leader.raft.status().applied;
    const data = new Uint8Array(1000).map((_, i) => i & 0xff);
    leader.storage.createSnapshot(applied, leader.raft.configurationAt(applied), data);
    leader.storage.compact(applied);
    h.heal();
    h.tick(undefined, 5);
    const n = h.node(lagging);
    expect(n.snapshots).toHaveLength(1);
    expect(n.snapshots[0]!.meta.index).toBe(applied);
    expect(n.snapshots[0]!.data).toEqual(data);
    expect(n.snapshots[0]!.meta.configuration.members.map((m) => m.id)).toEqual([1, 2, 3]);
    const chunks = h.messagesSent.filter((m) => m.type === MessageType.Snapshot && m.to === lagging);
    expect(chunks.length).toBeGreaterThanOrEqual(10);
    h.propose(leader, 'after');
    expect(texts(n.applied)).toEqual(['after']);
    expect(n.raft.status().commit).toBe(leader.raft.status().commit);
  });
});

describe('ReadIndex', () => {
  it('answers after a heartbeat round confirms leadership; an isolated leader does not answer', () => {
    const h = new Harness([1, 2, 3]);
    const leader = h.electLeader();
    h.propose(leader, 'a');
    expect(leader.raft.readIndex(42).ok).toBe(true);
    h.process(leader);
    h.deliverAll();
    expect(leader.readStates).toEqual([{ index: leader.raft.status().commit, requestId: 42 }]);
    h.isolate(leader.id);
    expect(leader.raft.readIndex(43).ok).toBe(true);
    h.process(leader);
    h.deliverAll();
    expect(leader.readStates.map((r) => r.requestId)).toEqual([42]);
  });
});

describe('restart', () => {
  it('recovers term, vote, log and configuration from storage, and does not re-apply', () => {
    const h = new Harness([1, 2, 3]);
    const leader = h.electLeader();
    h.propose(leader, 'a');
    expect(leader.raft.proposeConfChange({ type: 'add', id: 9, address: 'h:9', role: 'standby' }).ok).toBe(true);
    h.process(leader);
    h.tick(undefined, 2);
    const before = leader.raft.status();
    const restarted = h.restart(leader.id);
    const after = restarted.raft.status();
    expect(after.term).toBe(before.term);
    expect(after.lastIndex).toBe(before.lastIndex);
    expect(after.commit).toBe(before.commit);
    expect(after.configuration).toEqual(before.configuration);
    expect(after.state).toBe('follower');
  });
});

describe('robustness', () => {
  it('ignores messages for another node, from itself, and with inconsistent entries', () => {
    const h = new Harness([1, 2, 3]);
    const leader = h.electLeader();
    const f = h.node([1, 2, 3].find((id) => id !== leader.id)!);
    const before = f.raft.status();
    const base: Message = { type: MessageType.Append, from: leader.id, to: f.id, term: before.term, logTerm: 0, index: 0, commit: 0, reject: false, rejectHint: 0, context: 0, entries: [] };
    f.raft.step({ ...base, to: 77 });
    f.raft.step({ ...base, from: f.id });
    f.raft.step({ ...base, entries: [{ term: before.term + 5, index: 1, type: EntryType.Normal, data: new Uint8Array() }] });
    f.raft.step({ ...base, index: 5, entries: [{ term: 1, index: 9, type: EntryType.Normal, data: new Uint8Array() }] });
    f.raft.step({ ...base, term: -1 });
    f.raft.step({ ...base, commit: 1e9 });
    expect(f.raft.status().lastIndex).toBe(before.lastIndex);
    // A response claiming a match past the leader's log is ignored, not a crash.
    leader.raft.step({ ...base, type: MessageType.AppendResponse, from: f.id, to: leader.id, term: leader.raft.status().term, index: 1e6 });
    expect(leader.raft.status().commit).toBeLessThan(1e6);
  });

  it('bootstrap refuses non-empty storage and configs without voters', () => {
    const s = new MemoryStorage();
    RaftNode.bootstrap(s, { members: [{ id: 1, address: 'a', role: 'voter' }] });
    expect(() => RaftNode.bootstrap(s, { members: [{ id: 1, address: 'a', role: 'voter' }] })).toThrow(RaftError);
    expect(() => RaftNode.bootstrap(new MemoryStorage(), { members: [{ id: 1, address: 'a', role: 'spare' }] })).toThrow(/voter/);
  });
});

describe('replication flow control', () => {
  it('fast backtracking: a follower with a long divergent suffix is repaired in a few round trips', () => {
    const h = new Harness([1, 2, 3], { maxEntriesBytesPerAppend: 64 * 1024 });
    const old = h.electLeader();
    h.propose(old, 'common');
    h.isolate(old.id);
    for (let i = 0; i < 100; i++) old.raft.propose(new TextEncoder().encode(`lost${i}`));
    h.process(old);
    h.deliverAll();
    const others = [1, 2, 3].filter((id) => id !== old.id);
    h.tick(others, 40);
    const leader = h.leader()!;
    expect(leader.id).not.toBe(old.id);
    for (let i = 0; i < 100; i++) leader.raft.propose(new TextEncoder().encode(`kept${i}`));
    h.process(leader);
    h.deliverAll();
    // A fresh leader starts probing the old one at its own last index, far past the divergence.
    const third = others.find((id) => id !== leader.id)!;
    expect(leader.raft.transferLeadership(third).ok).toBe(true);
    h.process(leader);
    h.deliverAll();
    expect(h.leader()!.id).toBe(third);
    const sentBefore = h.messagesSent.length;
    h.heal();
    h.tick(undefined, 3);
    const rejections = h.messagesSent.slice(sentBefore).filter((m) => m.type === MessageType.AppendResponse && m.from === old.id && m.reject);
    expect(rejections.length).toBeGreaterThan(0);
    expect(rejections.length).toBeLessThanOrEqual(3);
    expect(texts(old.applied).filter((t) => t.startsWith('lost'))).toEqual([]);
    expect(texts(old.applied).filter((t) => t.startsWith('kept'))).toHaveLength(100);
  });

  it('pipelining is bounded: at most maxInflightAppends appends to a silent follower', () => {
    const h = new Harness([1, 2, 3], { maxInflightAppends: 4 });
    const leader = h.electLeader();
    h.propose(leader, 'warm');
    h.tick(undefined, 1);
    const silent = [1, 2, 3].find((id) => id !== leader.id)!;
    h.blocked.add(`${silent}>${leader.id}`);
    const sentBefore = h.messagesSent.length;
    for (let i = 0; i < 50; i++) h.propose(leader, `e${i}`);
    const appends = h.messagesSent.slice(sentBefore).filter((m) => m.type === MessageType.Append && m.to === silent && m.entries.length > 0);
    expect(appends.length).toBe(4);
    // The other follower keeps the cluster committing.
    expect(leader.raft.status().commit).toBe(leader.raft.status().lastIndex);
    expect(leader.raft.status().progress![silent]!.inflight).toBe(4);
  });

  it('pipelining is bounded by bytes: a silent follower holds at most maxInflightBytes of appends, one large one always goes', () => {
    const h = new Harness([1, 2, 3], { maxInflightBytes: 3000 });
    const leader = h.electLeader();
    h.propose(leader, 'warm');
    h.tick(undefined, 1);
    const silent = [1, 2, 3].find((id) => id !== leader.id)!;
    h.blocked.add(`${silent}>${leader.id}`);
    const sentBefore = h.messagesSent.length;
    const big = 'x'.repeat(1000);
    for (let i = 0; i < 20; i++) h.propose(leader, `${i}${big}`);
    const toSilent = () => h.messagesSent.slice(sentBefore).filter((m) => m.type === MessageType.Append && m.to === silent && m.entries.length > 0);
    const bytesSent = toSilent().reduce((sum, m) => sum + m.entries.reduce((n, e) => n + e.data.length, 0), 0);
    // Sending stops at the first append that reaches the bound: under it plus one append.
    expect(bytesSent).toBeGreaterThanOrEqual(3000);
    expect(bytesSent).toBeLessThan(3000 + 1100);
    expect(leader.raft.status().commit).toBe(leader.raft.status().lastIndex);
    // An entry above the bound still goes, alone, once nothing is in flight.
    h.blocked.delete(`${silent}>${leader.id}`);
    h.tick(undefined, 3);
    h.blocked.add(`${silent}>${leader.id}`);
    const before = h.messagesSent.length;
    h.propose(leader, 'y'.repeat(5000));
    const huge = h.messagesSent.slice(before).filter((m) => m.type === MessageType.Append && m.to === silent && m.entries.length > 0);
    expect(huge.length).toBe(1);
  });
});

describe('commit broadcasts', () => {
  it('a follower with entries past the commit in flight gets no commit-only append: the next commit tells it', () => {
    const h = new Harness([1, 2, 3]);
    const leader = h.electLeader();
    h.propose(leader, 'warm');
    h.tick(undefined, 1);
    const sentBefore = h.messagesSent.length;
    // Two proposals in flight to both followers before any of them answers.
    for (const text of ['a', 'b']) {
      const r = leader.raft.propose(new TextEncoder().encode(text));
      if (!r.ok) throw r.error;
      h.process(leader);
    }
    h.deliverAll();
    const last = leader.raft.status().lastIndex;
    const commitOnly = h.messagesSent.slice(sentBefore).filter((m) => m.type === MessageType.Append && m.from === leader.id && m.entries.length === 0);
    // 'a' committing told nobody (b was in flight to both); 'b' committing tells each follower once.
    expect(commitOnly.map((m) => [m.to, m.commit]).sort()).toEqual(
      [1, 2, 3].filter((id) => id !== leader.id).map((id) => [id, last]).sort(),
    );
    for (const node of h.nodes.values()) {
      expect(node.raft.status().commit).toBe(last);
      expect(texts(node.applied).slice(-2)).toEqual(['a', 'b']);
    }
  });

  it('a follower whose answer is lost still learns the commit from heartbeats', () => {
    const h = new Harness([1, 2, 3]);
    const leader = h.electLeader();
    h.propose(leader, 'warm');
    const [slow] = [1, 2, 3].filter((id) => id !== leader.id);
    h.blocked.add(`${leader.id}>${slow}`);
    h.propose(leader, 'x');
    h.blocked.delete(`${leader.id}>${slow}`);
    h.tick(undefined, 3);
    const last = leader.raft.status().lastIndex;
    expect(h.node(slow!).raft.status().commit).toBe(last);
    expect(texts(h.node(slow!).applied).at(-1)).toBe('x');
  });
});

describe('leader persistence and commit', () => {
  it('the leader counts its own entries towards commit only after advance() (it may send before writing)', () => {
    const storage = new MemoryStorage();
    RaftNode.bootstrap(storage, { members: [{ id: 1, address: 'a', role: 'voter' }] });
    const raft = new RaftNode({ id: 1, storage, electionTimeoutTicks: 10, heartbeatTicks: 1, random: () => 0.5 });
    raft.campaign();
    const drain = () => {
      while (raft.hasReady()) {
        const rd = raft.ready();
        storage.append(rd.entries);
        if (rd.hardState) storage.setHardState(rd.hardState);
        raft.advance(rd);
      }
    };
    drain();
    const r = raft.propose(new Uint8Array([42]));
    expect(r.ok).toBe(true);
    const first = raft.ready();
    expect(first.entries.map((e) => e.index)).toEqual([r.ok ? r.index : -1]);
    expect(first.committedEntries).toEqual([]);
    expect(raft.status().commit).toBeLessThan(r.ok ? r.index : 0);
    storage.append(first.entries);
    raft.advance(first);
    expect(raft.status().commit).toBe(r.ok ? r.index : -1);
    const second = raft.ready();
    expect(second.committedEntries.map((e) => e.data[0])).toEqual([42]);
    raft.advance(second);
  });
});

describe('asynchronous storage writes', () => {
  /** A node of a cluster of `voters` whose entries are handed over, then persisted only when the test says. */
  function asyncLeader(): { raft: RaftNode; storage: MemoryStorage; handedOver: Entry[]; take: () => Ready } {
    const storage = new MemoryStorage();
    RaftNode.bootstrap(storage, { members: [{ id: 1, address: 'a', role: 'voter' }] });
    const raft = new RaftNode({ id: 1, storage, electionTimeoutTicks: 10, heartbeatTicks: 1, random: () => 0.5, asyncStorageWrites: true });
    const handedOver: Entry[] = [];
    const take = (): Ready => {
      const rd = raft.ready();
      handedOver.push(...rd.entries);
      if (rd.hardState) storage.setHardState(rd.hardState);
      raft.advance(rd);
      return rd;
    };
    raft.campaign();
    while (raft.hasReady()) take();
    return { raft, storage, handedOver, take };
  }

  function persistAll(raft: RaftNode, storage: MemoryStorage, handedOver: Entry[]): void {
    storage.append(handedOver.splice(0));
    const last = storage.lastIndex();
    raft.persisted(last, storage.term(last));
  }

  it('hands each entry over once, counts it towards commit and applies it only once persisted() says it is durable', () => {
    const { raft, storage, handedOver, take } = asyncLeader();
    persistAll(raft, storage, handedOver);
    while (raft.hasReady()) take();
    const r1 = raft.propose(new Uint8Array([1]));
    const first = take();
    expect(first.entries.map((e) => e.data[0])).toEqual([1]);
    // The write of entry 1 is still on the disk: the next Ready carries only what came since.
    const r2 = raft.propose(new Uint8Array([2]));
    const second = take();
    expect(second.entries.map((e) => e.data[0])).toEqual([2]);
    expect(second.committedEntries).toEqual([]);
    expect(raft.hasReady()).toBe(false);
    expect(raft.committedIndex()).toBeLessThan(r1.ok ? r1.index : 0);
    // Durable up to entry 1 only: that one commits and is applied, entry 2 not yet.
    storage.append(handedOver.splice(0, 1));
    raft.persisted(r1.ok ? r1.index : -1, r1.ok ? r1.term : -1);
    expect(raft.committedIndex()).toBe(r1.ok ? r1.index : -1);
    expect(take().committedEntries.map((e) => e.data[0])).toEqual([1]);
    persistAll(raft, storage, handedOver);
    expect(raft.committedIndex()).toBe(r2.ok ? r2.index : -1);
    expect(take().committedEntries.map((e) => e.data[0])).toEqual([2]);
    expect(raft.hasReady()).toBe(false);
  });

  it('a follower applies committed entries only up to what it persisted, and acknowledges what it appended', () => {
    const h = new Harness([1, 2, 3]);
    const leader = h.electLeader();
    const r = leader.raft.propose(new Uint8Array([7]));
    expect(r.ok).toBe(true);
    h.process(leader);
    h.deliverAll();
    const index = r.ok ? r.index : -1;
    // A fresh async follower at the leader's log: it gets the entry and the commit in one Append.
    const storage = new MemoryStorage();
    const follower = new RaftNode({ id: 9, storage, electionTimeoutTicks: 10, heartbeatTicks: 1, random: () => 0.5, asyncStorageWrites: true });
    follower.step({
      type: MessageType.Append,
      from: leader.id,
      to: 9,
      term: leader.raft.status().term,
      logTerm: 0,
      index: 0,
      commit: index,
      reject: false,
      rejectHint: 0,
      context: 0,
      entries: leader.storage.entries(1, index + 1),
    });
    const rd = follower.ready();
    expect(rd.entries.map((e) => e.index).at(-1)).toBe(index);
    expect(rd.committedEntries).toEqual([]);
    const ack = rd.messages.find((m) => m.type === MessageType.AppendResponse);
    expect(ack?.index).toBe(index);
    follower.advance(rd);
    expect(follower.hasReady()).toBe(false);
    storage.append(rd.entries);
    follower.persisted(index, rd.entries.at(-1)!.term);
    const after = follower.ready();
    expect(after.entries).toEqual([]);
    expect(after.committedEntries.map((e) => e.index).at(-1)).toBe(index);
    follower.advance(after);
  });

  it('persisted() of an entry replaced meanwhile is ignored; the replacement is handed over again', () => {
    const storage = new MemoryStorage();
    const raft = new RaftNode({ id: 9, storage, electionTimeoutTicks: 10, heartbeatTicks: 1, random: () => 0.5, asyncStorageWrites: true });
    const entry = (index: number, term: number): Entry => ({ index, term, type: EntryType.Normal, data: new Uint8Array([index]) });
    const append = (term: number, index: number, logTerm: number, entries: Entry[]): void =>
      raft.step({ type: MessageType.Append, from: 1, to: 9, term, logTerm, index, commit: 0, reject: false, rejectHint: 0, context: 0, entries });
    append(1, 0, 0, [entry(1, 1), entry(2, 1), entry(3, 1)]);
    const first = raft.ready();
    raft.advance(first);
    expect(first.entries.map((e) => e.index)).toEqual([1, 2, 3]);
    // A new leader replaces entries 2..3 while the write of 1..3 is on the disk.
    append(2, 1, 1, [entry(2, 2)]);
    const second = raft.ready();
    raft.advance(second);
    expect(second.entries.map((e) => `${e.index}@${e.term}`)).toEqual(['2@2']);
    storage.append(first.entries);
    raft.persisted(3, 1);
    expect(raft.status().lastIndex).toBe(2);
    storage.append(second.entries);
    raft.persisted(2, 2);
    expect(raft.hasReady()).toBe(false);
    expect(storage.lastIndex()).toBe(2);
    expect(storage.term(2)).toBe(2);
  });

  it('persisted() without asyncStorageWrites is refused: advance() reports writes there', () => {
    const storage = new MemoryStorage();
    const raft = new RaftNode({ id: 1, storage, electionTimeoutTicks: 10, heartbeatTicks: 1, random: () => 0.5 });
    expect(() => raft.persisted(1, 1)).toThrow(/asyncStorageWrites/);
  });
});

describe('membership changes and elections (issue 20)', () => {
  const roleIn = (n: HarnessNode, id: number) => n.raft.status().configuration.members.find((m) => m.id === id)?.role;

  it('a voter whose own uncommitted entry demotes it still campaigns, leads without counting itself, and hands over once it commits', () => {
    const h = new Harness([1, 2, 3]);
    const leader = h.electLeader();
    h.tick(undefined, 2);
    const [a, b] = [1, 2, 3].filter((id) => id !== leader.id) as [number, number];
    expect(leader.raft.proposeConfChange({ type: 'assign', id: b, role: 'standby' }).ok).toBe(true);
    h.process(leader);
    h.tick(undefined, 3);
    // Voters now: the leader and a. The leader appends "a becomes a standby", sends it to a
    // only, and crashes before its own write: a holds the longest log, and its latest
    // configuration says it may not vote.
    expect(leader.raft.proposeConfChange({ type: 'assign', id: a, role: 'standby' }).ok).toBe(true);
    const unwritten = leader.raft.ready();
    for (const m of unwritten.messages) if (m.to === a) h.node(a).raft.step(m);
    h.process(h.node(a));
    const restarted = h.restart(leader.id);
    expect(restarted.raft.status().lastIndex).toBeLessThan(h.node(a).raft.status().lastIndex);
    expect(roleIn(h.node(a), a)).toBe('standby');
    expect(roleIn(restarted, a)).toBe('voter');

    // a wins the old leader's vote (a's log is longer), commits its demotion with that vote
    // alone, then steps down and hands leadership to the only voter left.
    const l2 = h.electLeader(200);
    expect(h.node(a).readies.some((rd) => rd.softState?.state === 'leader')).toBe(true);
    expect(l2.id).toBe(leader.id);
    expect(h.node(a).raft.status().state).toBe('follower');
    const index = h.propose(l2, 'after');
    h.tick(undefined, 2);
    for (const n of h.nodes.values()) {
      expect(roleIn(n, a)).toBe('standby');
      expect(n.raft.status().commit).toBeGreaterThanOrEqual(index);
      expect(texts(n.applied)).toContain('after');
    }
  });

  for (const fate of ['removed', 'spare'] as const) {
    it(`a ${fate} node's answer of a higher term does not depose a leader that a quorum supports`, () => {
      const h = new Harness([1, 2, 3]);
      const leader = h.electLeader();
      h.tick(undefined, 2);
      const term = leader.raft.status().term;
      const [a, x] = [1, 2, 3].filter((id) => id !== leader.id) as [number, number];
      h.isolate(x);
      const sentBefore = h.messagesSent.length;
      h.tick([leader.id], 1);
      // A heartbeat to x that the network holds back until x is out.
      const late = h.messagesSent.slice(sentBefore).find((m) => m.to === x && m.type === MessageType.Heartbeat)!;
      expect(late).toBeDefined();
      const change = fate === 'removed' ? ({ type: 'remove', id: x } as const) : ({ type: 'assign', id: x, role: 'spare' } as const);
      expect(leader.raft.proposeConfChange(change).ok).toBe(true);
      h.process(leader);
      h.tick(undefined, 3);
      expect(roleIn(leader, x)).toBe(fate === 'removed' ? undefined : 'spare');
      // Meanwhile x, cut off and still a voter by its own log, ran elections: its disk holds a higher term.
      const xs = h.node(x).storage;
      xs.setHardState({ ...xs.initialState().hardState, term: term + 5, vote: x });
      h.restart(x);
      h.heal();
      h.node(x).raft.step(late);
      h.process(h.node(x));
      h.deliverAll();
      h.tick(undefined, 30);
      expect(leader.raft.status().state).toBe('leader');
      expect(leader.raft.status().term).toBe(term);
      expect(h.node(a).raft.status().term).toBe(term);
      const index = h.propose(leader, 'still here');
      expect(leader.raft.status().commit).toBeGreaterThanOrEqual(index);
    });
  }

  it('a standby of a higher term makes a supported leader campaign again at once, not step down for an election timeout', () => {
    const h = new Harness([1, 2, 3]);
    const leader = h.electLeader();
    h.tick(undefined, 2);
    const term = leader.raft.status().term;
    const x = [1, 2, 3].find((id) => id !== leader.id)!;
    expect(leader.raft.proposeConfChange({ type: 'assign', id: x, role: 'standby' }).ok).toBe(true);
    h.process(leader);
    h.tick(undefined, 3);
    expect(roleIn(h.node(x), x)).toBe('standby');
    h.isolate(x);
    const xs = h.node(x).storage;
    xs.setHardState({ ...xs.initialState().hardState, term: term + 5, vote: x });
    h.restart(x);
    h.propose(leader, 'while away');
    h.heal();
    h.tick(undefined, 2);
    expect(h.leader()?.id).toBe(leader.id);
    expect(leader.raft.status().term).toBe(term + 6);
    h.tick(undefined, 2);
    expect(texts(h.node(x).applied)).toContain('while away');
    expect(h.node(x).raft.status().term).toBe(term + 6);
  });
});
