/**
 * `startNode` in its own process joins a 3-node cluster started with the CLI, writes through its
 * `Database` handle while a follower (the handle forwards to the leader), reads its own write,
 * and the CLI members serve the row too.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connect } from '../../runtimes/node/client.ts';
import { TestCluster } from '../helpers/cluster.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

describe('startNode in a program of its own', () => {
  let cluster: TestCluster;
  const scratch = mkdtempSync(join(tmpdir(), 'dqlite-wasm-embedded-'));

  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 3 });
  }, 90_000);

  afterAll(async () => {
    await cluster?.destroy();
    rmSync(scratch, { recursive: true, force: true });
  });

  test('joins, writes while a follower, reads its own write', async () => {
    const { stdout } = await run(
      process.execPath,
      ['--import', './scripts/ts-loader.mjs', 'test/startup/embedded-follower.mjs', join(scratch, 'embedded'), cluster.addresses.join(','), cluster.clusterKey],
      { cwd: ROOT, timeout: 90_000, env: { ...process.env, DQLITE_WASM_MODULE: new URL('../../runtimes/node/library.ts', import.meta.url).href } },
    );
    const seen = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
      address: string;
      id: number;
      state: string;
      leaderId: number;
      rows: { body: string }[];
      inTransaction: number;
      fatal: string[];
    };
    expect(seen.state).not.toBe('leader');
    expect(seen.leaderId).not.toBe(0);
    expect(seen.leaderId).not.toBe(seen.id);
    expect(seen.rows).toEqual([{ body: `from ${seen.address}` }]);
    expect(seen.inTransaction).toBeGreaterThanOrEqual(2);
    expect(seen.fatal).toEqual([]);

    const db = await connect({ servers: cluster.addresses, database: 'embedded' });
    const { rows } = await db.query('SELECT body FROM notes ORDER BY id');
    await db.close();
    expect(rows).toContainEqual({ body: `from ${seen.address}` });
    expect(rows).toContainEqual({ body: 'in a transaction' });
  }, 100_000);
});
