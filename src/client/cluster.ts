import { ClusterFormat, Role, type FileData, roleName } from '../protocol/index.ts';
import { Connection } from './connection.ts';
import { ClientError } from './errors.ts';
import { Link, type LinkOptions } from './link.ts';

export type RoleName = 'voter' | 'stand-by' | 'spare';

export interface NodeRef {
  /** dqlite node ids are unsigned 64-bit numbers. */
  id: bigint;
  address: string;
}

export interface Member extends NodeRef {
  role: RoleName;
}

export interface NodeMetadata {
  failureDomain: bigint;
  weight: bigint;
}

export type ClusterOptions = LinkOptions;

const ROLE_CODES: Record<RoleName, number> = { voter: Role.Voter, 'stand-by': Role.StandBy, spare: Role.Spare };

function roleCode(role: RoleName): number {
  const code = ROLE_CODES[role];
  if (code === undefined) throw new ClientError('bad_argument', `unknown role "${String(role)}" (voter, stand-by or spare)`);
  return code;
}

export async function connectCluster(options: ClusterOptions): Promise<Cluster> {
  const cluster = new Cluster(options);
  await cluster.leader();
  return cluster;
}

/**
 * Membership and administration calls. Calls that change the cluster go to the leader; the
 * per-node calls (describe, weight, dump) open a direct connection to the node named.
 */
export class Cluster {
  private readonly link: Link<undefined>;
  private readonly options: ClusterOptions;

  constructor(options: ClusterOptions) {
    this.options = options;
    this.link = new Link<undefined>(options, async () => undefined);
  }

  /** The leader as the server we are connected to sees it, or undefined when none is known. */
  leader(): Promise<NodeRef | undefined> {
    return this.link.call('leader', false, async ({ connection }) => {
      const node = await connection.call({ type: 'leader' }, 'node');
      return node.address === '' ? undefined : { id: node.id, address: node.address };
    });
  }

  members(): Promise<Member[]> {
    return this.link.call('cluster', false, async ({ connection }) => {
      const response = await connection.call({ type: 'cluster', format: ClusterFormat.V1 }, 'nodes');
      return response.nodes.map((node) => ({ id: node.id, address: node.address, role: asRoleName(node.role) }));
    });
  }

  /** Adds a node (it joins as spare), then assigns `role` when it is not spare, like go-dqlite. */
  async add(node: NodeRef, role: RoleName = 'spare'): Promise<void> {
    await this.link.call(`add ${node.address}`, true, async ({ connection }) => {
      await connection.call({ type: 'add', id: node.id, address: node.address }, 'empty');
    });
    if (role !== 'spare') await this.assign(node.id, role);
  }

  assign(id: bigint, role: RoleName): Promise<void> {
    const code = roleCode(role);
    return this.link.call(`assign ${id}`, true, async ({ connection }) => {
      await connection.call({ type: 'assign', id, role: code }, 'empty');
    });
  }

  remove(id: bigint): Promise<void> {
    return this.link.call(`remove ${id}`, true, async ({ connection }) => {
      await connection.call({ type: 'remove', id }, 'empty');
    });
  }

  /** Asks the leader to hand leadership to node `id`. */
  transfer(id: bigint): Promise<void> {
    return this.link.call(`transfer ${id}`, true, async ({ connection }) => {
      await connection.call({ type: 'transfer', id }, 'empty');
    });
  }

  describe(address: string): Promise<NodeMetadata> {
    return this.direct(address, async (connection) => {
      const response = await connection.call({ type: 'describe', format: 0 }, 'metadata');
      return { failureDomain: response.failureDomain, weight: response.weight };
    });
  }

  weight(address: string, weight: number): Promise<void> {
    return this.direct(address, async (connection) => {
      await connection.call({ type: 'weight', weight }, 'empty');
    });
  }

  /** The database file and its WAL (`name`, `name-wal`) as held by the node at `address`. */
  dump(database: string, address?: string): Promise<FileData[]> {
    if (address === undefined) {
      return this.link.call(`dump ${database}`, false, async ({ connection }) => {
        return [...(await connection.call({ type: 'dump', name: database }, 'files')).files];
      });
    }
    return this.direct(address, async (connection) => [...(await connection.call({ type: 'dump', name: database }, 'files')).files]);
  }

  private async direct<T>(address: string, work: (connection: Connection) => Promise<T>): Promise<T> {
    const connection = await Connection.open(this.options.dial, address, this.link.connectionOptions);
    try {
      return await work(connection);
    } finally {
      connection.close();
    }
  }

  close(): Promise<void> {
    this.link.close();
    return Promise.resolve();
  }
}

function asRoleName(role: number): RoleName {
  const name = roleName(role);
  return name === 'unknown' ? 'spare' : name;
}
