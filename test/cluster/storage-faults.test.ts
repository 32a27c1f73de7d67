/**
 * Storage faults on real node processes: a node whose log is damaged in the middle (entries it
 * acknowledged) must not start, so it can never vote or lead without them, and no acknowledged
 * write is lost. Before the fix the node took the damage for a torn tail, cut its log there, won
 * an election and overwrote the newer log of the old leader.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { connect } from '../../runtimes/node/client.ts';
import { TestCluster, waitFor } from '../helpers/cluster.ts';

const WRITES_PER_PHASE = 100;

function newestSegment(dir: string): string {
  const segments = readdirSync(dir).filter((name) => name.startsWith('segment-')).sort();
  expect(segments.length).toBeGreaterThan(0);
  return join(dir, segments[segments.length - 1]!);
}

function exitOf(cluster: TestCluster, index: number): Promise<number | null> {
  const child = cluster.nodes[index]!.process!;
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('a log damaged in the middle', () => {
  let cluster: TestCluster | undefined;

  afterAll(async () => {
    await cluster?.destroy();
  });

  test('keeps the node from starting, and no acknowledged write is lost', async () => {
    cluster = await TestCluster.start({ nodes: 3 });
    const c = cluster;
    try {
      const db = await connect({ servers: c.addresses, database: 'storage', timeoutMs: 20_000 });
      await db.exec('CREATE TABLE acked (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)');
      const acknowledged: number[] = [];
      const write = async (id: number): Promise<void> => {
        await db.exec('INSERT INTO acked (id, payload) VALUES (?, ?)', [id, `write ${id} `.repeat(8)]);
        acknowledged.push(id);
      };
      for (let id = 1; id <= WRITES_PER_PHASE; id++) await write(id);

      const a = await c.waitForLeader();
      const [b, third] = [0, 1, 2].filter((i) => i !== a) as [number, number];
      await c.kill(third);
      for (let id = WRITES_PER_PHASE + 1; id <= 2 * WRITES_PER_PHASE; id++) await write(id);
      await db.close();
      await c.kill(a);
      await c.kill(b);

      const segment = newestSegment(c.nodes[b]!.dir);
      const bytes = readFileSync(segment);
      const middle = Math.floor(bytes.length / 2);
      for (let i = 0; i < 64; i++) bytes[middle + i] = bytes[middle + i]! ^ 0xa5;
      writeFileSync(segment, bytes);

      c.spawn(b);
      const bExit = exitOf(c, b);
      c.spawn(third);
      // Long enough for B and C to elect a leader if B came up (the election timeout is 1 s).
      const outcome = await Promise.race([
        bExit.then((code) => ({ bExited: code })),
        new Promise<{ bExited?: undefined }>((resolve) => setTimeout(() => resolve({}), 10_000)),
      ]);
      c.spawn(a);
      await c.waitForLeader(30_000);
      const reader = await connect({ servers: [c.nodes[a]!.address, c.nodes[third]!.address], database: 'storage', timeoutMs: 20_000 });
      try {
        const ids = await waitFor('the acknowledged writes to be readable', 30_000, async () => {
          const { rows } = await reader.query('SELECT id FROM acked ORDER BY id');
          return rows.map((row) => Number(row['id']));
        });
        const lost = acknowledged.filter((id) => !ids.includes(id));
        expect(lost, `${lost.length} of ${acknowledged.length} acknowledged writes are gone`).toEqual([]);
        expect(ids).toEqual(acknowledged);
      } finally {
        await reader.close();
      }
      expect(outcome.bExited, `node ${b + 1} must refuse to start on a damaged log`).toBeDefined();
      expect(outcome.bExited).not.toBe(0);
      const bOutput = c.nodes[b]!.output.join('');
      expect(bOutput).toMatch(/segment-\d{16} is damaged at byte \d+/);
      expect(bOutput).toMatch(/refuses to start/);
      const damagedAt = Number(/is damaged at byte (\d+)/.exec(bOutput)![1]);
      // The record that holds the overwritten bytes (one WAL frame of a 4 KiB page, and more).
      expect(damagedAt).toBeLessThanOrEqual(middle);
      expect(damagedAt).toBeGreaterThan(middle - 64 * 1024);
    } catch (error) {
      console.log(c.dumpOutput());
      throw error;
    }
  }, 180_000);
});
