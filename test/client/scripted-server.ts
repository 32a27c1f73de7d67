/**
 * A small dqlite-protocol server on loopback whose answers a test scripts, to drive the client
 * through leader changes, dropped connections and odd responses that a real cluster produces
 * only by chance. It speaks the protocol through our codec over real TCP sockets.
 */
import { type Server, type Socket, createServer } from 'node:net';
import {
  FrameReader,
  type Request,
  type Response,
  decodeRequest,
  decodeResponse,
  encodeResponse,
  encodeRowsBatches,
  ValueType,
} from '../../src/protocol/index.ts';

/** What a handler wants done with a request. */
export type Action = Response | Response[] | { raw: Uint8Array } | 'drop' | 'silent';

export interface ScriptedNode {
  readonly address: string;
  readonly id: bigint;
  /** Every request this node received, in order. */
  readonly requests: Request[];
  /** Overrides the default behaviour for one request; return undefined to fall back to it. */
  handler: ((request: Request, node: ScriptedNode) => Action | undefined) | undefined;
  close(): Promise<void>;
}

export interface ScriptedCluster {
  readonly nodes: ScriptedNode[];
  /** Address every node names as leader ('' = none known). */
  leader: string;
  close(): Promise<void>;
}

function defaultAction(cluster: ScriptedCluster, node: ScriptedNode, request: Request): Action {
  const isLeader = cluster.leader === node.address;
  const notLeader: Response = { type: 'failure', code: 10250, message: 'not leader' };
  switch (request.type) {
    case 'leader': {
      const leader = cluster.nodes.find((n) => n.address === cluster.leader);
      return { type: 'node', id: leader?.id ?? 0n, address: leader?.address ?? '' };
    }
    case 'client':
      return { type: 'welcome', heartbeatTimeoutMs: 15000 };
    case 'open':
      return { type: 'db', id: 0 };
    case 'prepare':
      return { type: 'stmt', db: 0, id: node.requests.filter((r) => r.type === 'prepare').length, paramCount: 1 };
    case 'exec':
    case 'exec_sql':
      return isLeader ? { type: 'result', lastInsertId: 1n, rowsAffected: 1n } : notLeader;
    case 'query':
    case 'query_sql':
      return isLeader
        ? { type: 'rows', columns: ['node'], rows: [[{ type: ValueType.Text, value: node.address }]], more: false }
        : notLeader;
    case 'finalize':
    case 'interrupt':
      return { type: 'empty' };
    case 'cluster':
      return { type: 'nodes', nodes: cluster.nodes.map((n) => ({ id: n.id, address: n.address, role: 0 })) };
    default:
      return { type: 'failure', code: 1, message: `scripted server does not do ${request.type}` };
  }
}

async function startNode(cluster: ScriptedCluster, id: bigint): Promise<ScriptedNode> {
  const sockets = new Set<Socket>();
  let node: ScriptedNode;
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const frames = new FrameReader({ expectVersion: true });
    socket.on('data', (chunk) => {
      let messages: Uint8Array[];
      try {
        messages = frames.feed(new Uint8Array(chunk));
      } catch {
        socket.destroy();
        return;
      }
      for (const message of messages) {
        const request = decodeRequestSafe(message);
        if (!request) {
          socket.destroy();
          return;
        }
        node.requests.push(request);
        const action = node.handler?.(request, node) ?? defaultAction(cluster, node, request);
        if (action === 'drop') {
          socket.destroy();
          return;
        }
        if (action === 'silent') continue;
        if ('raw' in action) {
          socket.write(action.raw);
          continue;
        }
        for (const response of Array.isArray(action) ? action : [action]) socket.write(encodeResponse(response));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  node = {
    address: `127.0.0.1:${port}`,
    id,
    requests: [],
    handler: undefined,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  return node;
}

function decodeRequestSafe(message: Uint8Array): Request | undefined {
  try {
    return decodeRequest(message);
  } catch {
    return undefined;
  }
}

export async function startScriptedCluster(size: number): Promise<ScriptedCluster> {
  const cluster: ScriptedCluster = {
    nodes: [],
    leader: '',
    close: async () => {
      await Promise.all(cluster.nodes.map((n) => n.close()));
    },
  };
  for (let i = 0; i < size; i++) cluster.nodes.push(await startNode(cluster, BigInt(i + 1)));
  cluster.leader = cluster.nodes[0]!.address;
  return cluster;
}

/** Rows messages for `count` integer rows, batched like the C server. */
export function integerRows(count: number): Response[] {
  const rows = Array.from({ length: count }, (_, i) => [{ type: ValueType.Integer, value: BigInt(i) }] as const);
  return encodeRowsBatches(['n'], rows, { batchBytes: 256 }).map((m) => decodeResponse(m));
}
