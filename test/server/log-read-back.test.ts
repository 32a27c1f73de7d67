/**
 * Entries released from memory and read back from the log's segment files, on real files: two
 * in-process nodes on real data directories, their Raft traffic over in-memory message channels.
 * The leader keeps at most `logHeldBytesMax` of applied entries in memory (no snapshot is due), so
 * a follower added afterwards, which needs the log from its first entry, is sent the entries the
 * leader reads back from its segments; it catches up without a snapshot and holds every row.
 * Without the read-back the core would wait for those entries forever.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { connect, type Database } from '../../src/client/index.ts';
import type { Runtime } from '../../src/runtime.ts';
import { ClusterNode, type NodeOptions } from '../../src/server/node.ts';
import { Engine } from '../../wasm/index.ts';
import { nodeRuntime, openDirectoryStorage } from '../../runtimes/node/index.ts';
import { channelPair, streamPair, until } from './harness.ts';

const KiB = 1024;
const heldBytesMax = 64 * KiB;
const settings: Partial<NodeOptions> = {
  tickMs: 20,
  // No snapshot: the whole log stays, on disk.
  snapshotThresholdEntries: 100_000,
  limits: { logHeldBytesMax: heldBytesMax, appendBytesMax: 64 * KiB, logSegmentBytesMax: 256 * KiB },
};

interface Member {
  node: ClusterNode;
  lines: string[];
  closeStorage(): Promise<void>;
}

describe('entries released from memory, read back from the segments for a follower', () => {
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
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  function runtimeFor(address: string): Runtime {
    return {
      ...nodeRuntime(),
      dialWebSocket: async (url, options) => {
        const target = nodes.get(new URL(url).host);
        if (!target) throw new Error(`connection refused by ${url}`);
        const [mine, theirs] = channelPair(address, new URL(url).host);
        target.acceptPeer(theirs, { ...(options?.headers ?? {}) });
        return mine;
      },
    };
  }

  async function start(id: number, address: string, bootstrap: boolean): Promise<Member> {
    const dir = mkdtempSync(join(tmpdir(), 'dqlite-wasm-log-read-back-'));
    dirs.push(dir);
    const storage = await openDirectoryStorage(dir);
    const lines: string[] = [];
    const node = await ClusterNode.start({
      id,
      address,
      runtime: runtimeFor(address),
      storage,
      engine: await Engine.create(),
      clusterKey: 'test',
      bootstrap,
      log: (line) => void lines.push(line),
      ...settings,
    });
    nodes.set(address, node);
    const member = { node, lines, closeStorage: () => storage.close() };
    members.push(member);
    return member;
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

  test('a follower added after the leader released its log catches up from the segments, without a snapshot', async () => {
    const leader = await start(1, '127.0.0.1:1', true);
    await until('leadership', 10_000, () => leader.node.isLeader());
    const db = await clientOf(leader);
    await db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
    // About 1.3 MB of rows: 20 times what the leader keeps in memory, in several segments.
    let heldMax = 0;
    for (let i = 1; i <= 40; i++) {
      await db.exec('INSERT INTO t (v) VALUES (randomblob(32768))');
      heldMax = Math.max(heldMax, leader.node.status().memory.logBytes);
    }
    const status = leader.node.status();
    expect(status.snapshots).toBe(0);
    // Applied entries beyond the budget left memory: at most the budget and the entry that passed it.
    expect(heldMax).toBeLessThanOrEqual(heldBytesMax + 48 * KiB);

    const follower = await start(2, '127.0.0.1:2', false);
    await leader.node.addMember(2, '127.0.0.1:2');
    await leader.node.assignRole(2, 'standby');
    await until('the follower to catch up', 30_000, () => follower.node.status().appliedIndex >= leader.node.status().commitIndex);
    expect(follower.lines.join('\n')).not.toMatch(/installed a snapshot/);
    expect(leader.lines.join('\n')).not.toMatch(/could not read entries/);
    const rowsOf = async (member: Member): Promise<Uint8Array[]> => (await (await clientOf(member)).query('SELECT v FROM t ORDER BY id')).rows.map((row) => (row as { v: Uint8Array }).v);
    const rows = await rowsOf(leader);
    expect(rows).toHaveLength(40);
    expect(await rowsOf(follower)).toEqual(rows);
    // What was read back for the follower went once sent: the leader holds no more than before.
    expect(leader.node.status().memory.logBytes).toBeLessThanOrEqual(heldBytesMax + 48 * KiB);
    // The follower keeps its own log within the budget too.
    expect(follower.node.status().memory.logBytes).toBeLessThanOrEqual(heldBytesMax + 48 * KiB);
  }, 60_000);
});
