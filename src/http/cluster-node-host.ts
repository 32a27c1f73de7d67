/** The HTTP API's view of a ClusterNode: the only file of `src/http/` that knows the node's class. */
import type { DialStream } from '../runtime.ts';
import type { ClusterNode } from '../server/node.ts';
import type { HttpApiHost } from './api-host.ts';
import { byteStreamPair } from './in-process-stream.ts';
import { HttpApi } from './router.ts';

export function httpApiHostFor(node: ClusterNode, dialStream: DialStream | undefined): HttpApiHost {
  let connections = 0;
  return {
    dialStream,
    openClientStream() {
      const [client, server] = byteStreamPair(`http-api-${++connections}`, node.address || 'this node');
      node.acceptClient(server);
      return client;
    },
    log: (line) => node.logLine(line),
    changeLog: () => node.changeLog(),
    collectGarbage: () => node.collectGarbage(),
    snapshotDatabase(name) {
      return node.existingDatabase(name)?.engine.snapshot();
    },
    cluster() {
      const status = node.status();
      return {
        id: status.id,
        address: status.address,
        state: status.state,
        leaderId: status.leaderId,
        leaderAddress: status.leaderAddress,
        members: status.members.map((m) => ({ id: m.id, address: m.address, role: m.role })),
        reachablePeers: status.reachablePeers,
        databases: status.databases.map((db) => ({ name: db.name })),
      };
    },
  };
}

const apis = new WeakMap<ClusterNode, HttpApi>();

/** The node's HTTP API, made on first use and kept for the node's life (it pools connections). */
export function httpApiFor(node: ClusterNode, dialStream: DialStream | undefined): HttpApi {
  let api = apis.get(node);
  if (!api) {
    api = new HttpApi(httpApiHostFor(node, dialStream));
    apis.set(node, api);
  }
  return api;
}
