/**
 * A node inside the caller's own program: `database(name)` is the client's `Database`, served by
 * the local node over an in-process stream (its real gateway, no socket), following the
 * leader like any client: a write on a follower goes to the leader's address through the
 * host's dialer. Fatal errors are an event and a rejected `closed`, never a process exit.
 */
import { Database, type ConnectOptions } from '../client/database.ts';
import type { DialStream } from '../runtime.ts';
import { inProcessStreamPair } from './in-process-stream.ts';
import type { NodeStatus } from './node-options.ts';
import type { RunningMember } from './startup.ts';

/** Dispatched once on an `EmbeddedNode` that stopped itself to protect its data. */
export class NodeFatalEvent extends Event {
  constructor(readonly error: Error) {
    super('fatal');
  }
}

export type DatabaseOptions = Partial<Omit<ConnectOptions, 'database' | 'servers' | 'dial'>>;

export class EmbeddedNode extends EventTarget {
  /** Resolves once closed; rejects with the original error when the node stopped itself. */
  readonly closed: Promise<void>;
  private readonly databases = new Set<Database>();
  private closing: Promise<void> | undefined;
  private stoppedBy: Error | undefined;

  /**
   * `joinedThrough`: members to ask for the leader when this node knows none (a spare hears no
   * heartbeats); this node is always asked first.
   */
  constructor(
    private readonly member: RunningMember,
    private readonly remoteDial: DialStream,
    private readonly joinedThrough: readonly string[] = [],
  ) {
    super();
    this.closed = member.closed.catch((error: unknown) => {
      this.stoppedBy = error as Error;
      this.dispatchEvent(new NodeFatalEvent(error as Error));
      throw error;
    });
    this.closed.catch(() => undefined);
  }

  get id(): number {
    return this.member.node.status().id;
  }

  /** The address peers and clients use to reach this node. */
  get address(): string {
    return this.member.advertised;
  }

  /** The key of the cluster this node belongs to (generated for a new cluster). */
  get clusterKey(): string {
    return this.member.clusterKey;
  }

  status(): NodeStatus {
    return this.member.node.status();
  }

  /** The database `name` (created on first use), with the same interface `connect()` returns. */
  async database(name: string, options: DatabaseOptions = {}): Promise<Database> {
    if (this.stoppedBy) throw new Error(`node ${this.address} stopped itself (${this.stoppedBy.message}): cannot open ${name}`, { cause: this.stoppedBy });
    if (this.closing) throw new Error(`node ${this.address} is closed: start a new one to open ${name}`);
    const database = new Database({ ...options, database: name, servers: [this.member.advertised, ...this.joinedThrough.filter((a) => a !== this.member.advertised)], dial: this.dial });
    await database.ping();
    this.databases.add(database);
    return database;
  }

  /** Closes the databases opened here and stops the node (handing leadership over by default). */
  close(options: { handOver?: boolean } = {}): Promise<void> {
    this.closing ??= (async () => {
      const open = [...this.databases];
      this.databases.clear();
      await Promise.all(open.map((database) => database.close().catch(() => undefined)));
      await this.member.stop({ handOver: options.handOver ?? true });
    })();
    return this.closing;
  }

  private readonly dial: DialStream = async (address, dialOptions) => {
    if (address !== this.member.advertised) return this.remoteDial(address, dialOptions);
    // The embedding program is this node's owner: its streams hold the cluster's credentials.
    const [client, server] = inProcessStreamPair({ label: this.member.advertised, authenticated: true });
    this.member.node.acceptClient(server);
    return client;
  };
}
