/**
 * A node must prove the cluster key before it becomes a member. A joiner with a wrong key exits
 * with a message saying so, and the one-node cluster it tried to join keeps its membership, its
 * leader and its term, and stays writable. A node holding another key cannot be added by an
 * allowed admin either: the leader's peer handshake with it fails before any ConfChange.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connect, connectCluster, DqliteError } from '../../runtimes/node/client.ts';
import { dialTcp } from '../../runtimes/node/index.ts';
import { freePort, TestCluster, waitFor } from '../helpers/cluster.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

function startNode(args: string[]): { exited: Promise<{ code: number | null; output: string }>; kill(): void } {
  const child = spawn(process.execPath, ['--import', './scripts/ts-loader.mjs', 'bin/cli.ts', 'start', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return {
    exited: new Promise((resolve) => child.once('exit', (code) => resolve({ code, output }))),
    kill: () => child.kill('SIGKILL'),
  };
}

describe('joins authenticate first', () => {
  let cluster: TestCluster;
  const scratch = mkdtempSync(join(tmpdir(), 'dqlite-wasm-join-'));
  let refusedAddress = '';

  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 1 });
  }, 60_000);

  afterAll(async () => {
    await cluster?.destroy();
    rmSync(scratch, { recursive: true, force: true });
  });

  test('a joiner with a wrong cluster key exits with a clear message; the cluster is unchanged', async () => {
    const before = await cluster.status(0);
    expect(before.state).toBe('leader');
    refusedAddress = `127.0.0.1:${await freePort()}`;
    const joiner = startNode(['--address', refusedAddress, '--dir', join(scratch, 'wrong'), '--join', cluster.addresses[0]!, '--cluster-key', 'wrongkey']);
    const timeout = setTimeout(() => joiner.kill(), 40_000);
    const { code, output } = await joiner.exited;
    clearTimeout(timeout);
    expect(code, output).toBe(1);
    expect(output).toMatch(/the cluster refused to add this node: .*cluster key/);
    expect(output).toMatch(/Nothing was changed in the cluster/);
    expect(output).not.toMatch(/added to the cluster/);

    const after = await cluster.status(0);
    expect(after.members).toEqual(before.members);
    expect(after.state).toBe('leader');
    expect(after.leaderId).toBe(before.leaderId);
    expect(after.term).toBe(before.term);
    const db = await connect({ servers: cluster.addresses, database: 'joins', timeoutMs: 10_000 });
    try {
      await db.exec('CREATE TABLE IF NOT EXISTS t (x INTEGER)');
      await db.exec('INSERT INTO t VALUES (1)');
      expect(Number((await db.query('SELECT count(*) AS n FROM t')).rows[0]!['n'])).toBe(1);
    } finally {
      await db.close();
    }
  }, 60_000);

  test('an allowed admin cannot add a node that holds another key: the leader probes it first', async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const dir = join(scratch, 'other');
    const stranger = startNode(['--address', address, '--dir', dir, '--cluster-key', 'another-clusters-key']);
    try {
      const identity = await waitFor('the stranger to start', 20_000, async () => {
        const response = await fetch(`http://${address}/health`);
        return response.ok ? (JSON.parse(readFileSync(join(dir, 'node.json'), 'utf8')) as { id: number }) : undefined;
      });
      const before = await cluster.status(0);
      // Loopback is on the default --admin-allow: the request itself is allowed.
      const admin = await connectCluster({ servers: cluster.addresses, dial: dialTcp, timeoutMs: 10_000 });
      try {
        const error = await admin.add({ id: BigInt(identity.id), address }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(DqliteError);
        expect((error as DqliteError).code).toBe(23);
        expect((error as DqliteError).message).toMatch(/not added: node \d+ at 127\.0\.0\.1:\d+ (refused the peer hello|holds a different cluster key)/);
      } finally {
        await admin.close();
      }
      const after = await cluster.status(0);
      expect(after.members).toEqual(before.members);
      expect(after.term).toBe(before.term);
    } finally {
      stranger.kill();
      await stranger.exited;
    }
  }, 60_000);

  test('the refused node, restarted with the right key on the same directory, joins', async () => {
    const joiner = startNode(['--address', refusedAddress, '--dir', join(scratch, 'wrong'), '--join', cluster.addresses[0]!, '--cluster-key', cluster.clusterKey]);
    try {
      await waitFor('the second member', 30_000, async () => ((await cluster.status(0)).members.some((m) => m.address === refusedAddress) ? true : undefined));
    } finally {
      joiner.kill();
      await joiner.exited;
    }
  }, 60_000);
});
