// A statement's read set as SQLite reports it (wasm/read-tables.ts), on real SQLite.
import { beforeAll, describe, expect, it } from 'vitest';
import { Engine, readSetTouched, type Database } from '../../wasm/index.ts';
import { run, ship } from '../engine/helpers.ts';

function readSetOf(db: Database, sql: string): { tables: readonly string[]; schema: boolean } {
  const { statement, readSet } = db.readView().prepareWithReadSet(sql);
  statement?.finalize();
  return readSet;
}

describe('read set of a statement', () => {
  let db: Database;
  beforeAll(async () => {
    const engine = await Engine.create();
    db = engine.open('read-tables');
    run(db, 'CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, owner INT)');
    run(db, 'CREATE TABLE owners (id INTEGER PRIMARY KEY, name TEXT)');
    run(db, 'CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT)');
    run(db, 'CREATE VIEW owned AS SELECT items.name AS item, owners.name AS owner FROM items JOIN owners ON owners.id = items.owner');
    ship(db, []);
  });

  it('names the tables of a plain read, a count(*) that reads no column, and a join', () => {
    expect(readSetOf(db, 'SELECT name FROM items WHERE id = ?')).toEqual({ tables: ['items'], schema: false });
    expect(readSetOf(db, 'SELECT count(*), max(id) FROM items')).toEqual({ tables: ['items'], schema: false });
    expect(readSetOf(db, 'SELECT count(*) FROM items')).toEqual({ tables: ['items'], schema: false });
    expect(readSetOf(db, 'SELECT i.name, o.name FROM items i JOIN owners o ON o.id = i.owner')).toEqual({ tables: ['items', 'owners'], schema: false });
  });

  it('sees through views, subqueries and CTEs to the tables underneath', () => {
    // The view itself is named too: a DDL that redefines it changes the result.
    expect(readSetOf(db, 'SELECT * FROM owned').tables).toEqual(['items', 'owned', 'owners']);
    expect(readSetOf(db, 'SELECT (SELECT count(*) FROM audit), name FROM owners').tables).toEqual(['audit', 'owners']);
    expect(readSetOf(db, 'WITH c AS (SELECT owner FROM items) SELECT count(*) FROM c').tables).toEqual(['items']);
  });

  it('marks reads of SQLite\'s own tables, and reads no table for a constant', () => {
    expect(readSetOf(db, 'SELECT name FROM sqlite_schema')).toEqual({ tables: [], schema: true });
    expect(readSetOf(db, 'SELECT 1 + 1')).toEqual({ tables: [], schema: false });
  });

  it('decides which changes touch a read set, whatever the case of the names', () => {
    const joined = readSetOf(db, 'SELECT * FROM owned');
    expect(readSetTouched(joined, ['OWNERS'])).toBe(true);
    expect(readSetTouched(joined, ['audit'])).toBe(false);
    expect(readSetTouched(joined, [])).toBe(false);
    expect(readSetTouched(readSetOf(db, 'SELECT name FROM sqlite_master'), ['audit'])).toBe(true);
  });
});
