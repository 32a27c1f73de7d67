/**
 * The short version of `npm run import:large`: a file of some tens of MiB, made by Debian's
 * sqlite3, imported with `dqlite-wasm import` into a real 3-node cluster. Every node ends with
 * the same bytes, the CLI printed its progress (bytes, percentage, MiB/s), the leader logged the
 * replay, and a truncated copy of the file is refused with the cluster still serving.
 *
 * The nodes run with a short Raft tick (an election timeout of a few hundred ms), and the
 * leader must stay in place through the whole import, its replication, apply and checkpoint:
 * the COMMIT of a load of tens of MiB used to hold the leader's event loop (joining, copying and
 * checking the whole payload at once) and then each follower's, long enough for an election.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, truncateSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connectCluster } from '../../src/client/index.ts';
import { dialTcp } from '../../runtimes/node/tcp.ts';
import { TestCluster, waitFor } from '../helpers/cluster.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'dqlite-wasm-large-import-'));
const ROWS = 46_000; // 1 KiB blobs: about 61 MiB of file (a dump of it fits one client message)
const TICK_MS = 30;

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(ROOT, 'bin/dqlite-wasm'), ...args], { cwd: ROOT, timeout: 240_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

/** Checkpoints the node has applied (its /status `checkpoints`). */
function checkpoints(status: object): number {
  return Number((status as { checkpoints?: number }).checkpoints ?? 0);
}

async function query(address: string, sql: string): Promise<unknown[][]> {
  const response = await fetch(`http://${address}/db/query?level=none&q=${encodeURIComponent(sql)}`);
  const body = (await response.json()) as { results: { values?: unknown[][]; error?: string }[] };
  if (body.results[0]?.error) throw new Error(body.results[0].error);
  return body.results[0]?.values ?? [];
}

describe('import of a file of tens of MiB', () => {
  let cluster: TestCluster;
  const file = join(dir, 'large.sqlite');

  beforeAll(async () => {
    execFileSync('sqlite3', [
      file,
      `PRAGMA journal_mode=OFF; CREATE TABLE blobs (id INTEGER PRIMARY KEY, note TEXT, data BLOB);
       WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < ${ROWS})
       INSERT INTO blobs SELECT n, 'row ' || n, randomblob(1024) FROM c;
       CREATE INDEX blobs_note ON blobs(note);`,
    ]);
    // Election timeout 10..20 ticks: 300..600 ms. The commit timeout stays generous: this test
    // is about elections, not replication speed on a shared machine.
    cluster = await TestCluster.start({ nodes: 3, extraArgs: ['--tick-ms', String(TICK_MS), '--commit-timeout-ms', '60000'] });
  }, 120_000);

  afterAll(async () => {
    await cluster?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  test('every node ends byte-identical; the CLI shows progress and the leader logs the replay', async () => {
    const fileBytes = statSync(file).size;
    expect(fileBytes).toBeGreaterThan(56 * 2 ** 20);
    const expected = execFileSync('sqlite3', [file, 'SELECT count(*) || \'|\' || sum(length(data)) || \'|\' || sum(id) FROM blobs'], { encoding: 'utf8' }).trim();

    // A truncated copy (whole pages, so only the integrity check can tell) is refused, nothing changes.
    const truncated = join(dir, 'truncated.sqlite');
    copyFileSync(file, truncated);
    truncateSync(truncated, Math.floor(fileBytes / 2 / 4096) * 4096);
    const refused = await cli('import', '-s', cluster.addresses.join(','), 'main', truncated);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/import refused \(400\): \/db\/load refused the file, nothing changed: .*(integrity_check|malformed)/);
    expect(await query(cluster.addresses[0]!, "SELECT count(*) FROM sqlite_schema WHERE name = 'blobs'")).toEqual([[0]]);

    const leader = await cluster.waitForLeader();
    const before = await cluster.status(leader);
    const checkpointsBefore = await Promise.all(cluster.nodes.map((_, i) => cluster.status(i).then(checkpoints)));
    const outputBefore = cluster.nodes.map((n) => n.output.length);
    const imported = await cli('import', '-s', cluster.addresses.join(','), 'main', file);
    expect(imported.stderr + imported.stdout).toContain('import: ');
    expect(imported.code, `${imported.stderr}\n${cluster.dumpOutput()}`).toBe(0);
    expect(imported.stdout).toContain(`${ROWS} rows`);
    // The first line at once, the closing line at 100%, each with the rate.
    const total = (fileBytes / 2 ** 20).toFixed(1);
    expect(imported.stderr).toMatch(new RegExp(`import: sent [\\d.]+ MiB of ${total} MiB \\(\\d+%, [\\d.]+ MiB/s\\)`));
    expect(imported.stderr).toMatch(new RegExp(`import: sent ${total} MiB of ${total} MiB \\(100%, [\\d.]+ MiB/s\\); the cluster is checking`));
    const leaderLog = cluster.nodes[leader]!.output.join('');
    expect(leaderLog).toMatch(new RegExp(`/db/load into main: ${ROWS} rows replayed in [\\d.]+ s; committing and replicating`));
    expect(leaderLog).toContain('/db/load into main: committed on a quorum');

    const status = await cluster.status(leader);
    await waitFor('every node to apply the import', 60_000, async () => {
      const applied = await Promise.all(cluster.nodes.map((_, i) => cluster.status(i).then((s) => s.appliedIndex)));
      return applied.every((index) => index >= status.commitIndex) ? true : undefined;
    });
    for (const address of cluster.addresses) {
      expect(await query(address, "SELECT count(*) || '|' || sum(length(data)) || '|' || sum(id) FROM blobs")).toEqual([[expected]]);
    }
    // A WAL this long is checkpointed right after the import: that too must not cost the leader.
    await waitFor('every node to checkpoint the import', 60_000, async () => {
      const counts = await Promise.all(cluster.nodes.map((_, i) => cluster.status(i).then(checkpoints)));
      return counts.every((count, i) => count > checkpointsBefore[i]!) ? true : undefined;
    });
    const elections = cluster.nodes.flatMap((n, i) => n.output.slice(outputBefore[i]).join('').split('\n').filter((line) => /state (pre)?candidate/.test(line)));
    expect(elections).toEqual([]);
    for (let i = 0; i < cluster.nodes.length; i++) {
      const after = await cluster.status(i);
      expect({ node: i + 1, leaderId: after.leaderId, term: after.term }).toEqual({ node: i + 1, leaderId: before.leaderId, term: before.term });
    }
    const admin = await connectCluster({ servers: cluster.addresses, dial: dialTcp });
    try {
      const dumps = await Promise.all(cluster.addresses.map((address) => admin.dump('main', address)));
      expect(dumps[0]!.reduce((sum, f) => sum + f.data.length, 0)).toBeGreaterThan(56 * 2 ** 20);
      for (const dump of dumps.slice(1)) {
        expect(dump.map((f) => f.name)).toEqual(dumps[0]!.map((f) => f.name));
        dump.forEach((f, i) => expect(Buffer.compare(Buffer.from(f.data), Buffer.from(dumps[0]![i]!.data))).toBe(0));
      }
    } finally {
      await admin.close();
    }

    // The backup of it carries the same rows back out, with its progress line.
    const backupFile = join(dir, 'backup.sqlite');
    const backup = await cli('backup', '-s', cluster.addresses.join(','), 'main', backupFile);
    expect(backup.code).toBe(0);
    expect(backup.stderr).toMatch(/backup: main received [\d.]+ MiB of [\d.]+ MiB \(100%, [\d.]+ MiB\/s\); main written to/);
    expect(execFileSync('sqlite3', [backupFile, "SELECT count(*) || '|' || sum(length(data)) || '|' || sum(id) FROM blobs"], { encoding: 'utf8' }).trim()).toBe(expected);
  }, 180_000);
});
