/**
 * Deno members in a cluster with a Node member, as real processes: `deno check` on the entry,
 * Deno's file storage and lock, joining as a voter, serving dqlite over TCP and WebSocket,
 * recovering from its directory after kill -9, and the WebSocket-only mode.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as rawConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connect, connectCluster, dialOverWebSocket, type Database } from '../../runtimes/node/client.ts';
import { dialWebSocket } from '../../runtimes/node/websocket.ts';
import { waitFor } from '../helpers/cluster.ts';
import { findDeno, MixedCluster, type Member } from '../browser/mixed-cluster.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const deno = findDeno();
const overWebSocket = dialOverWebSocket(dialWebSocket, (address) => `ws://${address}/dqlite`);

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
}

/** Whether a raw dqlite handshake on `address` gets any answer bytes within `timeoutMs`. */
function rawDqliteAnswers(address: string, timeoutMs: number): Promise<boolean> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    const socket = rawConnect({ host, port });
    const finish = (answered: boolean): void => {
      socket.destroy();
      resolve(answered);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('error', () => {
      clearTimeout(timer);
      finish(false);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      finish(false);
    });
    socket.on('data', (chunk: Buffer) => {
      clearTimeout(timer);
      // An HTTP server answers garbage with "HTTP/1.1 400": that is not the dqlite protocol.
      finish(!chunk.subarray(0, 5).equals(Buffer.from('HTTP/')));
    });
    // Protocol version 1, then a LEADER request (8-byte header, 8-byte body).
    const handshake = Buffer.alloc(8);
    handshake.writeBigUInt64LE(1n);
    const leader = Buffer.alloc(16);
    leader.writeUInt32LE(1, 0);
    leader.writeUInt8(0, 4);
    socket.write(Buffer.concat([handshake, leader]));
  });
}

describe.skipIf(!deno)(deno ? 'Deno runtime' : 'Deno runtime (skipped: no deno binary)', () => {
  test('deno check passes on the Deno entry', async () => {
    const { stderr } = await run(deno!, ['check', '--no-lock', 'runtimes/deno/main.ts'], { cwd: ROOT, timeout: 120_000 });
    expect(stderr).not.toMatch(/error/i);
  }, 150_000);

  test("Deno's file storage and directory lock keep their promises", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dqlite-wasm-deno-storage-'));
    try {
      const { stdout } = await run(deno!, ['run', '-A', '--no-lock', 'test/deno/storage-check.js', dir], { cwd: ROOT, timeout: 60_000 });
      expect(JSON.parse(stdout.trim().split('\n').at(-1)!)).toEqual({
        secondLock: 'DIRECTORY_LOCKED',
        missing: null,
        appended: 'abcdef',
        truncated: 'abcdXY',
        replaced: 'two',
        listed: ['meta', 'seg'],
        afterRemove: ['seg'],
        beforeCommit: 'old',
        committed: 'abCDef',
        afterAbort: 'abCDef',
        temporaries: 0,
        badName: 'INVALID_NAME',
        reopened: 'abcdXY',
        relocked: true,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);

  describe('a Node member, a Deno member and a WebSocket-only Deno member, all voters', () => {
    let cluster: MixedCluster;
    let denoMember: Member;
    let webSocketOnly: Member;
    let db: Database;
    const acknowledged: number[] = [];
    let nextId = 1;

    beforeAll(async () => {
      cluster = await MixedCluster.start(['node', 'deno'], { commitTimeoutMs: 5000 });
      denoMember = cluster.members[1]!;
      webSocketOnly = await cluster.add('deno', { args: ['--websocket-only'] });
      const voters = (await cluster.status(0)).members.filter((m) => m.role === 'voter').map((m) => m.id);
      expect(voters.sort()).toEqual([cluster.members[0]!.id, denoMember.id, webSocketOnly.id].sort());
      // WebSocket for every client: the WebSocket-only member may lead, and it has no raw TCP.
      db = await connect({ servers: cluster.listeningAddresses, database: 'denodb', dial: overWebSocket, timeoutMs: 30_000 });
      await db.exec('CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT)');
    }, 150_000);

    afterAll(async () => {
      await db?.close().catch(() => undefined);
      await cluster?.destroy();
    });

    async function write(count: number, target: Database = db): Promise<void> {
      for (let i = 0; i < count; i++) {
        const id = nextId++;
        await target.exec('INSERT INTO kv (id, v) VALUES (?, ?)', [id, `v${id}`]);
        acknowledged.push(id);
      }
    }

    async function expectIdenticalWithAll(): Promise<void> {
      await cluster.waitForSameAppliedIndex(30_000);
      const files = await Promise.all(cluster.members.map((m) => cluster.files(m.index, 'denodb')));
      for (const other of files.slice(1)) {
        expect(sameBytes(other.main, files[0]!.main)).toBe(true);
        expect(sameBytes(other.wal, files[0]!.wal)).toBe(true);
      }
      const { rows } = await db.query('SELECT id FROM kv');
      const present = new Set(rows.map((r) => Number(r['id'])));
      expect(acknowledged.filter((id) => !present.has(id))).toEqual([]);
    }

    test('clients reach the Deno member over raw TCP and over WebSocket', async () => {
      // Raw TCP, this member alone (no leader discovery): membership and a dump.
      const direct = await connectCluster({ servers: [denoMember.address], leaderDiscovery: false, timeoutMs: 10_000 });
      try {
        expect((await direct.members()).map((m) => Number(m.id)).sort()).toEqual(cluster.members.map((m) => m.id).sort());
        await write(5);
        await cluster.waitForSameAppliedIndex(30_000);
        const [main] = await direct.dump('denodb', denoMember.address);
        expect(main!.data.length).toBeGreaterThan(0);
      } finally {
        await direct.close();
      }
      // WebSocket with leader discovery, starting from the Deno member.
      const viaWebSocket = await connect({ servers: [denoMember.address], database: 'denodb', dial: overWebSocket, timeoutMs: 30_000 });
      try {
        await write(5, viaWebSocket);
        const { rows } = await viaWebSocket.query('SELECT count(*) AS n FROM kv');
        expect(Number(rows[0]!['n'])).toBe(acknowledged.length);
      } finally {
        await viaWebSocket.close();
      }
      const health = await fetch(`http://${denoMember.address}/health`);
      expect(health.status).toBe(200);
    });

    test('kill -9 the Deno member: writes go on; restarted, it recovers from its directory', async () => {
      await cluster.kill(denoMember.index);
      const survivor = await connect({ servers: [cluster.members[0]!.address], database: 'denodb', dial: overWebSocket, timeoutMs: 30_000 });
      try {
        await write(20, survivor);
      } finally {
        await survivor.close();
      }
      await cluster.revive(denoMember.index);
      expect((await cluster.status(denoMember.index)).id).toBe(denoMember.id);
      await write(5);
      await expectIdenticalWithAll();
    }, 90_000);

    test('the WebSocket-only member serves no raw TCP, leads, and takes writes over WebSocket', async () => {
      expect(await rawDqliteAnswers(webSocketOnly.address, 2000)).toBe(false);
      expect(await rawDqliteAnswers(cluster.members[0]!.address, 2000)).toBe(true);
      const admin = await connectCluster({ servers: [cluster.members[0]!.address], timeoutMs: 30_000 });
      try {
        await admin.transfer(BigInt(webSocketOnly.id));
      } finally {
        await admin.close();
      }
      await waitFor('the WebSocket-only member to lead', 20_000, async () => ((await cluster.status(webSocketOnly.index)).state === 'leader' ? true : undefined));
      const viaWebSocket = await connect({ servers: [webSocketOnly.address], database: 'denodb', dial: overWebSocket, timeoutMs: 30_000 });
      try {
        await write(10, viaWebSocket);
      } finally {
        await viaWebSocket.close();
      }
      expect((await cluster.status(webSocketOnly.index)).state).toBe('leader');
      await expectIdenticalWithAll();
    }, 90_000);

    test('both Deno members answer the HTTP API, forwarding to a Node leader: a POSTed write lands, a query reads it back', async () => {
      // The leader serves raw TCP (the raw-TCP Deno member forwards over it) and WebSocket (the
      // WebSocket-only member forwards over that).
      const nodeMember = cluster.members[0]!;
      // The WebSocket-only member leads now: the transfer goes to it over WebSocket.
      const admin = await connectCluster({ servers: [nodeMember.address], dial: overWebSocket, timeoutMs: 30_000 });
      try {
        await admin.transfer(BigInt(nodeMember.id));
      } finally {
        await admin.close();
      }
      await waitFor('the Node member to lead', 20_000, async () => ((await cluster.status(nodeMember.index)).state === 'leader' ? true : undefined));
      const write = await fetch(`http://${webSocketOnly.address}/db/execute?db=denodb`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify([['INSERT INTO kv (id, v) VALUES (?, ?)', 100_000, 'over http']]),
        signal: AbortSignal.timeout(30_000),
      });
      const written = (await write.json()) as { results: { rows_affected?: number; error?: string }[] };
      expect(write.status, JSON.stringify(written)).toBe(200);
      expect(written.results[0]).toMatchObject({ rows_affected: 1 });
      acknowledged.push(100_000);
      for (const member of [webSocketOnly, denoMember]) {
        const sql = encodeURIComponent('SELECT v FROM kv WHERE id = 100000');
        const read = await fetch(`http://${member.address}/db/query?db=denodb&level=strong&q=${sql}`, { signal: AbortSignal.timeout(30_000) });
        const answer = (await read.json()) as { results: { values?: unknown[][] }[] };
        expect(read.status, `${member.address}: ${JSON.stringify(answer)}`).toBe(200);
        expect(answer.results[0]!.values).toEqual([['over http']]);
      }
    }, 90_000);
  });
});
