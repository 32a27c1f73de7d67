/** The one-line memory summary of a node card, from the `memory` field of the node's status. */
import type { NodeMemory } from './demo-cluster.ts';

const MIB = 1024 * 1024;

function mib(bytes: number): string {
  return (bytes / MIB).toFixed(1);
}

/**
 * "mem 24.0 MiB (log 1.2, db 8.0, wasm 16.0)", in MiB. The log, databases and snapshots live in
 * the JS heap or the engine's WASM memory, so where the host reports its JS heap the total is
 * heap + WASM; elsewhere it is the sum of the parts. A snapshot in progress shows as "snap".
 */
export function memoryLine(memory: NodeMemory): string {
  const parts = [`log ${mib(memory.logBytes)}`, `db ${mib(memory.databasesBytes)}`];
  if (memory.snapshotBytes > 0) parts.push(`snap ${mib(memory.snapshotBytes)}`);
  parts.push(`wasm ${mib(memory.wasmBytes)}`);
  const total =
    memory.jsHeapBytes === null ? memory.logBytes + memory.databasesBytes + memory.snapshotBytes + memory.wasmBytes : memory.jsHeapBytes + memory.wasmBytes;
  return `mem ${mib(total)} MiB (${parts.join(', ')})`;
}

/** What the summary counts, for the line's tooltip. */
export function memoryTitle(memory: NodeMemory): string {
  return memory.jsHeapBytes === null
    ? 'memory this node holds: its in-memory Raft log, databases, snapshots in progress and the engine WASM memory (this browser does not report its JS heap)'
    : `memory this node holds: JS heap ${mib(memory.jsHeapBytes)} MiB (Raft log, databases, snapshots) + engine WASM memory`;
}
