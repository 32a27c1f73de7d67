/**
 * The replay of an imported file gives the event loop turns. Its statements go to the node's own
 * gateway, whose answers resolve as microtasks: a replay that never yields holds the loop for
 * as long as it runs (seconds for a file of hundreds of MiB), so no heartbeat leaves the leader
 * and the followers elect a new one mid-load (seen with a 200 MiB import). Here the sink
 * answers at once, as the gateway does, and a timer set before the replay must fire during it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { SqliteFileStage } from '../../wasm/index.ts';
import { INSERT_VALUE_BYTES_MAX, replayDatabase } from '../../src/http/sqlite-replay.ts';

const dir = mkdtempSync(join(tmpdir(), 'dqlite-wasm-replay-yield-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('a long replay lets timers run while it goes on', async () => {
  const file = join(dir, 'rows.sqlite');
  // Enough rows that the replay runs far longer than one slice (20 ms) on any machine.
  execFileSync('sqlite3', [
    file,
    "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 60000) INSERT INTO t SELECT n, hex(randomblob(32)) FROM c;",
  ]);
  const stage = await SqliteFileStage.create();
  const staged = stage.begin();
  try {
    staged.append(readFileSync(file));
    let statements = 0;
    let timerFiredAfter: number | undefined;
    setTimeout(() => (timerFiredAfter = statements), 0);
    const counts = await replayDatabase(staged.open(), {
      exec: () => {
        statements++;
        return Promise.resolve();
      },
    });
    expect(counts.rows).toBe(60000);
    // The timer ran before the last statement, not only once the replay was over.
    expect(timerFiredAfter).toBeDefined();
    expect(timerFiredAfter!).toBeLessThan(statements);
  } finally {
    staged.discard();
  }
});

test('rows of large values go in INSERTs of at most INSERT_VALUE_BYTES_MAX of values each', async () => {
  const file = join(dir, 'blobs.sqlite');
  // 200 rows of 100 KiB: one INSERT of 200 rows (ROWS_PER_INSERT_MAX) would bind 19.5 MiB at once.
  execFileSync('sqlite3', [file, 'CREATE TABLE blobs (b BLOB); INSERT INTO blobs SELECT randomblob(100000) FROM generate_series(1, 200); INSERT INTO blobs VALUES (randomblob(1500000));']);
  const stage = await SqliteFileStage.create();
  const staged = stage.begin();
  try {
    staged.append(readFileSync(file));
    const inserts: { rows: number; bytes: number }[] = [];
    const counts = await replayDatabase(staged.open(), {
      exec: (sql, params) => {
        if (sql.startsWith('INSERT INTO "blobs"')) {
          const bytes = params.reduce((sum, p) => sum + (p.value instanceof Uint8Array ? p.value.byteLength : 0), 0);
          // Each row is one tuple, `(?, ?)`: the rowid is kept (no INTEGER PRIMARY KEY) beside b.
          inserts.push({ rows: (sql.match(/\(\?/g) ?? []).length, bytes });
        }
        return Promise.resolve();
      },
    });
    expect(counts.rows).toBe(201);
    expect(inserts.reduce((sum, i) => sum + i.rows, 0)).toBe(201);
    for (const insert of inserts) {
      // Only a row larger than the bound goes over it, and then alone.
      if (insert.bytes > INSERT_VALUE_BYTES_MAX) expect(insert.rows).toBe(1);
    }
    expect(inserts.filter((i) => i.bytes > INSERT_VALUE_BYTES_MAX)).toHaveLength(1);
    expect(inserts.length).toBeGreaterThanOrEqual(Math.ceil((200 * 100000) / INSERT_VALUE_BYTES_MAX));
  } finally {
    staged.discard();
  }
});
