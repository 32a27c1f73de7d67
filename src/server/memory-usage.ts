/**
 * What a node holds in memory, by part (status.memory, `dqlite_wasm_memory_bytes{part}`), and the
 * host's JS heap where the host reports it. See docs/memory.md for what each part is and why.
 */

export interface NodeMemory {
  /** Data bytes of the Raft log entries held in memory (the trailing log and the tail after the snapshot). */
  logBytes: number;
  /** Bytes the databases' main files and WALs hold (the engine's in-memory files, spare chunks included). */
  databasesBytes: number;
  /** The latest snapshot kept for followers, plus a snapshot being taken or installed. */
  snapshotBytes: number;
  /** The SQLite engine's WASM memory (its page cache, statements, and heap). */
  wasmBytes: number;
  /** The host's JS heap with its array buffers; null where the host does not report it. */
  jsHeapBytes: number | null;
}

interface HostMemoryProbes {
  process?: { memoryUsage?: () => { heapUsed: number; arrayBuffers?: number } };
  Deno?: { memoryUsage?: () => { heapUsed: number; external: number } };
  performance?: { memory?: { usedJSHeapSize: number } };
}

/**
 * The JS heap as the host reports it: Node and Deno count array buffers apart from the heap
 * (the log and the databases are array buffers), so they are added; Chromium's
 * performance.memory counts them in. Null elsewhere (Firefox, Safari).
 */
export function jsHeapBytes(): number | null {
  const host = globalThis as HostMemoryProbes;
  try {
    if (host.Deno?.memoryUsage) {
      const usage = host.Deno.memoryUsage();
      return usage.heapUsed + usage.external;
    }
    if (host.process?.memoryUsage) {
      const usage = host.process.memoryUsage();
      return usage.heapUsed + (usage.arrayBuffers ?? 0);
    }
    const browser = host.performance?.memory?.usedJSHeapSize;
    return typeof browser === 'number' ? browser : null;
  } catch {
    // A sandbox may refuse the call (Deno without --allow-sys on some versions): not known.
    return null;
  }
}
