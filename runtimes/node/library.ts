/**
 * The package's main entry on Node.js (and Deno through its Node compatibility): the client, and
 * what it takes to run a node inside your own process.
 */
export * from './client.ts';
export { startNodeProcess, type NodeProcessOptions, type RunningNode } from './node-process.ts';
export { ClusterNode, type NodeOptions, type NodeStatus } from '../../src/server/node.ts';
export { Engine, type EngineOptions } from '../../wasm/index.ts';
export type * from '../../src/runtime.ts';
