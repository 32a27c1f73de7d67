/**
 * After healing: every node applies the same log prefix and then holds byte-identical database
 * and WAL files (invariant 3). A replica that skipped or mangled an entry shows up here even when
 * the clients, who only talk to the leader, saw nothing wrong.
 */
import { connectCluster, dialTcp } from '../../runtimes/node/client.ts';
import { waitFor } from '../helpers/cluster.ts';
import type { FaultCluster } from './fault-cluster.ts';
import type { CheckReport } from './workloads.ts';

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

export async function checkReplicas(cluster: FaultCluster, databases: readonly string[], timeoutMs: number): Promise<CheckReport> {
  const problems: string[] = [];
  try {
    await waitFor('every node to apply the same log', timeoutMs, async () => {
      const statuses = await Promise.all(cluster.nodes.map((n) => cluster.status(n.index)));
      const first = statuses[0]!;
      return statuses.every((s) => s.appliedIndex === first.appliedIndex && s.commitIndex === first.commitIndex) ? true : undefined;
    });
  } catch (error) {
    return { ok: false, problems: [`replicas did not converge: ${(error as Error).message}`], detail: '' };
  }
  const admin = await connectCluster({ servers: cluster.addresses, dial: dialTcp, timeoutMs: 10_000, requestTimeoutMs: 10_000 });
  try {
    for (const database of databases) {
      const dumps = [];
      for (const node of cluster.nodes) dumps.push(await admin.dump(database, node.address));
      for (let i = 1; i < dumps.length; i++) {
        for (let f = 0; f < Math.max(dumps[0]!.length, dumps[i]!.length); f++) {
          const a = dumps[0]![f];
          const b = dumps[i]![f];
          if (!a || !b || !sameBytes(a.data, b.data)) {
            problems.push(`database ${database}: file ${a?.name ?? b?.name} of node ${i + 1} (${b?.data.length ?? 0} bytes) differs from node 1's (${a?.data.length ?? 0} bytes)`);
          }
        }
      }
    }
  } finally {
    await admin.close();
  }
  return { ok: problems.length === 0, problems, detail: `${databases.length} databases on ${cluster.nodes.length} nodes` };
}
