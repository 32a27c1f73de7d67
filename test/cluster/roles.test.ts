/**
 * Roles beyond `votersMax`: joiners pick their own role from the member list they read, so two
 * that join at once can both take the last voter seat (seen in a 5-node fault-suite start-up,
 * which then waited forever for 3 voters). The leader gives the surplus back. Here an admin
 * makes the extra voter on purpose, as the racing joiner did.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connectCluster } from '../../runtimes/node/client.ts';
import { TestCluster, waitFor } from '../helpers/cluster.ts';

describe('roles beyond votersMax', () => {
  let cluster: TestCluster;
  beforeAll(async () => {
    cluster = await TestCluster.start({ nodes: 4 });
  }, 120_000);
  afterAll(async () => {
    await cluster?.destroy();
  });

  test('a fourth voter is demoted back to standby by the leader', async () => {
    const admin = await connectCluster({ servers: cluster.addresses, timeoutMs: 20_000 });
    try {
      const before = await admin.members();
      expect(before.filter((m) => m.role === 'voter')).toHaveLength(3);
      const extra = before.find((m) => m.role !== 'voter')!;
      await admin.assign(extra.id, 'voter');
      const after = await waitFor('the surplus voter to be demoted', 20_000, async () => {
        const members = await admin.members();
        return members.filter((m) => m.role === 'voter').length === 3 ? members : undefined;
      });
      expect(after.filter((m) => m.role === 'stand-by')).toHaveLength(1);
      expect(after.map((m) => m.id).sort()).toEqual(before.map((m) => m.id).sort());
      // The cluster keeps working through the changes.
      const leader = await cluster.waitForLeader();
      expect(leader).toBeGreaterThanOrEqual(0);
    } finally {
      await admin.close();
    }
  });
});
