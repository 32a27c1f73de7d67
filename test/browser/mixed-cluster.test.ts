/**
 * One Raft cluster of a Node process, a Deno process and a Chromium page (a node in a Web Worker
 * with OPFS), all voters. Writes through our client while each member in turn is killed (the
 * Chromium one by closing its page) and brought back; at the end all three hold byte-identical
 * databases with every acknowledged write. Then the Chromium member leads when writes start, and
 * both our client and the real `dqlite` shell still write through the listening members.
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connect, connectCluster, IndeterminateError, type Database } from '../../runtimes/node/client.ts';
import { waitFor } from '../helpers/cluster.ts';
import { chromiumAvailable, findDeno, MixedCluster } from './mixed-cluster.ts';

const run = promisify(execFile);

function hasDqliteShell(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v dqlite'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
}

/** Inserts rows one at a time until stopped; remembers which ones were acknowledged. */
class Writer {
  readonly acknowledged: number[] = [];
  readonly indeterminate: number[] = [];
  readonly errors: string[] = [];
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(
    private readonly db: Database,
    private nextId: number,
  ) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const id = this.nextId++;
      try {
        await this.db.exec('INSERT INTO kv (id, v) VALUES (?, ?)', [id, `value-${id}`]);
        this.acknowledged.push(id);
      } catch (error) {
        if (error instanceof IndeterminateError) this.indeterminate.push(id);
        this.errors.push((error as Error).message);
        if (this.errors.length > 1000) this.errors.splice(0, 500);
        // A failed call already waited out the client's retries; pause before the next row.
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  /** Resolves once `count` more writes were acknowledged. */
  progress(count: number, timeoutMs = 60_000): Promise<true> {
    const target = this.acknowledged.length + count;
    return waitFor(`${count} more acknowledged writes (last error: ${this.errors.at(-1) ?? 'none'})`, timeoutMs, async () =>
      this.acknowledged.length >= target ? true : undefined,
    );
  }

  async stop(): Promise<number> {
    this.stopped = true;
    await this.done;
    return this.nextId;
  }
}

const chromium = chromiumAvailable();
const deno = findDeno();
const why = !chromium ? ' (skipped: no /usr/bin/chromium; run bash scripts/ensure-deps.sh chromium)' : !deno ? ' (skipped: no deno binary)' : '';

describe.skipIf(!chromium || !deno)(`Node + Deno + Chromium cluster${why}`, () => {
  let cluster: MixedCluster;
  let db: Database;
  let nextId = 1;
  const acknowledged: number[] = [];

  beforeAll(async () => {
    // The Chromium member keeps leadership 3 s before handing it over, so a test can catch it leading.
    cluster = await MixedCluster.start(['node', 'deno', 'browser'], { commitTimeoutMs: 5000, browserHandOverMs: 3000 });
    db = await connect({ servers: cluster.listeningAddresses, database: 'mixed', timeoutMs: 30_000 });
    await db.exec('CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
  }, 150_000);

  afterAll(async () => {
    await db?.close().catch(() => undefined);
    await cluster?.destroy();
  });

  async function expectIdenticalReplicasWithAll(ids: number[]): Promise<void> {
    await cluster.waitForSameAppliedIndex(60_000);
    const files = [];
    for (const member of cluster.members) files.push(await cluster.files(member.index, 'mixed'));
    expect(files[0]!.main.length).toBeGreaterThan(0);
    for (let i = 1; i < files.length; i++) {
      const what = `${cluster.members[i]!.kind} member vs ${cluster.members[0]!.kind} member`;
      expect(sameBytes(files[i]!.main, files[0]!.main), `main file: ${what}`).toBe(true);
      expect(sameBytes(files[i]!.wal, files[0]!.wal), `WAL: ${what}`).toBe(true);
    }
    const { rows } = await db.query('SELECT id FROM kv');
    const present = new Set(rows.map((row) => Number(row['id'])));
    const missing = ids.filter((id) => !present.has(id));
    expect(missing, 'acknowledged writes missing').toEqual([]);
  }

  test('kill each member in turn and bring it back; writes continue; replicas identical', async () => {
    try {
      const writer = new Writer(db, nextId);
      try {
        await writer.progress(10);
        for (const member of cluster.members) {
          await cluster.kill(member.index);
          // Two of three live: writes go on (after an election if the leader died).
          await writer.progress(20);
          await cluster.revive(member.index);
          const status = await cluster.status(member.index);
          expect(status.id, `member ${member.index + 1} (${member.kind}) recovered its identity`).toBe(member.id);
          await waitFor(`member ${member.index + 1} (${member.kind}) to catch up`, 60_000, async () => {
            const leader = await cluster.status(await cluster.waitForLeader());
            const caughtUp = await cluster.status(member.index);
            return caughtUp.appliedIndex >= leader.commitIndex - 5 && caughtUp.leaderId !== 0 ? true : undefined;
          });
          await writer.progress(10);
        }
      } finally {
        nextId = await writer.stop();
        acknowledged.push(...writer.acknowledged);
      }
      expect(acknowledged.length).toBeGreaterThanOrEqual(100);
      await expectIdenticalReplicasWithAll(acknowledged);
    } catch (error) {
      console.log(cluster.dumpOutput());
      throw error;
    }
  }, 240_000);

  test('the Chromium member leads when writes start: they go through, leadership moves to a listening voter', async () => {
    try {
      const browser = cluster.members.find((m) => m.kind === 'browser')!;
      const admin = await connectCluster({ servers: cluster.listeningAddresses, timeoutMs: 30_000 });
      try {
        await admin.transfer(BigInt(browser.id));
      } finally {
        await admin.close();
      }
      await waitFor('the Chromium member to lead', 20_000, async () => ((await cluster.status(browser.index)).state === 'leader' ? true : undefined));
      const writer = new Writer(db, nextId);
      try {
        // Still leading when the first write was sent.
        expect((await cluster.status(browser.index)).state).toBe('leader');
        await writer.progress(20);
      } finally {
        nextId = await writer.stop();
        acknowledged.push(...writer.acknowledged);
      }
      const leader = await cluster.waitForLeader();
      expect(cluster.members[leader]!.kind, 'a listening member leads after the hand-over').not.toBe('browser');
      await expectIdenticalReplicasWithAll(acknowledged);
    } catch (error) {
      console.log(cluster.dumpOutput());
      throw error;
    }
  }, 120_000);

  test('the page writes and reads SQL through the worker node (comlink)', async () => {
    const browser = cluster.members.find((m) => m.kind === 'browser')!;
    const id = nextId++;
    const answer = await browser.page!.evaluate(async (rowId) => {
      type Api = {
        exec(db: string, sql: string, params?: unknown[]): Promise<{ rowsAffected: number }>;
        query(db: string, sql: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
        members(): Promise<{ id: number; role: string }[]>;
      };
      const api = (window as unknown as { node: { api: Api } }).node.api;
      const written = await api.exec('mixed', 'INSERT INTO kv (id, v) VALUES (?, ?)', [rowId, 'from the page']);
      const read = await api.query('mixed', 'SELECT v FROM kv WHERE id = ?', [rowId]);
      return { rowsAffected: written.rowsAffected, rows: read.rows, voters: (await api.members()).filter((m) => m.role === 'voter').length };
    }, id);
    expect(answer).toEqual({ rowsAffected: 1, rows: [{ v: 'from the page' }], voters: 3 });
    acknowledged.push(id);
    const { rows } = await db.query('SELECT v FROM kv WHERE id = ?', [id]);
    expect(rows).toEqual([{ v: 'from the page' }]);
  }, 60_000);

  test("the page keeps a live query on the worker node's own replica, following writes from Node (comlink)", async () => {
    const browser = cluster.members.find((m) => m.kind === 'browser')!;
    const page = browser.page!;
    type LivePage = {
      node: { live(db: string, sql: string, params: unknown[], onResult: (r: { rows: Record<string, unknown>[] }) => void, onError: (m: string) => void): Promise<() => void> };
      liveSeen: number[];
      liveErrors: string[];
      stopLive?: () => void;
    };
    await page.evaluate(async () => {
      const w = window as unknown as LivePage;
      w.liveSeen = [];
      w.liveErrors = [];
      w.stopLive = await w.node.live('mixed', 'SELECT count(*) AS n FROM kv', [], (r) => w.liveSeen.push(Number(r.rows[0]!['n'])), (m) => w.liveErrors.push(m));
    });
    const seen = (): Promise<{ seen: number[]; errors: string[] }> =>
      page.evaluate(() => ({ seen: (window as unknown as LivePage).liveSeen, errors: (window as unknown as LivePage).liveErrors }));
    await waitFor('the first live result in the page', 30_000, async () => ((await seen()).seen.length > 0 ? true : undefined));
    const before = (await seen()).seen.at(-1)!;
    expect((await cluster.status(browser.index)) as unknown as { liveQueries: { subscriptions: number } }).toMatchObject({ liveQueries: { subscriptions: 1 } });
    const id = nextId++;
    await db.exec('INSERT INTO kv (id, v) VALUES (?, ?)', [id, 'seen live in the page']);
    acknowledged.push(id);
    await waitFor('the live result after a write from Node', 30_000, async () => ((await seen()).seen.at(-1) === before + 1 ? true : undefined));
    expect((await seen()).errors).toEqual([]);
    await page.evaluate(() => (window as unknown as LivePage).stopLive!());
    await waitFor('the subscription to be freed', 10_000, async () =>
      ((await cluster.status(browser.index)) as unknown as { liveQueries: { subscriptions: number } }).liveQueries.subscriptions === 0 ? true : undefined,
    );
  }, 60_000);

  test.skipIf(!hasDqliteShell())('the real dqlite shell writes and reads while the Chromium member leads', async () => {
    const browser = cluster.members.find((m) => m.kind === 'browser')!;
    const admin = await connectCluster({ servers: cluster.listeningAddresses, timeoutMs: 30_000 });
    try {
      await admin.transfer(BigInt(browser.id));
    } finally {
      await admin.close();
    }
    await waitFor('the Chromium member to lead', 20_000, async () => ((await cluster.status(browser.index)).state === 'leader' ? true : undefined));
    const servers = cluster.listeningAddresses.join(',');
    const id = nextId++;
    await run('dqlite', ['-s', servers, 'mixed', `INSERT INTO kv (id, v) VALUES (${id}, 'from the dqlite shell')`], { timeout: 30_000 });
    const { stdout } = await run('dqlite', ['-s', servers, 'mixed', `SELECT v FROM kv WHERE id = ${id}`], { timeout: 30_000 });
    expect(stdout.trim()).toBe('from the dqlite shell');
    acknowledged.push(id);
    await expectIdenticalReplicasWithAll(acknowledged);
  }, 120_000);

  test('a second browser member on IndexedDB hears the Chromium leader through a relay and recovers after a reload', async () => {
    try {
      const voter = cluster.members.find((m) => m.kind === 'browser')!;
      const extra = await cluster.add('browser', { storage: 'indexeddb' });
      expect(await cluster.browserInfo(extra.index)).toMatchObject({ storage: 'indexeddb', fresh: true });
      expect((await cluster.status(0)).members.find((m) => m.id === extra.id)?.role).toBe('standby');

      // Browser nodes cannot connect to each other: the leader's messages reach the standby only relayed.
      const admin = await connectCluster({ servers: cluster.listeningAddresses, timeoutMs: 30_000 });
      try {
        await admin.transfer(BigInt(voter.id));
      } finally {
        await admin.close();
      }
      await waitFor('the IndexedDB member to follow the Chromium leader', 20_000, async () =>
        (await cluster.status(extra.index)).leaderId === voter.id ? true : undefined,
      );

      await cluster.kill(extra.index);
      const writer = new Writer(db, nextId);
      try {
        await writer.progress(10);
      } finally {
        nextId = await writer.stop();
        acknowledged.push(...writer.acknowledged);
      }
      await cluster.revive(extra.index);
      expect(await cluster.browserInfo(extra.index)).toMatchObject({ id: extra.id, storage: 'indexeddb', fresh: false });
      await expectIdenticalReplicasWithAll(acknowledged);
    } catch (error) {
      console.log(cluster.dumpOutput());
      throw error;
    }
  }, 120_000);
});
