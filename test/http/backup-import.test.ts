/**
 * Backup and import of real SQLite files between two real 3-node clusters: `dqlite-wasm backup`
 * while writes go on gives a file Debian's sqlite3 checks `ok` and that holds a prefix of the
 * writes; `dqlite-wasm import` of it into a second cluster gives the same schema and rows, on
 * every node byte for byte. Files made by sqlite3 in rollback-journal and WAL mode with other
 * page sizes load; garbage is refused and changes nothing.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connectCluster } from '../../src/client/index.ts';
import { dialTcp } from '../../runtimes/node/tcp.ts';
import { TestCluster, freePort, waitFor } from '../helpers/cluster.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'dqlite-wasm-backup-'));

function sqlite3(file: string, sql: string): string {
  return execFileSync('sqlite3', [file, sql], { encoding: 'utf8' }).trim();
}

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(ROOT, 'bin/dqlite-wasm'), ...args], { cwd: ROOT, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

async function sql(address: string, endpoint: 'execute' | 'query', statements: unknown[], query = ''): Promise<unknown[][][]> {
  const response = await fetch(`http://${address}/db/${endpoint}${query}`, { method: 'POST', body: JSON.stringify(statements) });
  const body = (await response.json()) as { results: { values?: unknown[][]; error?: string }[]; error?: string };
  if (!body.results) throw new Error(`${response.status}: ${body.error}`);
  for (const result of body.results) if (result.error) throw new Error(result.error);
  return body.results.map((r) => r.values ?? []);
}

/** One text line per row, the same from sqlite3 and from the HTTP API. */
const FINGERPRINT = "SELECT count(*) || '|' || coalesce(sum(id), 0) || '|' || coalesce(group_concat(name || ':' || coalesce(hex(data), '') || ':' || coalesce(score, ''), ','), '') FROM (SELECT * FROM items ORDER BY id)";
const SCHEMA = "SELECT type || ' ' || name || ' ' || coalesce(sql, '') FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name";

async function schemaOf(address: string, db: string): Promise<string[]> {
  return (await sql(address, 'query', [SCHEMA], `?db=${db}`))[0]!.map((row) => String(row[0]));
}

describe('backup and import of SQLite files', () => {
  let source: TestCluster;
  let target: TestCluster;

  beforeAll(async () => {
    source = await TestCluster.start({ nodes: 3 });
    target = await TestCluster.start({ nodes: 3 });
  }, 240_000);

  afterAll(async () => {
    await source?.destroy();
    await target?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('backup while writes go on, sqlite3 checks it, import into another cluster: same schema and rows on every node', async () => {
    const [a] = source.addresses as [string];
    await sql(a, 'execute', [
      'CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, score REAL, data BLOB)',
      'CREATE INDEX items_name ON items(name)',
      'CREATE VIEW high AS SELECT name FROM items WHERE score > 10',
      "CREATE TRIGGER items_touch AFTER UPDATE ON items BEGIN SELECT 1; END",
      'CREATE TABLE log (seq INTEGER)',
    ]);
    await sql(a, 'execute', [["WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM c WHERE n<300) INSERT INTO items(name, score, data) SELECT 'item' || n, n * 0.5, randomblob(16) FROM c"]]);

    // A writer appends 1, 2, 3, ... to `log` through a follower while the backup runs.
    let written = 0;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        written++;
        await sql(source.addresses[1]!, 'execute', [['INSERT INTO log VALUES (?)', written]]);
      }
    })();
    await waitFor('a few writes', 10_000, async () => (written > 5 ? true : undefined));
    const file = join(dir, 'backup.sqlite');
    const backup = await cli('backup', '-s', source.addresses.join(','), 'main', file);
    writing = false;
    await writer;
    expect(backup.stderr).toContain(`written to ${file}`);
    expect(backup.code).toBe(0);

    expect(sqlite3(file, 'PRAGMA integrity_check')).toBe('ok');
    // Consistent at one point: the log holds exactly 1..k, with no gap, and k lies within the run.
    const [count, max, sum] = sqlite3(file, 'SELECT count(*), max(seq), sum(seq) FROM log').split('|').map(Number) as [number, number, number];
    expect(count).toBe(max);
    expect(sum).toBe((max * (max + 1)) / 2);
    expect(max).toBeGreaterThan(0);
    expect(max).toBeLessThanOrEqual(written);
    const fingerprint = sqlite3(file, FINGERPRINT);
    expect(fingerprint.startsWith('300|45150|item1:')).toBe(true);

    // The SQL-text form (rqlite's fmt=sql, what its .dump asks for) rebuilds the same rows in sqlite3.
    const dump = await fetch(`http://${source.addresses[2]}/db/backup?fmt=sql`);
    expect(dump.headers.get('content-type')).toMatch(/application\/sql/);
    const rebuilt = join(dir, 'from-dump.sqlite');
    const dumpText = await dump.text();
    execFileSync('sqlite3', [rebuilt], { input: dumpText });
    expect(sqlite3(rebuilt, FINGERPRINT)).toBe(fingerprint);
    expect(sqlite3(rebuilt, "SELECT typeof(score) FROM items WHERE id = 2")).toBe('real');

    const [t] = target.addresses as [string];
    // The first address answers nothing: the CLI goes on to the next.
    const imported = await cli('import', '-s', `127.0.0.1:${await freePort()},${target.addresses.join(',')}`, 'main', file);
    expect(imported.code).toBe(0);
    expect(imported.stdout).toContain('2 tables');
    expect(imported.stderr).toContain('import: sent');
    expect((await sql(t, 'query', [FINGERPRINT]))[0]).toEqual([[fingerprint]]);
    const expectedSchema = sqlite3(file, SCHEMA).split('\n');
    for (const address of target.addresses) expect(await schemaOf(address, 'main')).toEqual(expectedSchema);
    expect((await sql(t, 'query', ['SELECT seq FROM sqlite_sequence WHERE name = \'items\'']))[0]).toEqual([[300]]);

    // Every node of the target holds the database byte for byte the same.
    await waitFor('every target node to apply the import', 20_000, async () => {
      const applied = await Promise.all(target.nodes.map((_, i) => target.status(i).then((s) => s.appliedIndex)));
      return applied.every((index) => index === applied[0]) ? true : undefined;
    });
    const admin = await connectCluster({ servers: target.addresses, dial: dialTcp });
    try {
      const dumps = await Promise.all(target.addresses.map((address) => admin.dump('main', address)));
      for (const dump of dumps.slice(1)) {
        expect(dump.map((f) => f.name)).toEqual(dumps[0]!.map((f) => f.name));
        dump.forEach((f, i) => expect(Buffer.compare(Buffer.from(f.data), Buffer.from(dumps[0]![i]!.data))).toBe(0));
      }
    } finally {
      await admin.close();
    }

    // SQL text loads too (as rqlite's /db/load takes a dump), and bad SQL changes nothing.
    const fromSql = await fetch(`http://${t}/db/load?db=fromsql`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: dumpText });
    expect(fromSql.status).toBe(200);
    expect((await sql(t, 'query', [FINGERPRINT], '?db=fromsql'))[0]).toEqual([[fingerprint]]);
    const badSql = await fetch(`http://${t}/db/load?db=badsql`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'CREATE TABLE a (x); INSERT INTO nowhere VALUES (1);' });
    expect(badSql.status).toBe(400);
    expect(((await badSql.json()) as { error: string }).error).toMatch(/fails at statement 2 .*no such table: nowhere/);

    // Loading over a database that has tables needs --replace.
    const again = await cli('import', '-s', t, 'main', file);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already holds .* --replace/);
    await sql(t, 'execute', ["INSERT INTO items(name) VALUES ('extra')"]);
    const replaced = await cli('import', '-s', target.addresses[2]!, 'main', file, '--replace');
    expect(replaced.code).toBe(0);
    expect((await sql(t, 'query', [FINGERPRINT]))[0]).toEqual([[fingerprint]]);
  });

  test('a database larger than one protocol message (64 MiB) backs up through a follower', async () => {
    const [a] = source.addresses as [string];
    await sql(a, 'execute', ['CREATE TABLE chunks (i INTEGER, b BLOB)'], '?db=large');
    // Many 4 MB transactions: what counts here is the database's size, not one transaction's.
    for (let round = 0; round < 18; round++) {
      const insert = `WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 4) INSERT INTO chunks SELECT ${round * 4} + n, randomblob(1000000) FROM c`;
      await waitFor('a 4 MB write', 30_000, async () => sql(source.addresses[round % 3]!, 'execute', [insert], '?db=large').then(() => true));
    }
    const expected = (await sql(a, 'query', ['SELECT count(*) || \'|\' || sum(length(b)) FROM chunks'], '?db=large'))[0]![0]![0];
    const leaderIndex = await source.waitForLeader();
    const followerIndex = (leaderIndex + 1) % 3;
    await waitFor('the follower to hold the database', 20_000, async () =>
      (await source.status(followerIndex)).databases.some((d) => d.name === 'large') ? true : undefined,
    );
    const response = await fetch(`http://${source.addresses[followerIndex]}/db/backup?db=large`);
    expect(response.status).toBe(200);
    const file = join(dir, 'large.sqlite');
    writeFileSync(file, new Uint8Array(await response.arrayBuffer()));
    expect(readFileSync(file).length).toBeGreaterThan(64 * 2 ** 20);
    expect(sqlite3(file, 'PRAGMA integrity_check')).toBe('ok');
    expect(sqlite3(file, "SELECT count(*) || '|' || sum(length(b)) FROM chunks")).toBe(expected);
  }, 180_000);

  test('rollback-journal and WAL files made by sqlite3, with other page sizes, load through any node', async () => {
    const cases = [
      { name: 'journal', setup: 'PRAGMA page_size=512; PRAGMA journal_mode=DELETE;' },
      { name: 'wal', setup: 'PRAGMA page_size=16384; PRAGMA journal_mode=WAL;' },
    ];
    for (const { name, setup } of cases) {
      const file = join(dir, `${name}.db`);
      sqlite3(
        file,
        `${setup} CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB);` +
          ` CREATE TABLE kv (k TEXT PRIMARY KEY, v) WITHOUT ROWID; INSERT INTO kv VALUES ('a', 1), ('b', 2.5);` +
          ` INSERT INTO items(name, score, data) SELECT 'n' || value, value / 4.0, zeroblob(value % 7) FROM generate_series(1, 700);`,
      );
      expect(sqlite3(file, 'PRAGMA journal_mode')).toBe(name === 'wal' ? 'wal' : 'delete');
      const response = await fetch(`http://${target.addresses[1]}/db/load?db=${name}`, { method: 'POST', body: readFileSync(file) });
      expect(response.status).toBe(200);
      expect(await response.json()).toMatchObject({ loaded: { tables: 2, rows: 702 } });
      expect((await sql(target.addresses[0]!, 'query', [FINGERPRINT], `?db=${name}`))[0]).toEqual([[sqlite3(file, FINGERPRINT)]]);
      expect((await sql(target.addresses[0]!, 'query', ['SELECT k, v FROM kv ORDER BY k'], `?db=${name}`))[0]).toEqual([
        ['a', 1],
        ['b', 2.5],
      ]);
    }
  });

  test('a garbage or damaged file is refused and the database stays as it was', async () => {
    const [t] = target.addresses as [string];
    const before = (await sql(t, 'query', [FINGERPRINT]))[0];
    const schemaBefore = await schemaOf(t, 'main');
    const garbage = join(dir, 'garbage.db');
    writeFileSync(garbage, 'this is not a database, only some text '.repeat(100));
    const refused = await cli('import', '-s', t, 'main', garbage, '--replace');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/refused \(400\).*not an SQLite database file/);

    const damaged = Buffer.from(readFileSync(join(dir, 'backup.sqlite')));
    damaged.fill(0xaa, damaged.length - 4096 + 16, damaged.length);
    const response = await fetch(`http://${t}/db/load?replace`, { method: 'POST', body: damaged });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toMatch(/nothing changed/);

    expect((await sql(t, 'query', [FINGERPRINT]))[0]).toEqual(before);
    expect(await schemaOf(t, 'main')).toEqual(schemaBefore);
    expect((await fetch(`http://${t}/health`)).status).toBe(200);
  });

  test('a load larger than one Raft proposal (16 MiB) replicates in parts as one change, on every node', async () => {
    const file = join(dir, 'big.db');
    sqlite3(file, 'CREATE TABLE blobs (b BLOB); INSERT INTO blobs SELECT randomblob(100000) FROM generate_series(1, 200);');
    const result = await cli('import', '-s', target.addresses[0]!, 'big', file);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/import: sent .* MiB/);
    const expected = sqlite3(file, "SELECT count(*) || '|' || sum(length(b)) || '|' || hex(substr(b, 1, 8)) FROM blobs");
    const query = JSON.stringify(["SELECT count(*) || '|' || sum(length(b)) || '|' || hex(substr(b, 1, 8)) FROM blobs"]);
    for (const address of target.addresses) {
      await waitFor(`the load on ${address}`, 30_000, async () => {
        const response = await fetch(`http://${address}/db/query?db=big&level=none`, { method: 'POST', body: query });
        const body = (await response.json()) as { results: { values?: unknown[][] }[] };
        return body.results[0]?.values?.[0]?.[0] === expected ? true : undefined;
      });
    }
  }, 120_000);
});
