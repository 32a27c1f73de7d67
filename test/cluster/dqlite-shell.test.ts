/**
 * The real `dqlite` shell (Debian go-dqlite) against our cluster: it finds the leader itself,
 * through whichever node it is given.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TestCluster } from '../helpers/cluster.ts';

const run = promisify(execFile);

async function shell(servers: string, ...args: string[]): Promise<string> {
  const { stdout } = await run('dqlite', ['-s', servers, 'shelldb', ...args], { timeout: 30_000 });
  return stdout;
}

describe('real dqlite shell against dqlite-wasm', () => {
  let cluster: TestCluster;

  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 3 });
  }, 120_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  test('CREATE, INSERT and SELECT through any node', async () => {
    const [a, b, c] = cluster.addresses as [string, string, string];
    await shell(a, 'CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, score REAL)');
    await shell(b, "INSERT INTO people (name, score) VALUES ('ada', 1.5)");
    await shell(c, "INSERT INTO people (name, score) VALUES ('grace', 2.25)");
    const out = await shell(`${c},${a}`, 'SELECT id, name, score FROM people ORDER BY id');
    expect(out.trim().split('\n')).toEqual(['1|ada|1.5', '2|grace|2.25']);
  });

  test('.cluster lists the three voters, .leader names one of them', async () => {
    const out = await shell(cluster.addresses[1]!, '.cluster');
    for (const address of cluster.addresses) expect(out).toContain(address);
    expect(out.match(/voter/g)?.length).toBe(3);
    const leader = (await shell(cluster.addresses[2]!, '.leader')).trim();
    expect(cluster.addresses).toContain(leader);
  });

  test('a failing statement reports the SQLite error and the node keeps serving', async () => {
    const error = await shell(cluster.addresses[0]!, 'INSERT INTO missing_table VALUES (1)').catch((e: { stderr?: string; stdout?: string }) => e);
    expect(JSON.stringify(error)).toMatch(/no such table/);
    const out = await shell(cluster.addresses[0]!, 'SELECT count(*) FROM people');
    expect(out.trim()).toBe('2');
  });
});
