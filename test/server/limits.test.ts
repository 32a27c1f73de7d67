/**
 * One limits table, checked at start-up; and a transaction SQLite commits that is too large to
 * replicate fails with an error naming the limit, rolled back, with nothing replicated.
 */
import { afterEach, describe, expect, test } from 'vitest';
import { DqliteError } from '../../src/client/index.ts';
import { LIMITS, LimitsError, PEER_MESSAGE_FRAMING_BYTES, resolveLimits, validateLimits } from '../../src/limits.ts';
import { startTestNode, until, type TestNode } from './harness.ts';

const MiB = 1024 * 1024;

describe('the limits table', () => {
  test('the defaults fit together', () => {
    expect(() => validateLimits({ ...LIMITS })).not.toThrow();
    expect(resolveLimits()).toEqual(LIMITS);
  });

  test('a proposal larger than a peer message can carry is refused, naming both limits', () => {
    const error = (() => {
      try {
        resolveLimits({ proposalBytesMax: 64 * MiB, clientRequestBytesMax: 1 * MiB });
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(LimitsError);
    expect((error as LimitsError).code).toBe('LIMITS');
    expect((error as LimitsError).message).toContain(
      `peerMessageBytesMax (${64 * MiB} bytes) must be at least ${64 * MiB + PEER_MESSAGE_FRAMING_BYTES} bytes: a peer message must carry the largest proposal`,
    );
  });

  test('every broken relationship is reported at once', () => {
    let problems: string[] = [];
    try {
      resolveLimits({ clientRequestBytesMax: 64 * MiB, databaseBytesMax: 4 * 1024 * MiB, snapshotChunkBytesMax: 0 });
    } catch (e) {
      problems = (e as LimitsError).problems;
    }
    expect(problems).toEqual(['snapshotChunkBytesMax must be a positive integer, got 0']);
    try {
      resolveLimits({ clientRequestBytesMax: 64 * MiB, databaseBytesMax: 4 * 1024 * MiB });
    } catch (e) {
      problems = (e as LimitsError).problems;
    }
    expect(problems.map((p) => p.split(' ')[0])).toEqual(['proposalBytesMax', 'snapshotBytesMax']);
    expect(problems[0]).toContain('a client request must not be larger than what can be proposed');
    expect(problems[1]).toContain("a snapshot must hold the largest database's main file and WAL");
  });

  test('a node does not start with limits that do not fit together', async () => {
    await expect(startTestNode({ limits: { logRecordBytesMax: 1 * MiB } })).rejects.toThrow(
      /logRecordBytesMax \(1048576 bytes\) must be at least 16777241 bytes: a log record must hold the largest proposal/,
    );
  });
});

describe('a transaction too large to replicate', () => {
  let open: TestNode | undefined;
  afterEach(async () => {
    await open?.close();
    open = undefined;
  });

  test('a 20 MiB blob replicates in parts; one above databaseBytesMax fails with SQLITE_TOOBIG naming it, rolled back, nothing replicated, the node serves on', async () => {
    // The harness's engine keeps its own 1 GiB file bound: this checks the node's own guard.
    open = await startTestNode({ limits: { databaseBytesMax: 32 * MiB } });
    const node = open.node;
    await until('leadership', 10_000, () => node.isLeader());
    const db = await open.client('app');
    await db.exec('CREATE TABLE big (id INTEGER PRIMARY KEY, b BLOB)');
    await db.exec('INSERT INTO big (b) VALUES (randomblob(1000))');
    const start = node.status();
    await db.exec('INSERT INTO big (b) VALUES (zeroblob(20 * 1024 * 1024))');
    // Two parts, a commit entry, and the checkpoint the long WAL calls for (proposed on apply).
    expect(node.status().lastIndex).toBe(start.lastIndex + 4);
    await db.exec('DELETE FROM big WHERE length(b) > 1000');
    const before = node.status();

    const error = await db.exec('INSERT INTO big (b) VALUES (zeroblob(40 * 1024 * 1024))').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(DqliteError);
    expect((error as DqliteError).code).toBe(18);
    expect((error as DqliteError).message).toMatch(
      /transaction of \d+ bytes exceeds databaseBytesMax \(33554432 bytes\).*rolled back and nothing was replicated/,
    );
    const after = node.status();
    expect(after.lastIndex).toBe(before.lastIndex);
    expect(after.databases).toEqual(before.databases);
    expect((await db.query('SELECT count(*) AS n FROM big')).rows).toEqual([{ n: 1 }]);

    // The same inside an explicit transaction: COMMIT fails, the transaction is gone.
    await expect(db.exec('BEGIN; INSERT INTO big (b) VALUES (zeroblob(34 * 1024 * 1024)); COMMIT')).rejects.toThrow(/databaseBytesMax/);
    expect((await db.query('SELECT count(*) AS n FROM big')).rows).toEqual([{ n: 1 }]);

    // A request larger than clientRequestBytesMax is answered with the limit's name, then the
    // connection closes (the rest of its bytes cannot be trusted); the client reconnects.
    const tooLong = await db.exec('INSERT INTO big (b) VALUES (?)', [new Uint8Array(17 * 1024 * 1024)]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(tooLong).toBeInstanceOf(DqliteError);
    expect((tooLong as DqliteError).code).toBe(18);
    expect((tooLong as DqliteError).message).toContain('exceeds the limit of 16777216 bytes (clientRequestBytesMax)');

    const again = await open.client('app');
    await again.exec('INSERT INTO big (b) VALUES (randomblob(1000))');
    expect((await again.query('SELECT count(*) AS n FROM big')).rows).toEqual([{ n: 2 }]);
    expect(node.status().lastIndex).toBe(before.lastIndex + 1);
  });
});

describe('a result too large for clientResultBytesMax', () => {
  let open: TestNode | undefined;
  afterEach(async () => {
    await open?.close();
    open = undefined;
  });

  test('counts the last Rows batch too: a result that crosses the limit only there fails naming it', async () => {
    open = await startTestNode({ limits: { clientResultBytesMax: 64 * 1024, liveResultBytesMax: 64 * 1024 } });
    await until('leadership', 10_000, () => open!.node.isLeader());
    const db = await open.client('app');
    // One row, so the whole result is the final batch.
    await expect(db.query('SELECT zeroblob(100 * 1024)')).rejects.toThrow(/clientResultBytesMax/);
    await expect(db.query('SELECT zeroblob(1024) AS b')).resolves.toBeDefined();
  });
});
