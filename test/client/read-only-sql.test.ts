import { describe, expect, it } from 'vitest';
import { isReadOnlySql } from '../../src/client/index.ts';

describe('which queries may be repeated after a lost answer', () => {
  it('plain reads may', () => {
    for (const sql of ['SELECT 1', '  select * from t', 'WITH c AS (SELECT 1) SELECT * FROM c', 'VALUES (1)', '-- hi\nSELECT 2', '/* x */ EXPLAIN SELECT 1']) {
      expect(isReadOnlySql(sql), sql).toBe(true);
    }
  });
  it('anything that may write may not', () => {
    for (const sql of [
      'INSERT INTO t VALUES (1) RETURNING x',
      'DELETE FROM t RETURNING *',
      'WITH c AS (SELECT 1) INSERT INTO t SELECT * FROM c',
      'UPDATE t SET x = 1 RETURNING x',
      'PRAGMA user_version = 3',
      'SELECT 1; DROP TABLE t',
      'BEGIN',
    ]) {
      expect(isReadOnlySql(sql), sql).toBe(false);
    }
  });
});
