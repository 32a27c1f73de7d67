/**
 * The dqlite requests that change the cluster: add, assign, remove, transfer and weight. Each is
 * checked against the node's admin policy first, and an add also needs the new node to prove
 * the cluster key before any configuration change is proposed; a refusal changes nothing.
 */
import type { Request, Response } from '../protocol/index.ts';
import type { NodeId, Role } from '../raft/index.ts';
import type { ByteStream } from '../runtime.ts';
import { SQLITE_AUTH, type AdminPolicy, type AdminRequestType } from './admin-policy.ts';
import { NodeError, SQLITE_ERROR } from '../fsm/errors.ts';

/** What these requests need of a node. */
export interface AdministeredNode {
  readonly adminPolicy: AdminPolicy;
  addMember(id: NodeId, address: string): Promise<void>;
  assignRole(id: NodeId, role: Role): Promise<void>;
  removeMember(id: NodeId): Promise<void>;
  transferLeadership(id: NodeId): Promise<void>;
  setWeight(weight: bigint): void;
  requireLeader(): void;
  /** Resolves once node `id` proved it holds the cluster key (see `PeerTransport.proveMember`). */
  proveMember(id: NodeId, address: string): Promise<void>;
  members(): { id: NodeId; address: string }[];
  readonly metrics: { adminRefusal(type: string): void };
}

export type AdminRequest = Extract<Request, { type: AdminRequestType }>;

const ROLE_BY_CODE: Record<number, Role> = { 0: 'voter', 1: 'standby', 2: 'spare' };

export function isAdminRequest(request: Request): request is AdminRequest {
  return (
    request.type === 'add' || request.type === 'assign' || request.type === 'remove' || request.type === 'transfer' || request.type === 'weight'
  );
}

export async function administer(node: AdministeredNode, stream: ByteStream, request: AdminRequest): Promise<Response> {
  const refusal = node.adminPolicy.refusal(stream, request.type);
  if (refusal) {
    node.metrics.adminRefusal(request.type);
    throw refusal;
  }
  switch (request.type) {
    case 'add': {
      const id = nodeId(request.id);
      // Only the leader can add; asking first spares a non-leader a probe it would waste.
      node.requireLeader();
      if (!node.members().some((m) => m.id === id)) {
        try {
          await node.proveMember(id, request.address);
        } catch (error) {
          node.metrics.adminRefusal('add');
          throw new NodeError(
            SQLITE_AUTH,
            `not added: ${(error as Error).message}. A node joins only after proving the cluster key; start it with the cluster's --cluster-key`,
          );
        }
      }
      await node.addMember(id, request.address);
      break;
    }
    case 'assign': {
      const role = ROLE_BY_CODE[request.role];
      if (!role) throw new NodeError(SQLITE_ERROR, `unknown role code ${request.role} (0 voter, 1 standby, 2 spare)`);
      await node.assignRole(nodeId(request.id), role);
      break;
    }
    case 'remove':
      await node.removeMember(nodeId(request.id));
      break;
    case 'transfer':
      await node.transferLeadership(nodeId(request.id));
      break;
    case 'weight':
      node.setWeight(BigInt(request.weight));
      break;
  }
  return { type: 'empty' };
}

function nodeId(id: bigint): number {
  if (id < 1n || id > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new NodeError(SQLITE_ERROR, `node id ${id} is outside 1..2^53-1, which this cluster supports`);
  }
  return Number(id);
}
