/**
 * Sending a snapshot from disk a chunk at a time, on real files: two in-process nodes on real data
 * directories, their Raft traffic over in-memory message channels. A follower far behind (a new
 * one, and one restarted after the log moved on) catches up by snapshot while the leader reads
 * only one chunk's range of its snapshot file at a time and never the whole file.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { connect, type Database } from '../../src/client/index.ts';
import type { DurableFileReader, DurableStorage, MessageChannel, Runtime } from '../../src/runtime.ts';
import { ClusterNode, type NodeOptions } from '../../src/server/node.ts';
import { Engine } from '../../wasm/index.ts';
import { POOLED_FRAME_BYTES_MIN } from '../../src/server/frame-pool.ts';
import { MessageType } from '../../src/raft/index.ts';
import { PEER_FRAME_HEADROOM_BYTES } from '../../src/transport/index.ts';
import { nodeRuntime, openDirectoryStorage } from '../../runtimes/node/index.ts';
import { channelPair, streamPair, until } from './harness.ts';

const KiB = 1024;
const chunkBytes = 64 * KiB;
const settings: Partial<NodeOptions> = {
  tickMs: 20,
  snapshotThresholdEntries: 16,
  snapshotTrailingEntries: 4,
  limits: { snapshotChunkBytesMax: chunkBytes, logTrailingBytesMax: 64 * KiB, appendBytesMax: 64 * KiB },
};

/**
 * A snapshot is on disk and no other is being written: the applied index is less than a snapshot
 * threshold past it (a snapshot being written has not yet moved the snapshot index).
 */
function snapshotSettled(node: ClusterNode): boolean {
  const status = node.status();
  return status.snapshots > 0 && status.appliedIndex - status.snapshotIndex < settings.snapshotThresholdEntries! && status.memory.snapshotBytes === 0;
}

/** What the leader read of its snapshot file. */
interface SnapshotReads {
  wholeReads: number;
  ranges: { offset: number; length: number }[];
  concurrent: number;
  concurrentMax: number;
  bytes: number;
  /** Ranges read into a buffer the reader gave (readInto), and the distinct buffers it gave. */
  readsInto: number;
  intoBuffers: Set<ArrayBufferLike>;
  /** Frames the node sent that are views into one of those buffers: chunks sent where they were read. */
  framesInReadBuffers: number;
  /** The distinct buffers those chunk frames were in. */
  chunkFrameBuffers: Set<ArrayBufferLike>;
  /** The node's other frames of POOLED_FRAME_BYTES_MIN or more (appends), and the distinct buffers they were in. */
  largeFrames: number;
  largeFrameBuffers: Set<ArrayBufferLike>;
  /** Those appends handed to one connection and not yet written, now and at most. */
  largeUnwritten: number;
  largeUnwrittenMax: number;
}

function newReads(): SnapshotReads {
  return { wholeReads: 0, ranges: [], concurrent: 0, concurrentMax: 0, bytes: 0, readsInto: 0, intoBuffers: new Set(), framesInReadBuffers: 0, chunkFrameBuffers: new Set(), largeFrames: 0, largeFrameBuffers: new Set(), largeUnwritten: 0, largeUnwrittenMax: 0 };
}

/** The real directory storage, with every read of the snapshot file counted. */
function countSnapshotReads(storage: DurableStorage, reads: SnapshotReads): DurableStorage {
  const openReader = storage.openReader!;
  return {
    read: (name) => {
      if (name === 'snapshot') reads.wholeReads++;
      return storage.read(name);
    },
    writeAtomic: (name, bytes) => storage.writeAtomic(name, bytes),
    openAtomicWriter: storage.openAtomicWriter?.bind(storage),
    append: (name, bytes) => storage.append(name, bytes),
    writeAt: storage.writeAt,
    sync: (name) => storage.sync(name),
    truncate: (name, size) => storage.truncate(name, size),
    remove: (name) => storage.remove(name),
    list: () => storage.list(),
    async openReader(name): Promise<DurableFileReader | undefined> {
      const file = await openReader(name);
      if (!file || name !== 'snapshot') return file;
      return {
        sizeBytes: file.sizeBytes,
        async read(offset, length) {
          reads.ranges.push({ offset, length });
          reads.concurrentMax = Math.max(reads.concurrentMax, ++reads.concurrent);
          try {
            const bytes = await file.read(offset, length);
            reads.bytes += bytes.length;
            return bytes;
          } finally {
            reads.concurrent--;
          }
        },
        async readInto(offset, bytes) {
          reads.ranges.push({ offset, length: bytes.length });
          reads.readsInto++;
          reads.intoBuffers.add(bytes.buffer);
          reads.concurrentMax = Math.max(reads.concurrentMax, ++reads.concurrent);
          try {
            await file.readInto!(offset, bytes);
            reads.bytes += bytes.length;
          } finally {
            reads.concurrent--;
          }
        },
        close: () => file.close(),
      };
    },
  };
}

interface Member {
  node: ClusterNode;
  dir: string;
  lines: string[];
  closeStorage(): Promise<void>;
}

describe('a snapshot sent from disk a chunk at a time', () => {
  const nodes = new Map<string, ClusterNode>();
  const dirs: string[] = [];
  const members: Member[] = [];
  const clients: Database[] = [];

  afterEach(async () => {
    for (const db of clients.splice(0)) await db.close().catch(() => {});
    for (const member of members.splice(0)) {
      await member.node.stop().catch(() => {});
      await member.closeStorage();
    }
    nodes.clear();
    readsBy.clear();
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  /** What the leader's snapshot reads were counted in, to see which frames it sent from them. */
  const readsBy = new Map<string, SnapshotReads>();

  /**
   * As a socket does: the bytes are copied out as they are sent, and the sender hears that it
   * may reuse its buffer once the write is done, later (ws calls back after the socket's write).
   * A snapshot chunk is reported written late, as a socket busy with a large write does: the
   * follower's acknowledgement (and the leader's read of the next chunk) comes before it.
   */
  function networkChannel(channel: MessageChannel, sender: string): MessageChannel {
    return {
      ...channel,
      reportsWrites: true,
      send(message, released) {
        const reads = readsBy.get(sender);
        // After the envelope's header, a Raft message's version byte, then its type.
        const snapshotChunk = message.length > PEER_FRAME_HEADROOM_BYTES + 1 && message[PEER_FRAME_HEADROOM_BYTES + 1] === MessageType.Snapshot;
        const large = reads !== undefined && !snapshotChunk && message.length >= POOLED_FRAME_BYTES_MIN;
        if (snapshotChunk && reads?.intoBuffers.has(message.buffer)) {
          reads.framesInReadBuffers++;
          reads.chunkFrameBuffers.add(message.buffer);
        } else if (large) {
          reads.largeFrames++;
          reads.largeFrameBuffers.add(message.buffer);
          reads.largeUnwrittenMax = Math.max(reads.largeUnwrittenMax, ++reads.largeUnwritten);
        }
        const sent = channel.send(message.slice());
        const written = (): void => {
          if (large) reads.largeUnwritten--;
          released?.();
        };
        if (snapshotChunk) setTimeout(written, 30);
        else setImmediate(written);
        return sent;
      },
      onMessage: (handler) => channel.onMessage(handler),
      onClose: (handler) => channel.onClose(handler),
      close: (reason) => channel.close(reason),
    };
  }

  function runtimeFor(address: string): Runtime {
    return {
      ...nodeRuntime(),
      dialWebSocket: async (url, options) => {
        const target = nodes.get(new URL(url).host);
        if (!target) throw new Error(`connection refused by ${url}`);
        const [mine, theirs] = channelPair(address, new URL(url).host);
        target.acceptPeer(networkChannel(theirs, new URL(url).host), { ...(options?.headers ?? {}) });
        return networkChannel(mine, address);
      },
    };
  }

  async function start(id: number, address: string, dir: string, options: { bootstrap?: boolean; reads?: SnapshotReads }): Promise<Member> {
    const base = await openDirectoryStorage(dir);
    const storage = options.reads ? countSnapshotReads(base, options.reads) : base;
    if (options.reads) readsBy.set(address, options.reads);
    const lines: string[] = [];
    const node = await ClusterNode.start({
      id,
      address,
      runtime: runtimeFor(address),
      storage,
      engine: await Engine.create(),
      clusterKey: 'test',
      bootstrap: options.bootstrap ?? false,
      log: (line) => void lines.push(line),
      ...settings,
    });
    nodes.set(address, node);
    const member = { node, dir, lines, closeStorage: () => base.close() };
    members.push(member);
    return member;
  }

  async function stop(member: Member): Promise<void> {
    await member.node.stop();
    await member.closeStorage();
    nodes.delete(member.node.status().address);
    members.splice(members.indexOf(member), 1);
  }

  async function clientOf(member: Member): Promise<Database> {
    const db = await connect({
      servers: ['127.0.0.1:1'],
      database: 'app',
      timeoutMs: 10_000,
      dial: async () => {
        const [clientSide, serverSide] = streamPair('client', '127.0.0.1:1');
        member.node.acceptClient(serverSide);
        return clientSide;
      },
    });
    clients.push(db);
    return db;
  }

  function newDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'dqlite-wasm-snapshot-send-'));
    dirs.push(dir);
    return dir;
  }

  test('a follower far behind catches up by snapshot; the leader reads one chunk range at a time, never the whole file', async () => {
    const reads = newReads();
    const leader = await start(1, '127.0.0.1:1', newDir(), { bootstrap: true, reads });
    await until('leadership', 10_000, () => leader.node.isLeader());
    // Start-up read the (missing) snapshot file whole, as it must; from here on nothing may.
    reads.wholeReads = 0;
    const db = await clientOf(leader);
    await db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
    // About 1.3 MB of rows: a snapshot of about 20 chunks.
    for (let i = 1; i <= 40; i++) await db.exec('INSERT INTO t (v) VALUES (randomblob(32768))');
    await until('a snapshot on disk, and none being written', 10_000, () => snapshotSettled(leader.node));
    const snapshotFileBytes = statSync(join(leader.dir, 'snapshot')).size;
    expect(snapshotFileBytes).toBeGreaterThan(10 * chunkBytes);

    // A new member has nothing: the leader's log no longer starts at 1, so it needs the snapshot.
    const follower = await start(2, '127.0.0.1:2', newDir(), {});
    await leader.node.addMember(2, '127.0.0.1:2');
    await leader.node.assignRole(2, 'standby');
    await until('the follower to catch up', 30_000, () => follower.node.status().appliedIndex >= leader.node.status().commitIndex);
    expect(follower.lines.join('\n')).toMatch(/installed a snapshot/);

    expect(reads.wholeReads).toBe(0);
    expect(reads.concurrentMax).toBe(1);
    expect(Math.max(...reads.ranges.map((r) => r.length))).toBeLessThanOrEqual(chunkBytes);
    // Each byte of the file was read about once (the header, and a chunk again if one was lost).
    expect(reads.bytes).toBeGreaterThanOrEqual(snapshotFileBytes - 1024);
    expect(reads.bytes).toBeLessThan(2 * snapshotFileBytes);
    // The chunks were read into a couple of buffers, reused, and sent from them uncopied.
    const chunksSent = Math.ceil(snapshotFileBytes / chunkBytes);
    expect(reads.readsInto).toBeGreaterThanOrEqual(chunksSent - 1);
    expect(reads.intoBuffers.size).toBeLessThanOrEqual(3);
    expect(reads.framesInReadBuffers).toBeGreaterThanOrEqual(chunksSent - 1);
    // One chunk on its way at a time, each read into the buffer the one before came back in.
    expect(reads.chunkFrameBuffers.size).toBe(1);
    // Those shared buffers carried each chunk intact: the follower holds what the leader holds.
    const rowsOf = async (member: Member): Promise<Uint8Array[]> => (await (await clientOf(member)).query('SELECT v FROM t ORDER BY id')).rows.map((row) => (row as { v: Uint8Array }).v);
    expect(await rowsOf(follower)).toEqual(await rowsOf(leader));

    // Restarted after the log moved on past what it has: again by snapshot, from the newer file.
    await stop(follower);
    for (let i = 1; i <= 40; i++) await db.exec('INSERT INTO t (v) VALUES (randomblob(32768))');
    await until('a newer snapshot on disk', 10_000, () => leader.node.status().snapshotIndex > follower.node.status().appliedIndex + 16);
    const readBefore = reads.bytes;
    reads.chunkFrameBuffers.clear();
    const restarted = await start(2, '127.0.0.1:2', follower.dir, {});
    await until('the restarted follower to catch up', 30_000, () => restarted.node.status().appliedIndex >= leader.node.status().commitIndex);
    expect(restarted.lines.join('\n')).toMatch(/installed a snapshot/);
    expect(reads.bytes - readBefore).toBeGreaterThan(10 * chunkBytes);
    expect(reads.wholeReads).toBe(0);
    expect(reads.concurrentMax).toBe(1);
    expect(Math.max(...reads.ranges.map((r) => r.length))).toBeLessThanOrEqual(chunkBytes);
    expect(reads.intoBuffers.size).toBeLessThanOrEqual(3);
    expect(reads.chunkFrameBuffers.size).toBe(1);
    expect(await rowsOf(restarted)).toEqual(await rowsOf(leader));
    // The log after the snapshot went as appends, one large frame at a time to the follower: the
    // next framed once the last was written, in one of the pool's buffers.
    expect(reads.largeFrames).toBeGreaterThan(1);
    expect(reads.largeUnwrittenMax).toBe(1);
    expect(reads.largeFrameBuffers.size).toBeLessThanOrEqual(3);

    // What the leader reports holding for snapshots stays within a chunk or two (none in flight now).
    expect(leader.node.status().memory.snapshotBytes).toBeLessThanOrEqual(2 * chunkBytes);
    // Appends to a follower that keeps up: each in one of a few buffers, reused once written.
    const framesBefore = reads.largeFrames;
    for (let i = 1; i <= 30; i++) await db.exec('INSERT INTO t (v) VALUES (randomblob(32768))');
    await until('the follower to keep up', 30_000, () => restarted.node.status().appliedIndex >= leader.node.status().commitIndex);
    expect(reads.largeFrames - framesBefore).toBeGreaterThanOrEqual(30);
    expect(reads.largeFrameBuffers.size).toBeLessThanOrEqual(3);
    expect(reads.largeUnwrittenMax).toBe(1);
    expect(await rowsOf(restarted)).toEqual(await rowsOf(leader));
  }, 60_000);

  test('a snapshot file whose data is damaged is not sent whole: the follower never installs it', async () => {
    const leader = await start(1, '127.0.0.1:1', newDir(), { bootstrap: true });
    await until('leadership', 10_000, () => leader.node.isLeader());
    const db = await clientOf(leader);
    await db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
    for (let i = 1; i <= 30; i++) await db.exec('INSERT INTO t (v) VALUES (randomblob(32768))');
    await until('a snapshot on disk, and none being written', 10_000, () => snapshotSettled(leader.node));
    // Stop snapshots from replacing the file: no more writes. Flip one byte near the end of its data.
    const path = join(leader.dir, 'snapshot');
    const size = statSync(path).size;
    const fd = openSync(path, 'r+');
    const byte = new Uint8Array(1);
    readSync(fd, byte, 0, 1, size - 1000);
    byte[0] = byte[0]! ^ 0x55;
    writeSync(fd, byte, 0, 1, size - 1000);
    closeSync(fd);

    const follower = await start(2, '127.0.0.1:2', newDir(), {});
    await leader.node.addMember(2, '127.0.0.1:2');
    await leader.node.assignRole(2, 'standby');
    await until('the leader to find the damage', 30_000, () => leader.lines.some((line) => /fails its data checksum/.test(line)));
    expect(follower.lines.join('\n')).not.toMatch(/installed a snapshot/);
    expect(follower.node.status().appliedIndex).toBeLessThan(leader.node.status().snapshotIndex);
  }, 60_000);
});
