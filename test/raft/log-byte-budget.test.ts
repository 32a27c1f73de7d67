/**
 * The log kept before a snapshot is bounded by bytes as well as by entries, and MemoryStorage
 * counts the bytes it holds through appends, overwrites, compactions and installed snapshots.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compactionIndex, EntryType, MemoryStorage, type Entry } from '../../src/raft/index.ts';

const cfg = { members: [{ id: 1, address: 'a', role: 'voter' as const }] };

function sized(from: number, to: number, term: number, bytes: (index: number) => number): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) out.push({ index: i, term, type: EntryType.Normal, data: new Uint8Array(bytes(i)) });
  return out;
}

/** What the storage holds, counted the slow way. */
function countedBytes(s: MemoryStorage): number {
  if (s.lastIndex() < s.firstIndex()) return 0;
  return s.entries(s.firstIndex(), s.lastIndex() + 1).reduce((sum, e) => sum + e.data.length, 0);
}

describe('log byte budget', () => {
  it('keeps only the entries before the snapshot that fit in trailingBytesMax', () => {
    const s = new MemoryStorage();
    s.append(sized(1, 100, 1, () => 1000));
    const policy = { snapshotThresholdEntries: 10, trailingEntries: 50, trailingBytesMax: 10_500 };
    // 10 entries of 1000 bytes fit, the 11th does not: entries 91..100 stay.
    expect(compactionIndex(100, policy, (i) => s.entryBytes(i))).toBe(90);
    // Without the byte budget the count rules: 50 entries.
    expect(compactionIndex(100, { ...policy, trailingBytesMax: undefined }, (i) => s.entryBytes(i))).toBe(50);
    // A budget larger than the counted entries: the count rules.
    expect(compactionIndex(100, { ...policy, trailingBytesMax: 1_000_000 }, (i) => s.entryBytes(i))).toBe(50);
    // One entry larger than the whole budget: nothing before the snapshot is kept.
    s.append(sized(101, 101, 1, () => 20_000));
    expect(compactionIndex(101, policy, (i) => s.entryBytes(i))).toBe(101);
  });

  it('stops at what is already compacted', () => {
    const s = new MemoryStorage();
    s.append(sized(1, 40, 1, () => 10));
    s.createSnapshot(30, cfg, new Uint8Array(1));
    s.compact(25);
    expect(s.entryBytes(25)).toBeUndefined();
    expect(s.entryBytes(26)).toBe(10);
    expect(compactionIndex(40, { snapshotThresholdEntries: 1, trailingEntries: 100, trailingBytesMax: 1000 }, (i) => s.entryBytes(i))).toBe(25);
  });

  it('entriesBytes follows appends, overwrites, compactions and snapshots', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ op: fc.constant('append' as const), back: fc.nat(5), count: fc.integer({ min: 1, max: 8 }), bytes: fc.nat(300) }),
            fc.record({ op: fc.constant('compact' as const), back: fc.nat(10) }),
            fc.record({ op: fc.constant('install' as const), ahead: fc.integer({ min: 1, max: 5 }) }),
          ),
          { maxLength: 40 },
        ),
        (ops) => {
          const s = new MemoryStorage();
          let term = 1;
          for (const op of ops) {
            if (op.op === 'append') {
              const from = Math.max(s.firstIndex(), s.lastIndex() + 1 - op.back);
              s.append(sized(from, from + op.count - 1, ++term, () => op.bytes));
            } else if (op.op === 'compact') {
              const at = s.lastIndex() - op.back;
              if (at > s.snapshot().meta.index) s.createSnapshot(at, cfg, new Uint8Array(0));
              if (at >= s.firstIndex()) s.compact(Math.min(at, s.snapshot().meta.index));
            } else {
              s.applySnapshot({ meta: { index: s.lastIndex() + op.ahead, term: ++term, configuration: cfg }, data: new Uint8Array(0) });
            }
            expect(s.entriesBytes()).toBe(countedBytes(s));
          }
        },
      ),
    );
  });
});

describe('snapshot data released from memory', () => {
  it('is asked for a chunk at a time when a follower needs it, each chunk handed over once', () => {
    const s = new MemoryStorage();
    s.append(sized(1, 12, 1, () => 5));
    s.createSnapshot(8, cfg, new Uint8Array([1, 2, 3]));
    expect(s.snapshotChunk(8, 1, 2)).toEqual(new Uint8Array([2, 3]));
    expect(s.takeSnapshotChunksWanted()).toEqual([]);

    s.releaseSnapshotData();
    expect(s.snapshot().meta.index).toBe(8);
    expect(s.snapshot().data.length).toBe(0);
    expect(s.snapshotDataBytes()).toBe(3);
    expect(s.snapshotChunk(8, 0, 2)).toBe('pending');
    expect(s.snapshotChunk(8, 0, 2)).toBe('pending');
    expect(s.takeSnapshotChunksWanted()).toEqual([{ index: 8, offset: 0, length: 2 }]);
    expect(s.takeSnapshotChunksWanted()).toEqual([]);

    s.holdSnapshotChunk({ index: 8, offset: 0, length: 2 }, new Uint8Array([1, 2]));
    expect(s.snapshotHeldBytes()).toBe(2);
    expect(s.snapshotChunk(8, 0, 2)).toEqual(new Uint8Array([1, 2]));
    // Taken: the storage holds it no longer, and asks for it again.
    expect(s.snapshotHeldBytes()).toBe(0);
    expect(s.snapshotChunk(8, 0, 2)).toBe('pending');
    expect(() => s.holdSnapshotChunk({ index: 8, offset: 2, length: 1 }, new Uint8Array([3, 4]))).toThrow(/2 bytes, not 1/);
    s.holdSnapshotChunk({ index: 8, offset: 2, length: 1 }, 'unavailable');
    expect(s.snapshotChunk(8, 2, 1)).toBe('unavailable');
    // A snapshot newer than the latest is not asked for.
    expect(s.snapshotChunk(9, 0, 1)).toBe('unavailable');

    // A new snapshot holds its own data until released; the one before, released, is the application's to read.
    s.createSnapshot(10, cfg, new Uint8Array([4]));
    expect(s.snapshotChunk(10, 0, 1)).toEqual(new Uint8Array([4]));
    expect(s.snapshotChunk(8, 0, 1)).toBe('unavailable');
    // Data held when a newer snapshot replaced it stays for a follower being sent it, until released.
    s.createSnapshot(11, cfg, new Uint8Array([5, 6]));
    expect(s.snapshotChunk(10, 0, 1)).toEqual(new Uint8Array([4]));
    s.releaseSnapshotData();
    expect(s.snapshotChunk(10, 0, 1)).toBe('pending');
    expect(s.snapshotChunk(11, 0, 2)).toBe('pending');
    s.dropSnapshotChunks();
    expect(s.takeSnapshotChunksWanted()).toEqual([]);
  });

  it('holds at most a few chunks read and not taken, dropping the oldest', () => {
    const s = new MemoryStorage();
    s.append(sized(1, 10, 1, () => 5));
    s.createSnapshot(8, cfg, new Uint8Array(100));
    s.releaseSnapshotData();
    for (let offset = 0; offset < 10; offset++) s.holdSnapshotChunk({ index: 8, offset, length: 1 }, new Uint8Array([offset]));
    expect(s.snapshotHeldBytes()).toBe(8);
    expect(s.snapshotChunk(8, 0, 1)).toBe('pending');
    expect(s.snapshotChunk(8, 9, 1)).toEqual(new Uint8Array([9]));
  });
});
