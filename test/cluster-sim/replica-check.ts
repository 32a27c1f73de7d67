/**
 * Replicas at the same applied index hold byte-identical database and WAL files (the WAL up to
 * what Raft confirmed: a leader's pending transactions are not part of the replicated state).
 * Compared straight from each node's engine, the bytes the node would snapshot or dump.
 */
import type { SimCluster } from './sim-cluster.ts';

/** Page size of the engines' databases: a database that was opened but never written is one page. */
const FRESH_DATABASE_BYTES_MAX = 4096;

/**
 * A client's Open creates the database on the node it asked, before any entry of it applies: a
 * replica without it equals one with a fresh, empty copy (one page, no WAL). Anything more that
 * one replica has and another lacks is a difference.
 */
function fresh(files: { main: Uint8Array; wal: Uint8Array }): boolean {
  return files.wal.length === 0 && files.main.length <= FRESH_DATABASE_BYTES_MAX;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

/** Problems found among running nodes that applied the same index; none when all agree. */
export function compareReplicas(cluster: SimCluster, databases: readonly string[]): string[] {
  const byApplied = new Map<number, { id: number; files: Map<string, { main: Uint8Array; wal: Uint8Array } | undefined> }[]>();
  for (const slot of cluster.running()) {
    const status = cluster.status(slot)!;
    const engine = cluster.engine(slot)!;
    const files = new Map<string, { main: Uint8Array; wal: Uint8Array } | undefined>();
    for (const name of databases) files.set(name, engine.get(name)?.snapshot());
    const group = byApplied.get(status.appliedIndex) ?? [];
    group.push({ id: slot.id, files });
    byApplied.set(status.appliedIndex, group);
  }
  const problems: string[] = [];
  for (const [applied, group] of byApplied) {
    const first = group[0]!;
    for (const other of group.slice(1)) {
      for (const name of databases) {
        const a = first.files.get(name);
        const b = other.files.get(name);
        if (!a || !b) {
          const present = a ?? b;
          if (present && !fresh(present)) {
            const [has, lacks] = a ? [first.id, other.id] : [other.id, first.id];
            problems.push(`at applied index ${applied}, database ${name} holds ${present.main.length} + ${present.wal.length} WAL bytes on node ${has} and does not exist on node ${lacks}`);
          }
          continue;
        }
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
