/**
 * The leader sends a snapshot a chunk at a time, asking storage for each chunk's range: with the
 * snapshot's data released (on "disk", read by the application), the core asks for one range
 * per follower, waits while it is read, sends it when told, and sends the next only once the
 * follower confirmed the last. A snapshot that cannot be read any more is replaced by the latest.
 */
import { describe, expect, it } from 'vitest';
import { MessageType, type Message, type NodeId } from '../../src/raft/index.ts';
import { Harness, type HarnessNode } from './harness.ts';

const chunkBytes = 100;

function dataOf(length: number, seed: number): Uint8Array {
  return new Uint8Array(length).map((_, i) => (i * 7 + seed) & 0xff);
}

/**
 * A cluster whose leader took a snapshot of `data` and released it (unless `keepData`); `lagging`
 * missed everything it covers and is still isolated.
 */
function laggingCluster(data: Uint8Array, keepData = false): { h: Harness; leader: HarnessNode; lagging: NodeId; index: number } {
  const h = new Harness([1, 2, 3], { snapshotChunkBytes: chunkBytes });
  const leader = h.electLeader();
  h.tick(undefined, 2);
  const lagging = [1, 2, 3].find((id) => id !== leader.id)!;
  h.isolate(lagging);
  for (let i = 0; i < 20; i++) h.propose(leader, `e${i}`);
  const index = leader.raft.status().applied;
  leader.storage.createSnapshot(index, leader.raft.configurationAt(index), data);
  leader.storage.compact(index);
  if (!keepData) leader.storage.releaseSnapshotData();
  return { h, leader, lagging, index };
}

/** Snapshot chunks sent to `to` before its answer, at most, over the messages in the order they were sent. */
function chunksInFlightMax(messages: Message[], to: NodeId): number {
  let inFlight = 0;
  let max = 0;
  for (const m of messages) {
    if (m.type === MessageType.Snapshot && m.to === to) max = Math.max(max, ++inFlight);
    if ((m.type === MessageType.SnapshotResponse || m.type === MessageType.AppendResponse) && m.from === to) inFlight = 0;
  }
  return max;
}

describe('sending a snapshot a chunk at a time', () => {
  it('asks storage for one chunk range at a time, sends it when read, and the follower gets the whole snapshot', () => {
    const data = dataOf(1050, 1);
    const { h, leader, lagging, index } = laggingCluster(data);
    h.heal();
    const asked: { offset: number; length: number }[] = [];
    let heldMax = 0;
    for (let round = 0; round < 200 && h.node(lagging).snapshots.length === 0; round++) {
      h.tick([leader.id, lagging]);
      // The application: reads what the core asked for from its copy of the snapshot ("the file").
      const wanted = leader.storage.takeSnapshotChunksWanted();
      expect(wanted.length).toBeLessThanOrEqual(1);
      for (const request of wanted) {
        expect(request.index).toBe(index);
        asked.push({ offset: request.offset, length: request.length });
        leader.storage.holdSnapshotChunk(request, data.slice(request.offset, request.offset + request.length));
        heldMax = Math.max(heldMax, leader.storage.snapshotHeldBytes());
      }
      leader.raft.snapshotChunksReady();
      h.process(leader);
      h.deliverAll();
    }
    const follower = h.node(lagging);
    expect(follower.snapshots).toHaveLength(1);
    expect(follower.snapshots[0]!.meta.index).toBe(index);
    expect(follower.snapshots[0]!.data).toEqual(data);
    // Every range once, in order, none larger than a chunk; the leader held one chunk at most.
    expect(asked).toEqual(Array.from({ length: 11 }, (_, i) => ({ offset: i * chunkBytes, length: i === 10 ? 50 : chunkBytes })));
    expect(heldMax).toBe(chunkBytes);
    expect(leader.storage.snapshotHeldBytes()).toBe(0);
    const chunks = h.messagesSent.filter((m) => m.type === MessageType.Snapshot && m.to === lagging);
    expect(chunks.map((m) => m.snapshot!.offset)).toEqual(asked.map((a) => a.offset));
    expect(Math.max(...chunks.map((m) => m.snapshot!.data.length))).toBe(chunkBytes);
    expect(chunks.every((m) => m.snapshot!.totalBytes === data.length)).toBe(true);
    expect(chunksInFlightMax(h.messagesSent, lagging)).toBe(1);
    // Caught up: appends flow again.
    h.propose(leader, 'after');
    expect(follower.raft.status().commit).toBe(leader.raft.status().commit);
  });

  it('drops the chunks it will not take: one read again and confirmed meanwhile, and any once no follower is sent a snapshot', () => {
    const data = dataOf(450, 3);
    const { h, leader, lagging, index } = laggingCluster(data);
    h.heal();
    const read = (request: { index: number; offset: number; length: number }): Uint8Array => data.slice(request.offset, request.offset + request.length);
    const dropped: Uint8Array[] = [];
    for (let round = 0; round < 200 && h.node(lagging).snapshots.length === 0; round++) {
      h.tick([leader.id, lagging]);
      for (const request of leader.storage.takeSnapshotChunksWanted()) {
        leader.storage.holdSnapshotChunk(request, read(request));
        // The application reads the same range once more, as for a chunk sent again while the
        // first answer was late: the core takes one copy, the other is left over.
        if (request.offset === chunkBytes) leader.storage.holdSnapshotChunk({ ...request, offset: 0, length: chunkBytes }, read({ index, offset: 0, length: chunkBytes }));
      }
      leader.raft.snapshotChunksReady();
      h.process(leader);
      h.deliverAll();
      dropped.push(...leader.storage.takeDroppedSnapshotChunks());
    }
    expect(h.node(lagging).snapshots[0]!.data).toEqual(data);
    // The left-over first chunk went once the core took a later one; the application hears of it.
    expect(dropped.map((chunk) => chunk.length)).toContain(chunkBytes);
    // A last chunk read again after the follower confirmed the whole snapshot (sent again while it installed).
    leader.storage.holdSnapshotChunk({ index, offset: 400, length: 50 }, read({ index, offset: 400, length: 50 }));
    expect(leader.storage.snapshotHeldBytes()).toBe(50);
    h.tick([leader.id, lagging]);
    expect(leader.storage.snapshotHeldBytes()).toBe(0);
    expect(leader.storage.takeDroppedSnapshotChunks().map((chunk) => chunk.length)).toEqual([50]);
  });

  it('asks again on every tick while a chunk is not read, and sends nothing meanwhile', () => {
    const { h, leader, lagging, index } = laggingCluster(dataOf(500, 2));
    h.heal();
    h.tick([leader.id, lagging], 3);
    const sentBefore = h.messagesSent.filter((m) => m.type === MessageType.Snapshot).length;
    for (let t = 0; t < 3; t++) {
      h.tick([leader.id, lagging]);
      expect(leader.storage.takeSnapshotChunksWanted()).toEqual([{ index, offset: 0, length: chunkBytes }]);
    }
    // Told without an answer held: still waiting, nothing sent.
    leader.raft.snapshotChunksReady();
    h.process(leader);
    expect(h.messagesSent.filter((m) => m.type === MessageType.Snapshot).length).toBe(sentBefore);
    expect(sentBefore).toBe(0);
  });

  it('starts over with the latest snapshot when the one being sent can no longer be read', () => {
    const first = dataOf(450, 3);
    const { h, leader, lagging, index } = laggingCluster(first);
    h.heal();
    let latest = { index, data: first };
    const sentIndexes = new Set<number>();
    for (let round = 0; round < 300 && h.node(lagging).snapshots.length === 0; round++) {
      h.tick([leader.id, lagging]);
      for (const request of leader.storage.takeSnapshotChunksWanted()) {
        if (request.index !== latest.index) {
          leader.storage.holdSnapshotChunk(request, 'unavailable');
          continue;
        }
        sentIndexes.add(request.index);
        leader.storage.holdSnapshotChunk(request, latest.data.slice(request.offset, request.offset + request.length));
        if (request.offset === 2 * chunkBytes && latest.index === index) {
          // Halfway through, a newer snapshot replaces the file the first was read from.
          for (let i = 0; i < 5; i++) h.propose(leader, `more${i}`);
          const newer = leader.raft.status().applied;
          latest = { index: newer, data: dataOf(320, 4) };
          leader.storage.createSnapshot(newer, leader.raft.configurationAt(newer), latest.data);
          leader.storage.compact(newer);
          leader.storage.releaseSnapshotData();
        }
      }
      leader.raft.snapshotChunksReady();
      h.process(leader);
      h.deliverAll();
    }
    const follower = h.node(lagging);
    expect(sentIndexes).toEqual(new Set([index, latest.index]));
    expect(follower.snapshots).toHaveLength(1);
    expect(follower.snapshots[0]!.meta.index).toBe(latest.index);
    expect(follower.snapshots[0]!.data).toEqual(latest.data);
    expect(chunksInFlightMax(h.messagesSent, lagging)).toBe(1);
    h.propose(leader, 'after');
    expect(follower.raft.status().commit).toBe(leader.raft.status().commit);
  });

  it('sends the data held in memory at once, and finishes a snapshot replaced by a newer one while its data was held', () => {
    const data = dataOf(420, 5);
    const { h, leader, lagging, index } = laggingCluster(data, true);
    h.heal();
    // The first chunk goes; then a newer snapshot arrives while the first is still being sent.
    h.tick([leader.id], 2);
    h.propose(leader, 'newer');
    const newer = leader.raft.status().applied;
    leader.storage.createSnapshot(newer, leader.raft.configurationAt(newer), dataOf(10, 6));
    h.tick(undefined, 10);
    const follower = h.node(lagging);
    expect(leader.storage.takeSnapshotChunksWanted()).toEqual([]);
    expect(follower.snapshots[0]!.meta.index).toBe(index);
    expect(follower.snapshots[0]!.data).toEqual(data);
    expect(follower.raft.status().commit).toBe(leader.raft.status().commit);
  });
});
