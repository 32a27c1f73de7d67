/**
 * The change feed on an in-process node (real engine, real storage, our client over the dqlite
 * protocol bytes): live events, resuming from a bookmark, table filters, a lagging consumer,
 * the gap after the log was compacted, and bad requests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { startNode } from '../../runtimes/node/library.ts';
import { ChangeFeed, type ChangeFeedEvent } from '../../src/live/change-feed.ts';
import type { ChangeStream } from '../../src/live/change-feed-client.ts';
import { encodeChangeRequest } from '../../src/protocol/change-requests.ts';
import { FrameReader, decodeResponse, encodeVersion } from '../../src/protocol/index.ts';
import { startTestNode, streamPair, type TestNode } from '../server/harness.ts';

let node: TestNode | undefined;

afterEach(async () => {
  await node?.close();
  node = undefined;
});

/** The next `count` events of `feed`, failing after `timeoutMs`. */
async function nextEvents(feed: AsyncIterator<ChangeFeedEvent>, count: number, timeoutMs = 10_000): Promise<ChangeFeedEvent[]> {
  const events: ChangeFeedEvent[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms with ${events.length} of ${count} events: ${JSON.stringify(events)}`)), timeoutMs);
  });
  try {
    while (events.length < count) {
      const result = await Promise.race([feed.next(), timeout]);
      if (result.done) throw new Error('the feed ended');
      events.push(result.value);
    }
  } finally {
    clearTimeout(timer);
  }
  return events;
}

function indexes(events: ChangeFeedEvent[]): number[] {
  return events.map((e) => (e.type === 'transaction' ? e.index : -e.firstAvailableIndex));
}

describe('change feed on one node', () => {
  test('gives each committed transaction with its rows, resumes from a bookmark, filters tables', async () => {
    node = await startTestNode();
    const db = await node.client('app');
    await db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
    await db.exec('CREATE TABLE other(v)');
    const feed = db.changes();
    // Connecting is lazy: the first next() subscribes from now.
    const first = feed.next();
    await new Promise((r) => setTimeout(r, 200));
    await db.exec("INSERT INTO t VALUES (1, 'a')");
    await db.exec("UPDATE t SET v = 'b' WHERE id = 1");
    await db.exec('INSERT INTO other VALUES (1)');
    const events = [(await first).value as ChangeFeedEvent, ...(await nextEvents(feed, 2))];
    expect(events.map((e) => e.type === 'transaction' && e.rows)).toEqual([
      [{ operation: 'insert', table: 't', primaryKey: [1], values: [1, 'a'] }],
      [{ operation: 'update', table: 't', primaryKey: [1], values: [1, 'b'] }],
      [{ operation: 'insert', table: 'other', primaryKey: [1], values: [1] }],
    ]);
    const tx = events[0]!;
    expect(tx.type === 'transaction' && tx.database).toBe('app');
    expect(tx.type === 'transaction' && Math.abs(tx.timeMs! - Date.now()) < 60_000).toBe(true);
    const afterFirst = tx.type === 'transaction' ? tx.index : 0;
    feed.close();

    // Resume after the first event: exactly the two that followed, then new ones.
    const resumed = db.changes({ since: afterFirst });
    const again = await nextEvents(resumed, 2);
    expect(indexes(again)).toEqual(indexes(events.slice(1)));
    // Another database's transactions are not this feed's.
    const elsewhere = await node.client('elsewhere');
    await elsewhere.exec('CREATE TABLE z(v)');
    await elsewhere.exec('INSERT INTO z VALUES (1)');
    await db.exec("DELETE FROM t WHERE id = 1");
    const [deleted] = await nextEvents(resumed, 1);
    expect(deleted!.type === 'transaction' && deleted!.rows).toEqual([{ operation: 'delete', table: 't', primaryKey: [1] }]);
    expect(resumed.bookmark).toBe(deleted!.type === 'transaction' ? deleted!.index : -1);
    resumed.close();

    // Only `other` (and schema changes, which may concern it): the transactions on t are not given.
    const filtered = db.changes({ since: 0, tables: ['other'] });
    const onlyOther = await nextEvents(filtered, 3);
    expect(onlyOther.map((e) => e.type === 'transaction' && e.tables)).toEqual([['sqlite_schema'], ['sqlite_schema'], ['other']]);
    filtered.close();
  });

  test('a consumer that lags past the buffer gets everything, in order, once (the feed rereads the log)', async () => {
    node = await startTestNode();
    const db = await node.client('app');
    await db.exec('CREATE TABLE t(v)');
    const feed = new ChangeFeed(node.node.changeLog(), { database: 'app', queuedEventsMax: 3 });
    // Caught up: the feed follows live events from here.
    expect(feed.take()).toBeUndefined();
    for (let i = 0; i < 12; i++) await db.exec('INSERT INTO t VALUES (?)', [i]);
    const values: unknown[] = [];
    for (let event = feed.take(); event; event = feed.take()) {
      if (event.type === 'transaction') values.push(event.rows?.[0]?.values?.[0]);
    }
    expect(values).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    feed.close();
  });

  test('a bookmark the log no longer covers gives a gap naming the first index available', async () => {
    node = await startTestNode({ snapshotThresholdEntries: 8, snapshotTrailingEntries: 2 });
    const db = await node.client('app');
    await db.exec('CREATE TABLE t(v)');
    for (let i = 0; i < 40; i++) await db.exec('INSERT INTO t VALUES (?)', [i]);
    const source = node.node.changeLog();
    // Wait until a snapshot compacted the log.
    for (let i = 0; i < 200 && source.firstLogIndex() <= 2; i++) await new Promise((r) => setTimeout(r, 20));
    const first = source.firstLogIndex();
    expect(first).toBeGreaterThan(2);
    const feed = db.changes({ since: 1 });
    const [gap, next] = await nextEvents(feed, 2);
    expect(gap).toMatchObject({ type: 'gap', since: 1, firstAvailableIndex: first });
    expect(gap!.type === 'gap' && gap!.message).toMatch(new RegExp(`not available.*starts at index ${first}`));
    expect(next!.type === 'transaction' && next!.index).toBeGreaterThanOrEqual(first);
    feed.close();
  });

  test('bad requests get clear errors and the node keeps serving', async () => {
    node = await startTestNode();
    const db = await node.client('app');
    await db.exec('CREATE TABLE t(v)');
    expect(() => db.changes({ since: -1 })).toThrow(/since must be a log index/);
    const feed: ChangeStream = db.changes({ since: 0, credit: 1 });
    // credit 1: the server sends one event at a time, acknowledged as they are consumed.
    const events = await nextEvents(feed, 1);
    expect(events).toHaveLength(1);
    feed.close();

    // Raw protocol: a WatchChanges without a database, and an acknowledgement without a feed.
    const [client, server] = streamPair('raw-client', 'node');
    node.node.acceptClient(server);
    const frames = new FrameReader();
    const answers: ReturnType<typeof decodeResponse>[] = [];
    client.onData((chunk) => answers.push(...frames.feed(chunk).map((m) => decodeResponse(m))));
    client.write(encodeVersion());
    client.write(encodeChangeRequest({ type: 'watch_changes', database: '', since: undefined, credit: 4, tables: [] }));
    client.write(encodeChangeRequest({ type: 'changes_ack', consumed: 3 }));
    for (let i = 0; i < 200 && answers.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(answers.map((a) => a.type === 'failure' && a.message)).toEqual([
      'a change feed needs a database name',
      'ChangesAck without a change feed on this connection: send WatchChanges first',
    ]);
    client.close();
    expect((await db.query('SELECT count(*) AS n FROM t')).rows).toEqual([{ n: 0 }]);
  });
});

describe('change feed on the in-process handle (startNode)', () => {
  test('db.changes() on an EmbeddedNode database reads its own node, and resumes after a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dqlite-wasm-feed-embedded-'));
    try {
      let embedded = await startNode({ dir, tickMs: 20 });
      for (let i = 0; i < 250 && embedded.status().state !== 'leader'; i++) await new Promise((r) => setTimeout(r, 20));
      let db = await embedded.database('app');
      await db.exec('CREATE TABLE t(v)');
      await db.exec('INSERT INTO t VALUES (1)');
      const feed = db.changes({ since: 0, tables: ['t'] });
      const [, insert] = await nextEvents(feed, 2);
      expect(insert!.type === 'transaction' && insert!.rows).toEqual([{ operation: 'insert', table: 't', primaryKey: [1], values: [1] }]);
      const bookmark = feed.bookmark!;
      feed.close();
      await embedded.close();

      embedded = await startNode({ dir, tickMs: 20 });
      db = await embedded.database('app');
      await db.exec('INSERT INTO t VALUES (2)');
      const resumed = db.changes({ since: bookmark });
      const [next] = await nextEvents(resumed, 1);
      expect(next!.type === 'transaction' && next!.rows).toEqual([{ operation: 'insert', table: 't', primaryKey: [2], values: [2] }]);
      resumed.close();
      await embedded.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
