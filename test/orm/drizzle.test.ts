/**
 * The Drizzle driver against a real 3-node dqlite-wasm cluster (node processes on loopback),
 * with a schema made by migrations in drizzle-kit's format (test/orm/fixtures/drizzle-migrations).
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TransactionRollbackError, count, eq, relations, sql } from 'drizzle-orm';
import { integer, sqliteTable, text } from 'drizzle-orm/sqlite-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type Database, connect } from '../../runtimes/node/client.ts';
import { drizzle, migrate } from '../../runtimes/node/drizzle.ts';
import { TestCluster } from '../helpers/cluster.ts';

const users = sqliteTable('users', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull(),
  email: text('email').notNull().unique(),
  age: integer('age'),
});
const posts = sqliteTable('posts', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  userId: integer('user_id')
    .notNull()
    .references(() => users.id, { onDelete: 'cascade' }),
  title: text('title').notNull(),
});
const counter = sqliteTable('counter', { id: integer('id').primaryKey(), value: integer('value').notNull() });
const events = sqliteTable('events', {
  seq: integer('seq').primaryKey({ autoIncrement: true }),
  who: text('who').notNull(),
  what: text('what').notNull(),
});
const usersRelations = relations(users, ({ many }) => ({ posts: many(posts) }));
const postsRelations = relations(posts, ({ one }) => ({ author: one(users, { fields: [posts.userId], references: [users.id] }) }));
const schema = { users, posts, counter, events, usersRelations, postsRelations };

const MIGRATIONS = fileURLToPath(new URL('./fixtures/drizzle-migrations', import.meta.url));

let cluster: TestCluster;
const clients: Database[] = [];

async function orm(servers: string[] = cluster.addresses) {
  const client = await connect({ servers, database: 'drizzle' });
  clients.push(client);
  return drizzle(client, { schema });
}

beforeAll(async () => {
  cluster = await TestCluster.start({ nodes: 3 });
}, 120_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await cluster?.destroy();
});

describe('Drizzle over a dqlite-wasm cluster', () => {
  test('migrate applies drizzle-kit migrations once, and later ones when they appear', async () => {
    const db = await orm();
    // First only the first two migrations, as if the third had not been generated yet.
    const partial = mkdtempSync(join(tmpdir(), 'drizzle-migrations-'));
    try {
      cpSync(MIGRATIONS, partial, { recursive: true });
      const journal = JSON.parse(readFileSync(join(partial, 'meta/_journal.json'), 'utf8')) as { entries: unknown[] };
      journal.entries = journal.entries.slice(0, 2);
      writeFileSync(join(partial, 'meta/_journal.json'), JSON.stringify(journal));
      await migrate(db, { migrationsFolder: partial });
    } finally {
      rmSync(partial, { recursive: true, force: true });
    }
    const tablesAfter = async (): Promise<string[]> =>
      (await db.all<{ name: string }>(sql`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`)).map((r) => r.name);
    expect(await tablesAfter()).toEqual(['__drizzle_migrations', 'posts', 'users']);

    await migrate(db, { migrationsFolder: MIGRATIONS });
    await migrate(db, { migrationsFolder: MIGRATIONS });
    expect(await tablesAfter()).toEqual(['__drizzle_migrations', 'counter', 'events', 'posts', 'users']);
    const applied = await db.all<{ created_at: number }>(sql`SELECT created_at FROM __drizzle_migrations ORDER BY created_at`);
    expect(applied.map((r) => Number(r.created_at))).toEqual([1764633600000, 1764637200000, 1764640800000]);
    const columns = await db.all<{ name: string }>(sql`SELECT name FROM pragma_table_info('users')`);
    expect(columns.map((c) => c.name)).toEqual(['id', 'name', 'email', 'age']);
  });

  test('insert with returning, select with a join, update and delete', async () => {
    const db = await orm();
    const [alice] = await db.insert(users).values({ name: 'alice', email: 'alice@example.com', age: 30 }).returning();
    const [bob] = await db.insert(users).values({ name: 'bob', email: 'bob@example.com' }).returning({ id: users.id });
    expect(alice).toEqual({ id: alice!.id, name: 'alice', email: 'alice@example.com', age: 30 });
    expect(bob!.id).toBe(alice!.id + 1);

    const inserted = await db.insert(posts).values([
      { userId: alice!.id, title: 'first' },
      { userId: alice!.id, title: 'second' },
      { userId: bob!.id, title: 'hello' },
    ]);
    expect(inserted.rowsAffected).toBe(3);

    const joined = await db
      .select({ name: users.name, title: posts.title })
      .from(posts)
      .innerJoin(users, eq(posts.userId, users.id))
      .orderBy(posts.id);
    expect(joined).toEqual([
      { name: 'alice', title: 'first' },
      { name: 'alice', title: 'second' },
      { name: 'bob', title: 'hello' },
    ]);
    const leftJoined = await db.select().from(users).leftJoin(posts, eq(posts.userId, users.id)).where(eq(users.name, 'bob'));
    expect(leftJoined).toEqual([{ users: { id: bob!.id, name: 'bob', email: 'bob@example.com', age: null }, posts: { id: expect.any(Number), userId: bob!.id, title: 'hello' } }]);

    const updated = await db.update(users).set({ age: 31 }).where(eq(users.id, alice!.id)).returning({ age: users.age });
    expect(updated).toEqual([{ age: 31 }]);
    const run = await db.update(posts).set({ title: 'edited' }).where(eq(posts.userId, alice!.id));
    expect(run.rowsAffected).toBe(2);

    const removed = await db.delete(posts).where(eq(posts.userId, bob!.id));
    expect(removed.rowsAffected).toBe(1);
    expect(await db.select({ n: count() }).from(posts)).toEqual([{ n: 2 }]);
  });

  test('relational queries load nested rows', async () => {
    const db = await orm();
    const withPosts = await db.query.users.findMany({ with: { posts: { columns: { title: true } } }, where: eq(users.name, 'alice') });
    expect(withPosts).toEqual([{ id: expect.any(Number), name: 'alice', email: 'alice@example.com', age: 31, posts: [{ title: 'edited' }, { title: 'edited' }] }]);
    const post = await db.query.posts.findFirst({ with: { author: { columns: { name: true } } } });
    expect(post?.author).toEqual({ name: 'alice' });
  });

  test('transactions commit, roll back on a thrown error and on tx.rollback(), and nest as savepoints', async () => {
    const db = await orm();
    const id = await db.transaction(async (tx) => {
      const [carol] = await tx.insert(users).values({ name: 'carol', email: 'carol@example.com' }).returning();
      await tx.insert(posts).values({ userId: carol!.id, title: 'in tx' });
      return carol!.id;
    });
    expect(await db.select({ title: posts.title }).from(posts).where(eq(posts.userId, id))).toEqual([{ title: 'in tx' }]);

    const thrown = await db
      .transaction(async (tx) => {
        await tx.insert(users).values({ name: 'dave', email: 'dave@example.com' });
        throw new Error('changed my mind');
      })
      .catch((error: unknown) => error);
    expect((thrown as Error).message).toBe('changed my mind');
    const rolledBack = await db
      .transaction(async (tx) => {
        await tx.insert(users).values({ name: 'erin', email: 'erin@example.com' });
        tx.rollback();
      })
      .catch((error: unknown) => error);
    expect(rolledBack).toBeInstanceOf(TransactionRollbackError);
    expect(await db.select().from(users).where(sql`${users.name} IN ('dave', 'erin')`)).toEqual([]);

    await db.transaction(async (tx) => {
      await tx.insert(users).values({ name: 'frank', email: 'frank@example.com' });
      const inner = await tx
        .transaction(async (nested) => {
          await nested.insert(users).values({ name: 'grace', email: 'grace@example.com' });
          throw new Error('inner fails');
        })
        .catch((error: unknown) => error);
      expect((inner as Error).message).toBe('inner fails');
      await tx.transaction(async (nested) => {
        await nested.insert(users).values({ name: 'heidi', email: 'heidi@example.com' });
      });
    }, { behavior: 'immediate' });
    const names = await db.select({ name: users.name }).from(users).where(sql`${users.name} IN ('frank', 'grace', 'heidi')`).orderBy(users.name);
    expect(names).toEqual([{ name: 'frank' }, { name: 'heidi' }]);
  });

  test('batch runs its queries in one transaction: all apply, or none when one fails', async () => {
    const db = await orm();
    const [first, second, selected] = await db.batch([
      db.insert(users).values({ name: 'ivan', email: 'ivan@example.com' }).returning({ id: users.id }),
      db.insert(users).values({ name: 'judy', email: 'judy@example.com' }),
      db.select({ name: users.name }).from(users).where(sql`${users.name} IN ('ivan', 'judy')`).orderBy(users.name),
    ]);
    expect(first).toEqual([{ id: expect.any(Number) }]);
    expect(second.rowsAffected).toBe(1);
    expect(selected).toEqual([{ name: 'ivan' }, { name: 'judy' }]);

    const failed = await db
      .batch([db.insert(users).values({ name: 'mallory', email: 'mallory@example.com' }), db.insert(users).values({ name: 'copy', email: 'ivan@example.com' })])
      .catch((error: unknown) => error);
    expect(((failed as Error).cause as { code: number }).code).toBe(2067);
    expect(await db.select().from(users).where(eq(users.name, 'mallory'))).toEqual([]);
    // The Database is free again after the failed batch.
    expect(await db.$count(users, eq(users.name, 'ivan'))).toBe(1);
  });

  test('two Drizzle instances running transactions at once never interleave', async () => {
    const first = await orm();
    const second = await orm();
    await first.insert(counter).values({ id: 1, value: 0 });
    const rounds = 8;
    const work = async (db: Awaited<ReturnType<typeof orm>>, who: string): Promise<void> => {
      for (let i = 0; i < rounds; i++) {
        await db.transaction(async (tx) => {
          await tx.insert(events).values({ who, what: 'begin' });
          const [row] = await tx.select({ value: counter.value }).from(counter).where(eq(counter.id, 1));
          // Give the other instance every chance to slip in between the read and the write.
          await new Promise((resolve) => setTimeout(resolve, 5));
          await tx.update(counter).set({ value: row!.value + 1 }).where(eq(counter.id, 1));
          await tx.insert(events).values({ who, what: 'end' });
        });
      }
    };
    await Promise.all([work(first, 'first'), work(second, 'second')]);
    expect(await first.select({ value: counter.value }).from(counter)).toEqual([{ value: 2 * rounds }]);
    const log = await first.select({ who: events.who, what: events.what }).from(events).orderBy(events.seq);
    expect(log).toHaveLength(4 * rounds);
    for (let i = 0; i < log.length; i += 2) {
      expect(log[i]).toEqual({ who: log[i]!.who, what: 'begin' });
      expect(log[i + 1]).toEqual({ who: log[i]!.who, what: 'end' });
    }
    expect(new Set(log.map((e) => e.who))).toEqual(new Set(['first', 'second']));
  });

  test('a write through a follower address finds the leader', async () => {
    const leader = await cluster.waitForLeader();
    const follower = cluster.nodes.find((n) => n.index !== leader)!;
    const db = await orm([follower.address]);
    const [row] = await db.insert(users).values({ name: 'via-follower', email: 'follower@example.com' }).returning({ id: users.id });
    const check = await orm([cluster.nodes[leader]!.address]);
    expect(await check.select({ name: users.name }).from(users).where(eq(users.id, row!.id))).toEqual([{ name: 'via-follower' }]);
  });

  test('a value the client cannot bind, or something other than a Database, gets a clear error', async () => {
    const db = await orm();
    const error = await db.run(sql`SELECT ${{ not: 'bindable' }}`).catch((e: unknown) => e);
    expect(String((error as Error).cause)).toMatch(/parameter 1 is Object/);
    // Connection options instead of a Database: told what to pass.
    expect(() => drizzle({ servers: cluster.addresses, database: 'drizzle' } as never)).toThrow(/drizzle\(\) takes a client Database/);
  });
});
