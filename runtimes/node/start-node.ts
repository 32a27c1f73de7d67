/**
 * `startNode` on Node.js (and on Deno through its Node compatibility): a cluster member in the
 * caller's own process, with Node's files, lock and listener, and its `Database` handles.
 */
import { EmbeddedNode } from '../../src/server/embedded-node.ts';
import { startMember, type MemberOptions } from '../../src/server/startup.ts';
import { nodeMemberHost } from './node-process.ts';
import { dialTcp } from './tcp.ts';

export interface StartNodeOptions extends Omit<MemberOptions, 'address'> {
  /** Where to listen, host:port. Default 127.0.0.1:0: any free loopback port. */
  address?: string;
}

export async function startNode(options: StartNodeOptions): Promise<EmbeddedNode> {
  const { address, ...rest } = options;
  const member = await startMember({ ...rest, address: address ?? '127.0.0.1:0', log: options.log ?? (() => undefined) }, nodeMemberHost());
  return new EmbeddedNode(member, dialTcp, options.join ?? []);
}
