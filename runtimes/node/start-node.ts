/**
 * `startNode` on Node.js (and on Deno through its Node compatibility): a cluster member in the
 * caller's own process, with Node's files, lock and listener, and its `Database` handles.
 */
import { EmbeddedNode } from '../../src/server/embedded-node.ts';
import { startMember, type MemberOptions } from '../../src/server/startup.ts';
import { nodeMemberHost, type NodeTlsOptions } from './node-process.ts';

export interface StartNodeOptions extends Omit<MemberOptions, 'address'>, NodeTlsOptions {
  /** Where to listen, host:port. Default 127.0.0.1:0: any free loopback port. */
  address?: string;
}

export async function startNode(options: StartNodeOptions): Promise<EmbeddedNode> {
  const { address, tls, tlsWebSocketsWithoutCertificate, ...rest } = options;
  const log = options.log ?? (() => undefined);
  const host = nodeMemberHost({
    ...(tls && { tls }),
    ...(tlsWebSocketsWithoutCertificate !== undefined && { tlsWebSocketsWithoutCertificate }),
    log,
  });
  const member = await startMember({ ...rest, address: address ?? '127.0.0.1:0', log }, host);
  // Writes on a follower go to the leader through the host's dialer (TLS when the node has it).
  return new EmbeddedNode(member, host.runtime.dialStream, options.join ?? []);
}
