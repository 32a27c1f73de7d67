import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CompactedError,
  compactionIndex,
  EntryType,
  MemoryStorage,
  MessageType,
  RaftError,
  RaftNode,
  snapshotDue,
  UnavailableError,
} from '../../src/raft/index.ts';
import type { Entry, Message } from '../../src/raft/index.ts';
import { Harness } from './harness.ts';

function entries(from: number, to: number, term: number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push({ index: i, term, type: EntryType.Normal, data: new Uint8Array([i & 0xff]) });
  return out;
}

describe('MemoryStorage', () => {
  it('appends, overwrites a conflicting suffix, refuses gaps', () => {
    const s = new MemoryStorage();
    s.append(entries(1, 5, 1));
    expect(s.lastIndex()).toBe(5);
    s.append(entries(4, 6, 2));
    expect(s.lastIndex()).toBe(6);
    expect([3, 4, 5, 6].map((i) => s.term(i))).toEqual([1, 2, 2, 2]);
    expect(() => s.append(entries(9, 9, 2))).toThrow(/gap/);
    expect(s.entries(2, 7).map((e) => e.index)).toEqual([2, 3, 4, 5, 6]);
    expect(s.entries(2, 7, 1).map((e) => e.index)).toEqual([2]);
    expect(s.entries(2, 7, 70).map((e) => e.index)).toEqual([2, 3]);
    expect(() => s.entries(2, 9)).toThrow(UnavailableError);
  });

  it('snapshots, compacts keeping the snapshot term, and refuses out-of-date snapshots', () => {
    const s = new MemoryStorage();
    s.append(entries(1, 10, 3));
    const cfg = { members: [{ id: 1, address: 'a', role: 'voter' as const }] };
    s.createSnapshot(8, cfg, new Uint8Array([1, 2]));
    expect(() => s.compact(9)).toThrow(/snapshot only covers/);
    s.compact(6);
    expect(s.firstIndex()).toBe(7);
    expect(s.term(6)).toBe(3);
    expect(() => s.term(5)).toThrow(CompactedError);
    expect(() => s.entries(6, 8)).toThrow(CompactedError);
    expect(() => s.createSnapshot(7, cfg, new Uint8Array())).toThrow(RaftError);
    expect(() => s.applySnapshot({ meta: { index: 8, term: 3, configuration: cfg }, data: new Uint8Array() })).toThrow(/not newer/);
    s.applySnapshot({ meta: { index: 20, term: 4, configuration: cfg }, data: new Uint8Array([9]) });
    expect(s.firstIndex()).toBe(21);
    expect(s.lastIndex()).toBe(20);
    expect(s.initialState().hardState.commit).toBe(20);
    expect(s.initialState().configuration).toEqual(cfg);
  });

  it('compaction policy follows dqlite defaults', () => {
    expect(snapshotDue(1023, 0)).toBe(false);
    expect(snapshotDue(1024, 0)).toBe(true);
    expect(compactionIndex(1024)).toBe(0);
    expect(compactionIndex(10_000)).toBe(10_000 - 8192);
  });

  it('a node restarted on a compacted log does not re-apply what the snapshot holds', () => {
    const h = new Harness([1]);
    const leader = h.electLeader();
    for (let i = 0; i < 10; i++) h.propose(leader, `e${i}`);
    const applied = leader.raft.status().applied;
    leader.storage.createSnapshot(applied, leader.raft.configurationAt(applied), new Uint8Array([7]));
    leader.storage.compact(applied - 3);
    const restarted = h.restart(1);
    expect(restarted.applied).toEqual([]);
    expect(restarted.raft.status().applied).toBe(applied);
    const again = h.electLeader();
    h.propose(again, 'next');
    expect(again.applied.map((e) => e.index)).toEqual([applied + 1, applied + 2]);
  });
});

describe('step never throws on hostile input', () => {
  it('random messages to nodes in every role are ignored or handled', () => {
    const h = new Harness([1, 2, 3]);
    h.electLeader();
    h.tick(undefined, 3);
    const msg = fc.record({
      type: fc.integer({ min: 0, max: 12 }),
      from: fc.integer({ min: 0, max: 5 }),
      term: fc.integer({ min: 0, max: 8 }),
      logTerm: fc.integer({ min: 0, max: 8 }),
      index: fc.integer({ min: 0, max: 12 }),
      commit: fc.integer({ min: 0, max: 1e6 }),
      reject: fc.boolean(),
      rejectHint: fc.integer({ min: 0, max: 1e6 }),
      context: fc.integer({ min: 0, max: 3 }),
      n: fc.integer({ min: 0, max: 3 }),
      entryTerm: fc.integer({ min: 0, max: 8 }),
      snap: fc.option(fc.record({ index: fc.integer({ min: 0, max: 40 }), term: fc.integer({ min: 0, max: 8 }), offset: fc.integer({ min: 0, max: 5 }), len: fc.integer({ min: 0, max: 5 }), extra: fc.integer({ min: 0, max: 5 }) }), { nil: undefined }),
    });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 }), msg, (to, r) => {
        const m: Message = {
          type: r.type as MessageType,
          from: r.from,
          to,
          term: r.term,
          logTerm: r.logTerm,
          index: r.index,
          commit: r.commit,
          reject: r.reject,
          rejectHint: r.rejectHint,
          context: r.context,
          entries: Array.from({ length: r.n }, (_, i) => ({ term: r.entryTerm, index: r.index + 1 + i, type: EntryType.Normal, data: new Uint8Array([i]) })),
        };
        if (r.snap) {
          m.snapshot = {
            meta: { index: r.snap.index, term: r.snap.term, configuration: { members: [{ id: 1, address: 'a', role: 'voter' }] } },
            offset: r.snap.offset,
            totalBytes: r.snap.offset + r.snap.len + r.snap.extra,
            data: new Uint8Array(r.snap.len),
          };
        }
        const node = h.node(to);
        node.raft.step(m);
        h.process(node);
        h.deliverAll();
        if (r.n === 0 && r.type === 0) h.tick(undefined, 1);
      }),
      { numRuns: 3000 },
    );
    // The cluster still works afterwards.
    h.tick(undefined, 30);
    const leader = h.electLeader();
    expect(leader.raft.propose(new Uint8Array([1])).ok).toBe(true);
  });

  it('bootstrap writes a committed configuration entry at index 1', () => {
    const s = new MemoryStorage();
    RaftNode.bootstrap(s, { members: [{ id: 3, address: 'x', role: 'voter' }] });
    expect(s.lastIndex()).toBe(1);
    expect(s.entries(1, 2)[0]!.type).toBe(EntryType.Configuration);
    expect(s.initialState().hardState).toEqual({ term: 1, vote: 0, commit: 1 });
  });
});
