/**
 * The engine's side of backup and import, on real SQLite: a replicated database's snapshot as
 * one standard file that Debian's sqlite3 checks `ok`, and the stage that refuses files that
 * are not SQLite or are damaged. Plus the named-parameter rewriting of the HTTP API.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Engine, SqliteFileStage, SqliteFileError, standaloneImage, type Database } from '../../wasm/index.ts';
import { parseStatement, isReadStatement } from '../../src/http/statements.ts';

const dir = mkdtempSync(join(tmpdir(), 'dqlite-wasm-sqlite-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sqlite3(file: string, sql: string): string {
  return execFileSync('sqlite3', [file, sql], { encoding: 'utf8' }).trim();
}

function exec(db: Database, sql: string): void {
  let rest = sql;
  for (;;) {
    const statement = db.prepare(rest);
    if (!statement) break;
    rest = statement.tail;
    while (statement.step()) {
      // run to completion
    }
    statement.finalize();
  }
  db.takeCaptured();
  while (db.pendingCount() > 0) db.confirm();
}

describe('standaloneImage', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await Engine.create();
  });

  test('main file plus committed WAL frames become one rollback-journal file sqlite3 checks ok', () => {
    const db = engine.open('image');
    exec(db, 'CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, b BLOB); CREATE INDEX tv ON t(v)');
    exec(db, "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c WHERE n<500) INSERT INTO t(v, b) SELECT 'v'||n, randomblob(300) FROM c");
    db.checkpoint();
    // After the checkpoint, more frames in the WAL: the image must hold both parts.
    exec(db, "UPDATE t SET v = 'changed' WHERE id % 7 = 0; DELETE FROM t WHERE id > 450");
    const snapshot = db.snapshot();
    expect(snapshot.wal.length).toBeGreaterThan(0);
    const file = join(dir, 'image.db');
    writeFileSync(file, standaloneImage(snapshot));
    expect(sqlite3(file, 'PRAGMA integrity_check')).toBe('ok');
    expect(sqlite3(file, 'PRAGMA journal_mode')).toBe('delete');
    expect(sqlite3(file, "SELECT count(*), sum(v = 'changed') FROM t")).toBe('450|64');
    db.close();
  });

  test('an uncommitted (pending) transaction is not in the image', () => {
    const db = engine.open('pending');
    exec(db, 'CREATE TABLE t (x)');
    const insert = db.prepare('INSERT INTO t VALUES (1)')!;
    insert.step();
    insert.finalize();
    db.takeCaptured(); // pending, never confirmed
    const file = join(dir, 'pending.db');
    writeFileSync(file, standaloneImage(db.snapshot()));
    expect(sqlite3(file, 'SELECT count(*) FROM t')).toBe('0');
    db.abort();
    db.close();
  });
});

describe('SqliteFileStage', () => {
  let stage: SqliteFileStage;
  beforeAll(async () => {
    stage = await SqliteFileStage.create({ fileBytesMax: 4 * 2 ** 20 });
  });

  function stageBytes(bytes: Uint8Array, chunkBytes = 1000): Database {
    const staged = stage.begin();
    for (let i = 0; i < bytes.length; i += chunkBytes) staged.append(bytes.subarray(i, i + chunkBytes));
    return staged.open();
  }

  function refusal(bytes: Uint8Array): SqliteFileError {
    try {
      stageBytes(bytes);
    } catch (error) {
      if (error instanceof SqliteFileError) return error;
      throw error;
    }
    throw new Error('the file was accepted');
  }

  test('a WAL-mode file with 1024-byte pages made by sqlite3 opens and reads', () => {
    const file = join(dir, 'wal.db');
    sqlite3(file, "PRAGMA page_size=1024; PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t SELECT value FROM generate_series(1, 300);");
    const db = stageBytes(readFileSync(file));
    const count = db.prepare('SELECT count(*), sum(x) FROM t')!;
    expect(count.step()).toBe(true);
    expect(count.row()).toEqual([300, 45150]);
    count.finalize();
  });

  test('garbage, a truncated file and a damaged page are refused with the reason', () => {
    expect(refusal(new TextEncoder().encode('this is not a database at all, just text that goes on '.repeat(4))).code).toBe('NOT_SQLITE');
    const file = join(dir, 'good.db');
    sqlite3(file, "CREATE TABLE t(x TEXT); CREATE INDEX tx ON t(x); INSERT INTO t SELECT hex(randomblob(50)) FROM generate_series(1, 400);");
    const good = readFileSync(file);
    const truncated = refusal(good.subarray(0, good.length - 100));
    expect(truncated.code).toBe('CORRUPT');
    expect(truncated.message).toMatch(/truncated/);
    const damaged = Uint8Array.from(good);
    const pageSize = (damaged[16]! << 8) | damaged[17]!;
    damaged.fill(0x55, 3 * pageSize + 8, 4 * pageSize);
    const refused = refusal(damaged);
    expect(refused.code).toBe('CORRUPT');
  });

  test('a dump of 40,000 statements runs statement by statement, giving timers turns', async () => {
    // Each statement used to be compiled from the whole rest of the text, so a dump's load was
    // quadratic: 20,000 statements (2 MiB) took 99 s here, 40,000 would take minutes; now a
    // couple of seconds. The limit below is the test's own timeout, far above either.
    const file = join(dir, 'many.db');
    sqlite3(file, 'CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t SELECT value, hex(randomblob(20)) FROM generate_series(1, 40000);');
    const dump = execFileSync('sqlite3', [file, '.dump'], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
    const large = await SqliteFileStage.create();
    const staged = large.begin();
    staged.append(new TextEncoder().encode(dump));
    let timerFired = false;
    setTimeout(() => (timerFired = true), 0);
    const db = await staged.openAsSql();
    const count = db.prepare("SELECT count(*) || '|' || sum(length(v)) || '|' || sum(id) FROM t")!;
    expect(count.step()).toBe(true);
    expect(count.row()[0]).toBe(sqlite3(file, "SELECT count(*) || '|' || sum(length(v)) || '|' || sum(id) FROM t"));
    count.finalize();
    expect(timerFired).toBe(true);
    staged.discard();
  }, 60_000);

  test('SQL text with statements longer than the first window, ";" in strings, comments and trigger bodies', async () => {
    const long = 'x;'.repeat(1500); // a string literal of 3000 characters full of semicolons
    const body = Array.from({ length: 60 }, (_, i) => `INSERT INTO log VALUES (${i}, 'step ${i}; done');`).join(' ');
    const sql = [
      'CREATE TABLE t(v TEXT);',
      'CREATE TABLE log(n INTEGER, note TEXT);',
      `-- a comment; with a semicolon\nINSERT INTO t VALUES ('${long}');`,
      `CREATE TRIGGER t_log AFTER INSERT ON t BEGIN ${body} END;`,
      "/* ; */ INSERT INTO t VALUES ('after the trigger')",
    ].join('\n');
    const file = join(dir, 'tricky.db');
    execFileSync('sqlite3', [file], { input: sql });
    const staged = stage.begin();
    staged.append(new TextEncoder().encode(sql));
    const db = await staged.openAsSql();
    const check = "SELECT (SELECT count(*) || ':' || sum(length(v)) FROM t) || '|' || (SELECT count(*) || ':' || group_concat(note, ',') FROM log)";
    const statement = db.prepare(check)!;
    expect(statement.step()).toBe(true);
    expect(statement.row()[0]).toBe(sqlite3(file, check));
    statement.finalize();
    staged.discard();
  });

  test('a file over the limit is refused while it streams in', () => {
    const staged = stage.begin();
    const chunk = new Uint8Array(2 ** 20);
    expect(() => {
      for (let i = 0; i < 5; i++) staged.append(chunk);
    }).toThrow(/larger than 4194304 bytes/);
    staged.discard();
  });
});

describe('rqlite statement forms', () => {
  test('named parameters become numbered ones outside literals, comments and quoted names', () => {
    const parsed = parseStatement(["INSERT INTO t(a, b) VALUES(:name, @age) -- :not\n/* $no */ ; SELECT ':x', \"$y\", :name", { name: 'fiona', age: 20 }], 's');
    expect(parsed.sql).toBe("INSERT INTO t(a, b) VALUES(?1, ?2) -- :not\n/* $no */ ; SELECT ':x', \"$y\", ?1");
    expect(parsed.params.map((p) => p.value)).toEqual(['fiona', 20n]);
    expect(() => parseStatement(['SELECT :missing', { other: 1 }], 's')).toThrow(/no value for the named parameter :missing/);
  });

  test('reads are told from writes conservatively', () => {
    expect(isReadStatement('SELECT * FROM t')).toBe(true);
    expect(isReadStatement("select 'delete'")).toBe(true);
    expect(isReadStatement('PRAGMA table_info(t)')).toBe(true);
    expect(isReadStatement('PRAGMA user_version = 3')).toBe(false);
    expect(isReadStatement('WITH x AS (SELECT 1) DELETE FROM t')).toBe(false);
    expect(isReadStatement('INSERT INTO t VALUES (1)')).toBe(false);
  });
});
