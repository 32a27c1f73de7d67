/**
 * `dqlite-wasm shell -s ... DATABASE SQL` as a process against a real dqlite-wasm cluster
 * (3 voters and a stand-by, node processes on loopback).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connect, connectCluster } from '../../runtimes/node/client.ts';
import { Shell } from '../../src/shell/index.ts';
import { TestCluster } from '../helpers/cluster.ts';
import { runShell } from './run-shell.ts';

let cluster: TestCluster;
let servers: string;
let scratch: string;

beforeAll(async () => {
  cluster = await TestCluster.start({ nodes: 4 });
  servers = cluster.addresses.join(',');
  scratch = mkdtempSync(join(tmpdir(), 'dqlite-wasm-shell-'));
}, 120_000);

afterAll(async () => {
  await cluster?.destroy();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('dqlite-wasm shell, one-shot', () => {
  test('runs several statements and prints a table, JSON and CSV', async () => {
    const created = await runShell([
      '-s',
      servers,
      'shop',
      "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, price REAL, tag BLOB); INSERT INTO items VALUES (1, 'apple', 0.5, x'c0ffee'), (2, 'pear, green', NULL, NULL); SELECT id, name, price, tag FROM items ORDER BY id",
    ]);
    expect(created).toMatchObject({ status: 0, stderr: '' });
    expect(created.stdout).toBe(
      [
        'id | name        | price | tag',
        '---+-------------+-------+----------',
        " 1 | apple       |   0.5 | x'c0ffee'",
        ' 2 | pear, green | NULL  | NULL',
        '(2 rows)',
        '',
      ].join('\n'),
    );

    const json = await runShell(['-s', servers, '--format', 'json', 'shop', 'SELECT id, name, price FROM items ORDER BY id']);
    expect(JSON.parse(json.stdout)).toEqual([
      { id: 1, name: 'apple', price: 0.5 },
      { id: 2, name: 'pear, green', price: null },
    ]);
    const csv = await runShell(['-s', servers, '-f', 'csv', 'shop', 'SELECT id, name, price FROM items ORDER BY id']);
    expect(csv.stdout).toBe('id,name,price\r\n1,apple,0.5\r\n2,"pear, green",\r\n');
  });

  test('.cluster, .leader, .describe and .weight show and change what the nodes report', async () => {
    const listed = await runShell(['-s', servers, '-f', 'json', 'shop', '.cluster']);
    expect(listed.status).toBe(0);
    const members = JSON.parse(listed.stdout) as { id: string; address: string; role: string }[];
    const status = await cluster.status(0);
    expect(members.map((m) => [BigInt('0x' + m.id), m.address, m.role]).sort()).toEqual(
      // go-dqlite (and so the dqlite shell) spells the role "stand-by".
      status.members.map((m) => [BigInt(m.id), m.address, m.role === 'standby' ? 'stand-by' : m.role]).sort(),
    );
    expect(members.filter((m) => m.role === 'voter')).toHaveLength(3);

    const leader = await runShell(['-s', cluster.addresses[3]!, 'shop', '.leader']);
    expect(leader.stdout.trim()).toBe(cluster.nodes[await cluster.waitForLeader()]!.address);

    const target = cluster.addresses[1]!;
    expect(await runShell(['-s', servers, 'shop', `.weight ${target} 7`])).toMatchObject({ status: 0, stdout: '' });
    const described = await runShell(['-s', servers, '-f', 'csv', 'shop', `.describe ${target}`]);
    expect(described.stdout).toBe(`address,failure_domain,weight\r\n${target},0,7\r\n`);

    const bad = await runShell(['-s', servers, 'shop', `.weight ${target} heavy`]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/bad weight "heavy"/);
  });

  test('.tables and .schema list what the database holds', async () => {
    await runShell(['-s', servers, 'shop', 'CREATE VIEW cheap AS SELECT * FROM items WHERE price < 1']);
    expect((await runShell(['-s', servers, 'shop', '.tables'])).stdout).toBe('cheap\nitems\n');
    const schema = await runShell(['-s', servers, 'shop', '.schema items']);
    expect(schema.stdout).toBe('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, price REAL, tag BLOB);\n');
  });

  test('.dump FILE writes the database and its WAL; .dump ADDR writes the node files as dqlite does', async () => {
    const file = join(scratch, 'shop.db');
    expect(await runShell(['-s', servers, 'shop', `.dump ${file}`])).toMatchObject({ status: 0, stdout: 'OK\n' });
    expect(readFileSync(file).subarray(0, 16).toString('latin1')).toBe('SQLite format 3\0');
    // The rows live in the WAL until the cluster checkpoints; it comes along.
    const wal = readFileSync(`${file}-wal`);
    expect(wal.readUInt32BE(0) & 0xfffffffe).toBe(0x377f0682);

    const fromNode = await runShell(['-s', servers, 'shop', `.dump ${cluster.addresses[2]} shop`], { cwd: scratch });
    expect(fromNode).toMatchObject({ status: 0, stdout: 'OK\n' });
    expect(readFileSync(join(scratch, 'shop')).subarray(0, 16).toString('latin1')).toBe('SQLite format 3\0');
    expect(existsSync(join(scratch, 'shop-wal'))).toBe(true);
  });

  test('.remove takes a node out of the cluster', async () => {
    const standby = (await cluster.status(0)).members.find((m) => m.role !== 'voter')!;
    expect(await runShell(['-s', servers, 'shop', `.remove ${standby.address}`])).toMatchObject({ status: 0, stderr: '' });
    const after = await runShell(['-s', servers, '-f', 'json', 'shop', '.cluster']);
    expect((JSON.parse(after.stdout) as { address: string }[]).map((m) => m.address)).not.toContain(standby.address);
    const again = await runShell(['-s', servers, 'shop', `.remove ${standby.address}`]);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(`no node has address "${standby.address}"`);
  });

  test('errors print the dqlite code and what to do, and stop the run with status 1', async () => {
    const duplicate = await runShell(['-s', servers, 'shop', "INSERT INTO items (id, name) VALUES (9, 'apple'); INSERT INTO items (id, name) VALUES (10, 'kiwi')"]);
    expect(duplicate.status).toBe(1);
    expect(duplicate.stderr).toMatch(/UNIQUE constraint failed: items.name \(dqlite code 2067 SQLITE_CONSTRAINT_UNIQUE\)\n {2}a row with this key already exists/);
    // The run stopped at the first error: the second insert did not happen.
    expect((await runShell(['-s', servers, 'shop', "SELECT count(*) AS n FROM items WHERE name = 'kiwi'"])).stdout).toMatch(/^ *0$/m);

    const syntax = await runShell(['-s', servers, 'shop', 'SELEC 1']);
    expect(syntax.stderr).toMatch(/syntax error \(dqlite code 1 SQLITE_ERROR\)\n {2}check the statement/);

    const unreachable = await runShell(['-s', '127.0.0.1:1', '--timeout-ms', '500', 'shop', 'SELECT 1']);
    expect(unreachable.status).toBe(1);
    expect(unreachable.stderr).toMatch(/check that the -s addresses are right/);
  });

  test('a not-leader error names the leader', async () => {
    const leader = await cluster.waitForLeader();
    const follower = cluster.nodes.find((n) => n.index !== leader && n.index < 3)!;
    let stderr = '';
    const shell = new Shell(
      {
        // Straight to a follower, with no leader discovery: what an old client or a stale -s list meets.
        connectDatabase: () => connect({ servers: [follower.address], database: 'shop', leaderDiscovery: false }),
        connectCluster: () => connectCluster({ servers: cluster.addresses }),
        writeFile: () => Promise.reject(new Error('not used')),
        nowMs: () => Date.now(),
        stdout: () => undefined,
        stderr: (text) => (stderr += text),
      },
      { database: 'shop', format: 'table' },
    );
    expect(await shell.run("INSERT INTO items (id, name) VALUES (11, 'fig')")).toBe(false);
    await shell.close();
    expect(stderr).toMatch(/\(dqlite code 10250 SQLITE_IOERR_NOT_LEADER\)/);
    expect(stderr).toContain(`the leader is ${cluster.nodes[leader]!.address}`);
  });

  test('piped input runs line by line, keeps going after an error and reports it in the exit status', async () => {
    const history = join(scratch, 'piped-history');
    const piped = await runShell(['-s', servers, 'shop'], {
      input: "SELECT name\n  FROM items WHERE id = 1;\nSELECT nope;\n.format json\nSELECT 2 AS two;\n",
      env: { DQLITE_WASM_HISTORY: history },
    });
    expect(piped.status).toBe(1);
    expect(piped.stdout).toBe('name\n-----\napple\n(1 row)\n[\n  {\n    "two": 2\n  }\n]\n');
    expect(piped.stderr).toMatch(/no such column: nope \(dqlite code 1 SQLITE_ERROR\)/);
    expect(readFileSync(history, 'utf8')).toContain('SELECT 2 AS two;');

    const unfinished = await runShell(['-s', servers, 'shop'], { input: 'SELECT 3\n', env: { DQLITE_WASM_HISTORY: history } });
    expect(unfinished).toMatchObject({ status: 1, stdout: '' });
    expect(unfinished.stderr).toMatch(/incomplete statement at the end of input/);
  });

  test('the compiled command runs the shell too', async () => {
    const compiled = await runShell(['-s', servers, 'shop', 'SELECT count(*) AS n FROM items'], { compiled: true });
    expect(compiled).toMatchObject({ status: 0, stderr: '' });
    expect(compiled.stdout).toMatch(/^n\n-\n\d+\n\(1 row\)\n$/);
  });

  test('flags: a misspelled one names the closest, a missing server or database is a usage error', async () => {
    const misspelled = await runShell(['-s', servers, '--formt', 'json', 'shop', 'SELECT 1']);
    expect(misspelled.status).toBe(2);
    expect(misspelled.stderr).toMatch(/unknown option --formt: did you mean --format\?/);
    expect((await runShell(['-s', servers, '--serverz', 'x', 'shop'])).stderr).toMatch(/did you mean --servers\?/);
    expect((await runShell(['shop', 'SELECT 1'])).stderr).toMatch(/no servers: pass -s/);
    expect((await runShell(['-s', servers])).stderr).toMatch(/no database name/);
    expect((await runShell(['-s', servers, '-f', 'xml', 'shop'])).stderr).toMatch(/unknown format "xml" \(table, json, csv\)/);
  });
});
