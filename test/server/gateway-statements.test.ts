import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestNode, type TestNode } from './harness.ts';

let node: TestNode;

beforeAll(async () => {
  node = await startTestNode();
});
afterAll(async () => {
  await node?.close();
});

function bytes(length: number, seed: number): Uint8Array {
  return new Uint8Array(length).map((_, i) => (i * 31 + seed) & 0xff);
}

describe('the gateway runs statements a client sends again and again', () => {
  it('EXEC_SQL of one text with new values each time stores each write with its own values', async () => {
    const db = await node.client('again');
    await db.exec('CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB)');
    const sent: Uint8Array[] = [];
    for (let i = 0; i < 40; i++) {
      const value = bytes(1024 + i, i);
      sent.push(value);
      await db.exec('INSERT OR REPLACE INTO kv(k, v) VALUES(?, ?)', [`key-${i % 10}`, value]);
    }
    // Fewer values than parameters: the missing one is NULL, never the last write's value.
    await db.exec('INSERT OR REPLACE INTO kv(k, v) VALUES(?, ?)', ['key-null']);
    const rows = (await db.queryRaw('SELECT k, v FROM kv ORDER BY k')).rows;
    expect(rows).toHaveLength(11);
    for (let k = 0; k < 10; k++) expect(rows[k]).toEqual([`key-${k}`, sent[30 + k]]);
    expect(rows[10]).toEqual(['key-null', null]);
    await db.close();
  });

  it('several statements in one text, and a deferred BEGIN, each time', async () => {
    const db = await node.client('again-multi');
    await db.exec('CREATE TABLE t (n INTEGER)');
    for (let i = 0; i < 5; i++) await db.exec(`INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);  `);
    for (let i = 0; i < 3; i++) {
      await db.transaction(async (tx) => {
        await tx.exec('INSERT INTO t VALUES (?)', [10 + i]);
      });
    }
    expect((await db.queryRaw('SELECT n, count(*) FROM t GROUP BY n ORDER BY n')).rows).toEqual([
      [1, 5],
      [2, 5],
      [10, 1],
      [11, 1],
      [12, 1],
    ]);
    await db.close();
  });

  it('a prepared statement run with values, then without, binds NULL: it keeps nothing of the last run', async () => {
    const db = await node.client('again-prepared');
    await db.exec('CREATE TABLE p (a, b)');
    const insert = await db.prepare('INSERT INTO p VALUES (?, ?)');
    await insert.exec([bytes(2000, 1), 'x']);
    const value = bytes(3000, 2);
    await insert.exec([value, 'y']);
    // A later request's bytes must not show through the values kept by the statement.
    await db.exec('SELECT ?', [bytes(3000, 99)]);
    await insert.exec([value, 'z']);
    await insert.close();
    expect((await db.queryRaw('SELECT a, b FROM p ORDER BY rowid')).rows).toEqual([
      [bytes(2000, 1), 'x'],
      [value, 'y'],
      [value, 'z'],
    ]);
    await db.close();
  });

  it('a schema change between runs: the same text fails, then works again', async () => {
    const db = await node.client('again-schema');
    await db.exec('CREATE TABLE s (a)');
    await db.exec('INSERT INTO s VALUES (?)', [1]);
    await db.exec('ALTER TABLE s ADD COLUMN b DEFAULT 5');
    await db.exec('INSERT INTO s VALUES (?)', [2]).catch(() => undefined);
    expect((await db.queryRaw('SELECT count(*) FROM s')).rows).toEqual([[1]]);
    await db.exec('DROP TABLE s');
    await expect(db.exec('INSERT INTO s (a) VALUES (?)', [3])).rejects.toMatchObject({ message: expect.stringMatching(/no such table/) });
    await db.exec('CREATE TABLE s (a)');
    await db.exec('INSERT INTO s (a) VALUES (?)', [4]);
    expect((await db.queryRaw('SELECT a FROM s')).rows).toEqual([[4]]);
    await db.close();
  });
});
