/**
 * The glibc allocator settings a node gets from the `dqlite-wasm` command on Linux
 * (docs/memory.md, "The allocator"). glibc reads them once, when a process starts, so a node
 * cannot apply them to itself: the launcher (bin/dqlite-wasm, as a shell script) sets them before
 * it becomes Node.js, and `dqlite-wasm cluster` sets them for the nodes it spawns. Both follow
 * one rule: a variable already in the environment (even empty) is kept, and
 * DQLITE_WASM_TUNE_MALLOC=0 sets none.
 */

/**
 * Two arenas instead of eight per core, and every allocation of 32 KiB or more mapped on its own,
 * so that freeing it gives it back to the system instead of leaving it in an arena (glibc raises
 * that threshold on its own otherwise): the engine's 256 KiB chunks and snapshot buffers, and
 * V8's 32 KiB compilation zones, which otherwise leave an idle node's heap 7–16 MiB larger after
 * its first statement (docs/memory.md, "An idle node's first statement").
 */
export const ALLOCATOR_ENV_DEFAULTS: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '32768',
};

/** `env` with the allocator settings added where the rule above says so. */
export function withAllocatorDefaults(env: NodeJS.ProcessEnv, platform: NodeJS.Platform): NodeJS.ProcessEnv {
  if (platform !== 'linux' || env['DQLITE_WASM_TUNE_MALLOC'] === '0') return env;
  const tuned = { ...env };
  for (const [name, value] of Object.entries(ALLOCATOR_ENV_DEFAULTS)) {
    if (tuned[name] === undefined) tuned[name] = value;
  }
  return tuned;
}

/**
 * The Node.js flags the launcher gives the node: DQLITE_WASM_NODE_FLAGS split at spaces (none
 * when unset), so `dqlite-wasm cluster`, which spawns `node bin/dqlite-wasm`, gives its nodes the
 * same as the command gives one node.
 */
export function launcherNodeFlags(env: NodeJS.ProcessEnv): string[] {
  return (env['DQLITE_WASM_NODE_FLAGS'] ?? '').split(/[ \t\n]+/).filter((flag) => flag !== '');
}
