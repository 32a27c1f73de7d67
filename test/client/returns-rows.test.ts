import { describe, expect, it } from 'vitest';
import { returnsRows } from '../../src/client/index.ts';

describe('which statements run as queries (rows) rather than execs (rows affected, last insert id)', () => {
  it('reads, pragmas and anything with RETURNING yield rows', () => {
    for (const sql of [
      'select * from "users"',
      '  WITH c AS (SELECT 1) SELECT * FROM c',
      'VALUES (1), (2)',
      'PRAGMA table_info(t)',
      'EXPLAIN QUERY PLAN SELECT 1',
      '/* lead */ -- comment\nSELECT 1',
      'insert into "t" ("a") values (?) returning "id"',
      'UPDATE t SET a = 1 RETURNING *',
      'DELETE FROM t RETURNING a',
    ]) {
      expect(returnsRows(sql), sql).toBe(true);
    }
  });
  it('writes and schema changes do not, whatever their literals say', () => {
    for (const sql of [
      'insert into "t" ("a") values (?)',
      "INSERT INTO t VALUES ('select returning')",
      'INSERT INTO "returning" VALUES (1)',
      'WITH c AS (SELECT 1) INSERT INTO t SELECT * FROM c',
      'UPDATE t SET a = 1 -- returning\n',
      'CREATE TABLE t (x)',
      'savepoint "sp"',
      'BEGIN',
    ]) {
      expect(returnsRows(sql), sql).toBe(false);
    }
  });
});
