/**
 * The package's main entry on Node.js (and Deno through its Node compatibility): the client, and
 * `startNode`, a node inside your own process with the same `Database` interface.
 */
export * from './client.ts';
export { startNode, type StartNodeOptions } from './start-node.ts';
export { EmbeddedNode, NodeFatalEvent, type DatabaseOptions } from '../../src/server/embedded-node.ts';
export type { NodeStatus } from '../../src/server/node-options.ts';
export type { Limits } from '../../src/limits.ts';
export { ClusterKeyError } from '../../src/server/cluster-key-file.ts';
export { JoinRefusedError } from '../../src/server/join.ts';
