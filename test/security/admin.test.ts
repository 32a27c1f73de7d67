/**
 * Membership and leadership requests need credentials: from an address outside `--admin-allow`
 * the real `dqlite` shell's `.remove` (and our client's add, assign, transfer, weight) are refused
 * with SQLITE_AUTH and change nothing; with the cluster key over the `/dqlite` WebSocket they work.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connectCluster, dialOverWebSocket, DqliteError } from '../../src/client/index.ts';
import { dialTcp, dialWebSocket } from '../../runtimes/node/index.ts';
import { CLUSTER_KEY_HEADER } from '../../src/transport/index.ts';
import { TestCluster, waitFor } from '../helpers/cluster.ts';

const run = promisify(execFile);

async function shell(server: string, command: string): Promise<{ ok: boolean; output: string }> {
  try {
    const { stdout, stderr } = await run('dqlite', ['-s', server, 'admindb', command], { timeout: 30_000 });
    return { ok: true, output: stdout + stderr };
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}${failed.message}` };
  }
}

function keyedDial(clusterKey: string) {
  return dialOverWebSocket(
    (url, options) => dialWebSocket(url, { ...options, headers: { [CLUSTER_KEY_HEADER]: clusterKey } }),
    (address) => `ws://${address}/dqlite`,
  );
}

describe('authenticated administration', () => {
  let cluster: TestCluster;

  beforeAll(async () => {
    // 127.0.0.1 is not on this allow-list, so the test's loopback clients are outsiders.
    cluster = await TestCluster.start({ nodes: 3, extraArgs: ['--admin-allow', '10.1.2.3,192.168.0.0/16'] });
  }, 120_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  test('the real dqlite shell cannot .remove a voter without credentials; nothing changes', async () => {
    const leader = await cluster.waitForLeader();
    const victim = (leader + 2) % 3;
    const before = await cluster.status(leader);
    const result = await shell(cluster.addresses[(leader + 1) % 3]!, `.remove ${cluster.addresses[victim]}`);
    expect(result.ok).toBe(false);
    expect(result.output).toMatch(/not authorized: remove changes the cluster/);
    expect(result.output).toMatch(/--admin-allow/);
    const after = await cluster.status(leader);
    expect(after.members).toEqual(before.members);
    expect(after.state).toBe('leader');
    const weight = await shell(cluster.addresses[victim]!, `.weight ${cluster.addresses[victim]} 5`);
    expect(weight.ok).toBe(false);
    expect(weight.output).toMatch(/not authorized: weight changes the cluster/);
    // Reading the membership needs no credentials.
    const listed = await shell(cluster.addresses[victim]!, '.cluster');
    expect(listed.ok).toBe(true);
    expect(listed.output.match(/voter/g)?.length).toBe(3);
  });

  test('add, assign, transfer and weight over plain TCP are refused with SQLITE_AUTH', async () => {
    const admin = await connectCluster({ servers: cluster.addresses, dial: dialTcp, timeoutMs: 20_000 });
    try {
      const members = await admin.members();
      const leader = (await admin.leader())!;
      const follower = members.find((m) => m.address !== leader.address)!;
      // Each outcome is caught as it is made: the requests run at once, and a refusal that
      // arrived before its turn in the loop below would otherwise count as unhandled.
      const outcome = (attempt: Promise<unknown>): Promise<unknown> => attempt.then(() => undefined, (e: unknown) => e);
      const attempts: [string, Promise<unknown>][] = [
        ['add', outcome(admin.add({ id: 4242n, address: '127.0.0.1:1' }))],
        ['assign', outcome(admin.assign(follower.id, 'spare'))],
        ['transfer', outcome(admin.transfer(follower.id))],
        ['weight', outcome(admin.weight(follower.address, 7))],
      ];
      for (const [type, attempt] of attempts) {
        const error = await attempt;
        expect(error, type).toBeInstanceOf(DqliteError);
        expect((error as DqliteError).code, type).toBe(23);
        expect((error as DqliteError).message, type).toContain(`not authorized: ${type} changes the cluster`);
      }
      expect(await admin.members()).toEqual(members);
      expect((await admin.leader())?.address).toBe(leader.address);
      expect((await admin.describe(follower.address)).weight).toBe(0n);
    } finally {
      await admin.close();
    }
  });

  test('with the cluster key over the /dqlite WebSocket, remove is accepted', async () => {
    const admin = await connectCluster({ servers: cluster.addresses, dial: keyedDial(cluster.clusterKey), timeoutMs: 20_000 });
    try {
      const leader = (await admin.leader())!;
      const members = await admin.members();
      const victim = members.find((m) => m.address !== leader.address)!;
      await admin.remove(victim.id);
      await waitFor('the removal', 10_000, async () => ((await admin.members()).length === 2 ? true : undefined));
      expect((await admin.members()).map((m) => m.address)).not.toContain(victim.address);
    } finally {
      await admin.close();
    }
  });

  test('a wrong key on the /dqlite WebSocket is refused at the upgrade', async () => {
    const error = await keyedDial('not-the-key')(cluster.addresses[0]!).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toMatch(/HTTP 401/);
  });
});
