/**
 * `dqlite-wasm shell` against a real dqlite cluster (Debian's dqlite-demo: go-dqlite with the C
 * dqlite server), compared with what the real `dqlite` shell answers.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type DqliteDemoCluster, dqliteShell, startDqliteDemoCluster } from '../helpers/dqlite-demo.ts';
import { runShell } from './run-shell.ts';

let cluster: DqliteDemoCluster;
let servers: string;

beforeAll(async () => {
  cluster = await startDqliteDemoCluster({ size: 3 });
  servers = cluster.addresses.join(',');
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
});

describe('dqlite-wasm shell against real dqlite', () => {
  test('statements, results and errors', async () => {
    const leader = await cluster.leader();
    const follower = cluster.addresses.find((a) => a !== leader)!;
    // Through a follower's address: the shell finds the leader for the writes.
    const created = await runShell([
      '-s',
      follower,
      'shelltest',
      "CREATE TABLE pets (id INTEGER PRIMARY KEY, name TEXT UNIQUE); INSERT INTO pets (name) VALUES ('rex'), ('tom'); SELECT id, name FROM pets ORDER BY id",
    ]);
    expect(created).toMatchObject({ status: 0, stderr: '' });
    expect(created.stdout).toBe('id | name\n---+-----\n 1 | rex\n 2 | tom\n(2 rows)\n');
    // The real shell sees the same rows.
    expect((await dqliteShell(cluster.addresses, 'shelltest', 'SELECT id, name FROM pets ORDER BY id')).trim()).toBe('1|rex\n2|tom');

    const json = await runShell(['-s', servers, '-f', 'json', 'shelltest', 'SELECT name FROM pets ORDER BY id']);
    expect(JSON.parse(json.stdout)).toEqual([{ name: 'rex' }, { name: 'tom' }]);

    const duplicate = await runShell(['-s', servers, 'shelltest', "INSERT INTO pets (name) VALUES ('rex')"]);
    expect(duplicate.status).toBe(1);
    expect(duplicate.stderr).toMatch(/UNIQUE constraint failed: pets.name \(dqlite code 2067 SQLITE_CONSTRAINT_UNIQUE\)/);
    expect((await runShell(['-s', servers, 'shelltest', '.tables'])).stdout).toBe('pets\n');
  });

  test('.cluster, .leader and .describe agree with the real dqlite shell', async () => {
    const ours = await runShell(['-s', servers, '-f', 'csv', 'shelltest', '.cluster']);
    expect(ours.status).toBe(0);
    const oursRows = ours.stdout.trim().split('\r\n').slice(1).map((line) => line.replace(/,/g, '|'));
    const theirs = (await dqliteShell(cluster.addresses, 'shelltest', '.cluster')).trim().split('\n');
    expect(oursRows.sort()).toEqual(theirs.sort());

    const leader = await runShell(['-s', servers, 'shelltest', '.leader']);
    expect(leader.stdout.trim()).toBe(await cluster.leader());

    const node = cluster.addresses[1]!;
    const described = await runShell(['-s', servers, '-f', 'csv', 'shelltest', `.describe ${node}`]);
    const real = (await dqliteShell(cluster.addresses, 'shelltest', `.describe ${node}`)).trim();
    expect(described.stdout.trim().split('\r\n')[1]!.replace(/,/g, '|')).toBe(real);
  });
});
