/**
 * Replicas at the same applied index hold byte-identical database and WAL files (the WAL up to
 * what Raft confirmed: a leader's pending transactions are not part of the replicated state).
 * Compared straight from each node's engine, the bytes the node would snapshot or dump.
 */
import type { SimCluster } from './sim-cluster.ts';

const EMPTY = new Uint8Array(0);

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

/** Problems found among running nodes that applied the same index; none when all agree. */
export function compareReplicas(cluster: SimCluster, databases: readonly string[]): string[] {
  const byApplied = new Map<number, { id: number; files: Map<string, { main: Uint8Array; wal: Uint8Array }> }[]>();
  for (const slot of cluster.running()) {
    const status = cluster.status(slot)!;
    const engine = cluster.engine(slot)!;
    const files = new Map<string, { main: Uint8Array; wal: Uint8Array }>();
    for (const name of databases) {
      const db = engine.get(name);
      files.set(name, db ? db.snapshot() : { main: EMPTY, wal: EMPTY });
    }
    const group = byApplied.get(status.appliedIndex) ?? [];
    group.push({ id: slot.id, files });
    byApplied.set(status.appliedIndex, group);
  }
  const problems: string[] = [];
  for (const [applied, group] of byApplied) {
    const first = group[0]!;
    for (const other of group.slice(1)) {
      for (const name of databases) {
        const a = first.files.get(name)!;
        const b = other.files.get(name)!;
        for (const part of ['main', 'wal'] as const) {
          if (!sameBytes(a[part], b[part])) {
            problems.push(
              `at applied index ${applied}, database ${name}: ${part === 'main' ? 'main file' : 'WAL'} of node ${other.id} (${b[part].length} bytes) differs from node ${first.id}'s (${a[part].length} bytes)`,
            );
          }
        }
      }
    }
  }
  return problems;
}
