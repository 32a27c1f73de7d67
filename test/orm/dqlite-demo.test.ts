/**
 * The Kysely dialect and the Drizzle driver against a real dqlite cluster (Debian's dqlite-demo:
 * go-dqlite with the C dqlite server), entered through a follower's address.
 */
import { eq, sql } from 'drizzle-orm';
import { integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';
import { type Generated, Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Database, connect } from '../../runtimes/node/client.ts';
import { drizzle } from '../../runtimes/node/drizzle.ts';
import { DqliteDialect } from '../../runtimes/node/kysely.ts';
import { type DqliteDemoCluster, startDqliteDemoCluster } from '../helpers/dqlite-demo.ts';

let cluster: DqliteDemoCluster;
let servers: string[];

beforeAll(async () => {
  cluster = await startDqliteDemoCluster({ size: 3 });
  const leader = await cluster.leader();
  servers = [cluster.addresses.find((a) => a !== leader)!];
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
});

describe('ORM drivers against real dqlite', () => {
  test('Kysely: schema, writes with insertId, a join, a committed and a rolled-back transaction', async () => {
    interface DB {
      authors: { id: Generated<number>; name: string };
      books: { id: Generated<number>; author_id: number; title: string };
    }
    const db = new Kysely<DB>({ dialect: new DqliteDialect({ servers, database: 'kysely-real', timeoutMs: 30_000 }) });
    try {
      await db.schema.createTable('authors').addColumn('id', 'integer', (c) => c.primaryKey()).addColumn('name', 'text', (c) => c.notNull()).execute();
      await db.schema
        .createTable('books')
        .addColumn('id', 'integer', (c) => c.primaryKey())
        .addColumn('author_id', 'integer', (c) => c.notNull())
        .addColumn('title', 'text', (c) => c.notNull())
        .execute();
      const author = await db.insertInto('authors').values({ name: 'le guin' }).executeTakeFirstOrThrow();
      await db.transaction().execute((trx) => trx.insertInto('books').values({ author_id: Number(author.insertId), title: 'the dispossessed' }).execute());
      await db
        .transaction()
        .execute(async (trx) => {
          await trx.insertInto('books').values({ author_id: Number(author.insertId), title: 'never written' }).execute();
          throw new Error('abandon');
        })
        .catch(() => undefined);
      const rows = await db.selectFrom('books').innerJoin('authors', 'authors.id', 'books.author_id').select(['authors.name', 'books.title']).execute();
      expect(rows).toEqual([{ name: 'le guin', title: 'the dispossessed' }]);
      const updated = await db.updateTable('books').set({ title: 'The Dispossessed' }).executeTakeFirstOrThrow();
      expect(updated.numUpdatedRows).toBe(1n);
    } finally {
      await db.destroy();
    }
  });

  test('Drizzle: returning, a transaction with a savepoint, batch', async () => {
    const tags = sqliteTable('tags', { id: integer('id').primaryKey(), label: text('label').notNull().unique() });
    let client: Database | undefined;
    try {
      client = await connect({ servers, database: 'drizzle-real', timeoutMs: 30_000 });
      const db = drizzle(client, { schema: { tags } });
      await db.run(sql`CREATE TABLE tags (id INTEGER PRIMARY KEY, label TEXT NOT NULL UNIQUE)`);
      const [first] = await db.insert(tags).values({ label: 'one' }).returning();
      expect(first).toEqual({ id: 1, label: 'one' });
      await db.transaction(async (tx) => {
        await tx.insert(tags).values({ label: 'two' });
        await tx.transaction(async (nested) => {
          await nested.insert(tags).values({ label: 'three' });
          nested.rollback();
        }).catch(() => undefined);
      });
      const [, listed] = await db.batch([db.insert(tags).values({ label: 'four' }), db.select({ label: tags.label }).from(tags).orderBy(tags.id)]);
      expect(listed).toEqual([{ label: 'one' }, { label: 'two' }, { label: 'four' }]);
      expect(await db.query.tags.findFirst({ where: eq(tags.label, 'two') })).toEqual({ id: 2, label: 'two' });
    } finally {
      await client?.close();
    }
  });
});
