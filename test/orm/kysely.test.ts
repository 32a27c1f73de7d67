/**
 * The Kysely dialect against a real 3-node dqlite-wasm cluster (node processes on loopback).
 */
import { type Generated, Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connect } from '../../runtimes/node/client.ts';
import { DqliteDialect } from '../../runtimes/node/kysely.ts';
import { TestCluster } from '../helpers/cluster.ts';

interface DB {
  users: { id: Generated<number>; name: string; email: string };
  posts: { id: Generated<number>; user_id: number; title: string };
  counter: { id: number; value: number };
  events: { seq: Generated<number>; who: string; what: string };
  numbers: { n: number };
}

let cluster: TestCluster;
const open: Kysely<DB>[] = [];

function kysely(servers: string[] = cluster.addresses, options: { resultRowsMax?: number } = {}): Kysely<DB> {
  const db = new Kysely<DB>({ dialect: new DqliteDialect({ servers, database: 'kysely', ...options }) });
  open.push(db);
  return db;
}

beforeAll(async () => {
  cluster = await TestCluster.start({ nodes: 3 });
  const db = kysely();
  await db.schema
    .createTable('users')
    .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('email', 'text', (c) => c.notNull().unique())
    .execute();
  await db.schema
    .createTable('posts')
    .addColumn('id', 'integer', (c) => c.primaryKey().autoIncrement())
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id'))
    .addColumn('title', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createTable('counter').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('value', 'integer', (c) => c.notNull()).execute();
  await db.schema
    .createTable('events')
    .addColumn('seq', 'integer', (c) => c.primaryKey().autoIncrement())
    .addColumn('who', 'text', (c) => c.notNull())
    .addColumn('what', 'text', (c) => c.notNull())
    .execute();
  await db.schema.createTable('numbers').addColumn('n', 'integer', (c) => c.notNull()).execute();
}, 120_000);

afterAll(async () => {
  await Promise.all(open.map((db) => db.destroy()));
  await cluster?.destroy();
});

describe('Kysely over a dqlite-wasm cluster', () => {
  test('insert, select with a join, update and delete report what they did', async () => {
    const db = kysely();
    const alice = await db.insertInto('users').values({ name: 'alice', email: 'alice@example.com' }).executeTakeFirstOrThrow();
    const bob = await db.insertInto('users').values({ name: 'bob', email: 'bob@example.com' }).executeTakeFirstOrThrow();
    expect(alice.insertId).toBeTypeOf('bigint');
    expect(bob.insertId).toBe(alice.insertId! + 1n);
    expect(alice.numInsertedOrUpdatedRows).toBe(1n);

    await db
      .insertInto('posts')
      .values([
        { user_id: Number(alice.insertId), title: 'first' },
        { user_id: Number(alice.insertId), title: 'second' },
        { user_id: Number(bob.insertId), title: 'hello' },
      ])
      .execute();
    const joined = await db
      .selectFrom('posts')
      .innerJoin('users', 'users.id', 'posts.user_id')
      .select(['users.name', 'posts.title'])
      .orderBy('posts.id')
      .execute();
    expect(joined).toEqual([
      { name: 'alice', title: 'first' },
      { name: 'alice', title: 'second' },
      { name: 'bob', title: 'hello' },
    ]);

    const updated = await db.updateTable('posts').set({ title: 'edited' }).where('user_id', '=', Number(alice.insertId)).executeTakeFirstOrThrow();
    expect(updated.numUpdatedRows).toBe(2n);
    const returned = await db.insertInto('posts').values({ user_id: Number(bob.insertId), title: 'ret' }).returning(['id', 'title']).executeTakeFirstOrThrow();
    expect(returned.title).toBe('ret');
    const deleted = await db.deleteFrom('posts').where('user_id', '=', Number(bob.insertId)).executeTakeFirstOrThrow();
    expect(deleted.numDeletedRows).toBe(2n);
    const left = await db.selectFrom('posts').select(({ fn }) => fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    expect(left.n).toBe(2);

    const tables = await db.introspection.getTables();
    expect(tables.map((t) => t.name).sort()).toEqual(['counter', 'events', 'numbers', 'posts', 'users']);
  });

  test('a transaction commits; one whose callback throws rolls back, and a bad statement leaves the connection usable', async () => {
    const db = kysely();
    const id = await db.transaction().execute(async (trx) => {
      const user = await trx.insertInto('users').values({ name: 'carol', email: 'carol@example.com' }).executeTakeFirstOrThrow();
      await trx.insertInto('posts').values({ user_id: Number(user.insertId), title: 'in tx' }).execute();
      return Number(user.insertId);
    });
    expect(await db.selectFrom('posts').select('title').where('user_id', '=', id).execute()).toEqual([{ title: 'in tx' }]);

    const failure = await db
      .transaction()
      .execute(async (trx) => {
        await trx.insertInto('users').values({ name: 'dave', email: 'dave@example.com' }).execute();
        throw new Error('changed my mind');
      })
      .catch((error: unknown) => error);
    expect((failure as Error).message).toBe('changed my mind');
    expect(await db.selectFrom('users').select('id').where('name', '=', 'dave').execute()).toEqual([]);

    const duplicate = await db
      .transaction()
      .execute((trx) => trx.insertInto('users').values({ name: 'alice2', email: 'alice@example.com' }).execute())
      .catch((error: unknown) => error);
    expect(duplicate).toMatchObject({ code: 2067 });
    expect(await db.selectFrom('users').select('name').where('name', '=', 'alice2').execute()).toEqual([]);
  });

  test('savepoints: a rolled-back savepoint undoes only its own writes', async () => {
    const db = kysely();
    const trx = await db.startTransaction().execute();
    await trx.insertInto('numbers').values({ n: 1 }).execute();
    const afterOne = await trx.savepoint('after_one').execute();
    await afterOne.insertInto('numbers').values({ n: 2 }).execute();
    const back = await afterOne.rollbackToSavepoint('after_one').execute();
    await back.insertInto('numbers').values({ n: 3 }).execute();
    await back.commit().execute();
    const rows = await db.selectFrom('numbers').select('n').orderBy('n').execute();
    expect(rows.map((r) => r.n)).toEqual([1, 3]);
  });

  test('two Kysely instances running transactions at once never interleave', async () => {
    const first = kysely();
    const second = kysely();
    await first.insertInto('counter').values({ id: 1, value: 0 }).execute();
    const rounds = 8;
    const work = async (db: Kysely<DB>, who: string): Promise<void> => {
      for (let i = 0; i < rounds; i++) {
        await db.transaction().execute(async (trx) => {
          await trx.insertInto('events').values({ who, what: 'begin' }).execute();
          const { value } = await trx.selectFrom('counter').select('value').where('id', '=', 1).executeTakeFirstOrThrow();
          // Give the other instance every chance to slip in between the read and the write.
          await new Promise((resolve) => setTimeout(resolve, 5));
          await trx.updateTable('counter').set({ value: value + 1 }).where('id', '=', 1).execute();
          await trx.insertInto('events').values({ who, what: 'end' }).execute();
        });
      }
    };
    await Promise.all([work(first, 'first'), work(second, 'second')]);
    const { value } = await first.selectFrom('counter').select('value').where('id', '=', 1).executeTakeFirstOrThrow();
    expect(value).toBe(2 * rounds);
    const events = await first.selectFrom('events').select(['who', 'what']).orderBy('seq').execute();
    expect(events).toHaveLength(4 * rounds);
    for (let i = 0; i < events.length; i += 2) {
      expect(events[i]).toEqual({ who: events[i]!.who, what: 'begin' });
      expect(events[i + 1]).toEqual({ who: events[i]!.who, what: 'end' });
    }
    expect(new Set(events.map((e) => e.who))).toEqual(new Set(['first', 'second']));
  });

  test('a write through a follower address finds the leader', async () => {
    const leader = await cluster.waitForLeader();
    const follower = cluster.nodes.find((n) => n.index !== leader)!;
    const db = kysely([follower.address]);
    const result = await db.insertInto('users').values({ name: 'via-follower', email: 'follower@example.com' }).executeTakeFirstOrThrow();
    expect(result.numInsertedOrUpdatedRows).toBe(1n);
    const check = kysely([cluster.nodes[leader]!.address]);
    expect(await check.selectFrom('users').select('name').where('id', '=', Number(result.insertId)).execute()).toEqual([{ name: 'via-follower' }]);
  });

  test('streamQuery passes a result larger than the client may hold at once, and stopping early frees the connection', async () => {
    const writer = kysely();
    await writer.executeQuery(
      sql`WITH RECURSIVE seq(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM seq WHERE x < 3000) INSERT INTO numbers (n) SELECT x + 100 FROM seq`.compile(writer),
    );
    const db = kysely(cluster.addresses, { resultRowsMax: 500 });
    const all = db.selectFrom('numbers').select('n').where('n', '>', 100).orderBy('n');
    await expect(all.execute()).rejects.toMatchObject({ code: 'too_large' });

    let total = 0;
    let last = 0;
    for await (const row of all.stream(250)) {
      total++;
      expect(row.n).toBe(last === 0 ? 101 : last + 1);
      last = row.n;
    }
    expect(total).toBe(3000);

    let seen = 0;
    for await (const _row of all.stream(10)) {
      if (++seen === 15) break;
    }
    expect(seen).toBe(15);
    expect(await db.selectFrom('numbers').select(({ fn }) => fn.countAll<number>().as('c')).where('n', '>', 100).executeTakeFirstOrThrow()).toEqual({ c: 3000 });
  });

  test('under the dialect: a statement inside the loop of a stream on the same transaction fails at once instead of waiting forever', async () => {
    // Kysely itself queues a transaction's queries one at a time, so this is the client's guard.
    const client = await connect({ servers: cluster.addresses, database: 'kysely' });
    try {
      await client.transaction(async (tx) => {
        for await (const batch of tx.stream('SELECT n FROM numbers')) {
          expect(batch.rows.length).toBeGreaterThan(0);
          await expect(tx.exec('INSERT INTO numbers (n) VALUES (-1)')).rejects.toThrow(/a streamed query is still being read/);
          break;
        }
        await tx.exec('INSERT INTO numbers (n) VALUES (-2)');
      });
      expect((await client.query('SELECT n FROM numbers WHERE n < 0')).rows).toEqual([{ n: -2 }]);
    } finally {
      await client.close();
    }
  });

  test('a Kysely instance can run on a client Database the application opened', async () => {
    const client = await connect({ servers: cluster.addresses, database: 'kysely' });
    const db = new Kysely<DB>({ dialect: new DqliteDialect({ client }) });
    expect(await db.selectFrom('users').select('name').where('name', '=', 'alice').execute()).toEqual([{ name: 'alice' }]);
    await db.destroy();
    // destroy() leaves a Database it did not open to its owner.
    expect((await client.query('SELECT count(*) AS c FROM users')).rows[0]!['c']).toBeGreaterThan(0);
    await client.close();
  });
});
