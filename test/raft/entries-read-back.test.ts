/**
 * Applied entries released from memory (MemoryStorage.releaseAppliedEntries: on "disk", read
 * back by the application): the leader asks storage for a lagging follower's entries, waits while
 * they are read, sends them when told (entriesReady), and the follower gets every entry with its
 * data. Storage hands each read-back entry over once, keeps the terms of released entries, and
 * refuses to replace them.
 */
import { describe, expect, it } from 'vitest';
import { EntriesPendingError, EntryType, MemoryStorage, MessageType, type Entry } from '../../src/raft/index.ts';
import { Harness } from './harness.ts';

const text = new TextDecoder();

function entry(index: number, term: number, bytes: number): Entry {
  return { index, term, type: EntryType.Normal, data: new Uint8Array(bytes).fill(index & 0xff) };
}

describe('entries released from memory and read back', () => {
  it('a lagging follower gets every entry once the leader read them back, and nothing before', () => {
    const h = new Harness([1, 2, 3]);
    const leader = h.electLeader();
    h.tick(undefined, 2);
    const lagging = [1, 2, 3].find((id) => id !== leader.id)!;
    h.isolate(lagging);
    for (let i = 0; i < 30; i++) h.propose(leader, `entry ${i} ${'x'.repeat(100)}`);
    const applied = leader.raft.status().applied;
    // On the "disk" (the application's log): a copy of every entry before it is released.
    const disk = leader.storage.entries(leader.storage.firstIndex(), leader.storage.lastIndex() + 1).map((e) => ({ ...e, data: e.data.slice() }));
    const released = leader.storage.releaseAppliedEntries(applied, 500);
    expect(released).toBeGreaterThan(2000);
    expect(leader.storage.entriesBytes()).toBeLessThanOrEqual(500);
    expect(leader.storage.firstHeldIndex()).toBeGreaterThan(leader.storage.firstIndex());

    h.heal();
    let reads = 0;
    for (let round = 0; round < 200 && h.node(lagging).raft.status().applied < applied; round++) {
      h.tick([leader.id, lagging]);
      h.deliverAll();
      const wanted = leader.storage.takeEntriesWanted();
      for (const request of wanted) {
        reads++;
        expect(request.lo).toBeLessThan(leader.storage.firstHeldIndex());
        expect(request.hi).toBeLessThanOrEqual(leader.storage.firstHeldIndex());
        leader.storage.holdReadEntries(request, disk.filter((e) => e.index >= request.lo && e.index < request.hi));
      }
      const appendsBefore = h.messagesSent.filter((m) => m.type === MessageType.Append && m.to === lagging).length;
      leader.raft.entriesReady();
      h.process(leader);
      // Told, the core sends at once (no tick or answer needed).
      if (wanted.length > 0) expect(h.messagesSent.filter((m) => m.type === MessageType.Append && m.to === lagging).length).toBeGreaterThan(appendsBefore);
      h.deliverAll();
    }
    expect(reads).toBeGreaterThan(0);
    const follower = h.node(lagging);
    expect(follower.raft.status().applied).toBeGreaterThanOrEqual(applied);
    const proposed = follower.applied.filter((e) => e.type === EntryType.Normal && e.data.length > 0).map((e) => text.decode(e.data));
    expect(proposed).toEqual(Array.from({ length: 30 }, (_, i) => `entry ${i} ${'x'.repeat(100)}`));
    // No append carried a released entry without its data.
    for (const m of h.messagesSent.filter((m) => m.type === MessageType.Append && m.to === lagging)) {
      for (const e of m.entries) expect(e.data.length).toBe(disk.find((d) => d.index === e.index)?.data.length ?? e.data.length);
    }
    expect(leader.storage.entriesBytes()).toBeLessThanOrEqual(500 + 200);
  });

  it('storage throws EntriesPendingError for released entries, hands read-back ones over once, and keeps their terms and sizes', () => {
    const s = new MemoryStorage();
    s.append([entry(1, 1, 100), entry(2, 1, 100), entry(3, 2, 100), entry(4, 2, 100)]);
    expect(s.releaseAppliedEntries(2, 150)).toBe(200);
    expect(s.releaseAppliedEntries(4, 0)).toBe(200);
    expect(s.entriesBytes()).toBe(0);
    // Only applied entries go: a later call with a higher applied index releases the rest.
    const t = new MemoryStorage();
    t.append([entry(1, 1, 100), entry(2, 1, 100), entry(3, 2, 100)]);
    expect(t.releaseAppliedEntries(1, 0)).toBe(100);
    expect(t.entryBytes(1)).toBe(100);
    expect(t.term(1)).toBe(1);
    expect(() => t.entries(1, 4)).toThrow(EntriesPendingError);
    const [request] = t.takeEntriesWanted();
    expect(request).toEqual({ lo: 1, hi: 2, bytesMax: undefined });
    // Asked again while that is being read: no second request.
    expect(() => t.entries(1, 4)).toThrow(EntriesPendingError);
    expect(t.takeEntriesWanted()).toEqual([]);
    // Entries after the released ones are served from memory as before.
    expect(t.entries(2, 4).map((e) => e.index)).toEqual([2, 3]);
    t.holdReadEntries(request!, [entry(1, 1, 100)]);
    expect(t.entriesBytes()).toBe(300);
    expect(t.entries(1, 4).map((e) => [e.index, e.data.length])).toEqual([[1, 100], [2, 100], [3, 100]]);
    // Taken once; asked again, a new request.
    expect(() => t.entries(1, 2)).toThrow(EntriesPendingError);
    expect(t.entriesBytes()).toBe(200);
    const [again] = t.takeEntriesWanted();
    expect(again).toEqual({ lo: 1, hi: 2, bytesMax: undefined });
    // A different entry than the one released is refused; a released entry is never replaced.
    expect(() => t.holdReadEntries(again!, [entry(1, 2, 100)])).toThrow(/not the one released/);
    expect(() => t.append([entry(1, 3, 10)])).toThrow(/released/);
    // Unreadable: the core's next ask is a new request.
    t.holdReadEntries(again!, 'unavailable');
    expect(() => t.entries(1, 2)).toThrow(EntriesPendingError);
    const [third] = t.takeEntriesWanted();
    expect(third).toBeDefined();
    // Compaction drops released entries and what was read back of them.
    t.holdReadEntries(third!, [entry(1, 1, 100)]);
    t.createSnapshot(2, { members: [] }, new Uint8Array(0));
    t.compact(2);
    expect(t.entriesBytes()).toBe(100);
    expect(t.firstHeldIndex()).toBe(3);
    expect(t.entries(3, 4).map((e) => e.index)).toEqual([3]);
  });
});
