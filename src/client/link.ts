import type { DialStream } from '../runtime.ts';
import { CONNECTION_DEFAULTS, Connection, type ConnectionOptions } from './connection.ts';
import { type DiscoveryOptions, backoffMs, connectToLeader, sleep } from './discovery.ts';
import { ClientError, ConnectionError, DqliteError, IndeterminateError, NoLeaderError } from './errors.ts';
import { ClusterFormat, ErrorCode } from '../protocol/index.ts';

/** Options shared by `connect` and `connectCluster`. */
export interface LinkOptions {
  /** Addresses ("host:port") of some cluster members. */
  servers: readonly string[];
  dial: DialStream;
  /**
   * Find the leader and follow it (default). When false, talk to `servers[0]` only, with no
   * Leader/Client requests and no retries: what tests of a single server need.
   */
  leaderDiscovery?: boolean;
  /** Bound on finding a leader plus retrying one call. Default 15000. */
  timeoutMs?: number;
  dialTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Bound on one message body. Default 64 MiB. */
  messageBytesMax?: number;
  /** Bound on rows one query may return. Default 1,000,000. */
  resultRowsMax?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

export function resolveDiscoveryOptions(options: LinkOptions): DiscoveryOptions {
  return {
    dialTimeoutMs: options.dialTimeoutMs ?? CONNECTION_DEFAULTS.dialTimeoutMs,
    requestTimeoutMs: options.requestTimeoutMs ?? CONNECTION_DEFAULTS.requestTimeoutMs,
    messageBytesMax: options.messageBytesMax ?? CONNECTION_DEFAULTS.messageBytesMax,
    resultRowsMax: options.resultRowsMax ?? CONNECTION_DEFAULTS.resultRowsMax,
    timeoutMs: options.timeoutMs ?? 15_000,
    backoffBaseMs: options.backoffBaseMs ?? 50,
    backoffMaxMs: options.backoffMaxMs ?? 1_000,
  };
}

/** How a failed call relates to the cluster state. */
type Verdict = 'retry' | 'indeterminate' | 'fatal';

function judge(error: unknown, mayHaveApplied: boolean): Verdict {
  if (error instanceof NoLeaderError) return 'fatal';
  if (error instanceof ConnectionError) {
    if (!error.sent) return 'retry';
    return mayHaveApplied ? 'indeterminate' : 'retry';
  }
  if (error instanceof DqliteError) {
    // NOTFOUND: the server lost our database or statement, as after a leadership change.
    if (error.isNotLeader || error.code === ErrorCode.SQLITE_NOTFOUND) return 'retry';
    if (error.isLeadershipLost) return mayHaveApplied ? 'indeterminate' : 'retry';
  }
  return 'fatal';
}

/** A connected session: the connection and whatever per-connection state the owner set up. */
export interface Session<S> {
  readonly connection: Connection;
  readonly state: S;
  /** Increases with every new connection, so prepared statements know when to re-prepare. */
  readonly generation: number;
}

/**
 * Keeps one connection to the leader (or to the one given server), serializes calls on it, and
 * retries calls that certainly did not run, with backoff, within `timeoutMs`.
 */
export class Link<S> {
  private readonly options: LinkOptions;
  private readonly resolved: DiscoveryOptions;
  private readonly setup: (connection: Connection) => Promise<S>;
  private session: Session<S> | undefined;
  private generation = 0;
  private lock: Promise<void> = Promise.resolve();
  private closed = false;
  /** The last leader we reached, tried first next time. */
  private lastLeader: string | undefined;
  /**
   * Members learned from the leader (Cluster request) after each discovery, so that losing every
   * server named in the options does not strand the client. Bounded by `learnedServersMax`.
   */
  private learnedServers: string[] = [];
  private static readonly learnedServersMax = 64;

  constructor(options: LinkOptions, setup: (connection: Connection) => Promise<S>) {
    if (options.servers.length === 0) throw new ClientError('bad_argument', 'connect needs at least one server address');
    this.options = options;
    this.resolved = resolveDiscoveryOptions(options);
    this.setup = setup;
  }

  get connectionOptions(): ConnectionOptions {
    return this.resolved;
  }

  /** Runs `work` with exclusive use of the link. */
  async exclusive<T>(work: () => Promise<T>): Promise<T> {
    const release = await this.acquire();
    try {
      return await work();
    } finally {
      release();
    }
  }

  /**
   * Waits for exclusive use of the link and returns the function that gives it up, for work
   * that outlives one call (an open transaction, a streamed query). Releasing twice is harmless.
   */
  async acquire(): Promise<() => void> {
    const previous = this.lock;
    let release!: () => void;
    this.lock = new Promise<void>((resolve) => (release = resolve));
    await previous;
    return release;
  }

  /** The open session, or a new one (leader discovery bounded by `deadlineMs`). */
  async currentSession(deadlineMs: number = Date.now() + this.resolved.timeoutMs): Promise<Session<S>> {
    if (this.closed) throw new ClientError('closed', 'the client is closed');
    if (this.session && !this.session.connection.closed) return this.session;
    this.session = undefined;
    const connection = await this.dialSession(deadlineMs);
    try {
      const state = await this.setup(connection);
      if (this.closed) throw new ClientError('closed', 'the client was closed while connecting');
      this.session = { connection, state, generation: ++this.generation };
      return this.session;
    } catch (error) {
      connection.close();
      throw error;
    }
  }

  private dialSession(deadlineMs: number): Promise<Connection> {
    if (this.options.leaderDiscovery === false) {
      return Connection.open(this.options.dial, this.options.servers[0]!, this.resolved);
    }
    const candidates = [...(this.lastLeader ? [this.lastLeader] : []), ...this.options.servers, ...this.learnedServers];
    const servers = [...new Set(candidates)];
    const timeoutMs = Math.max(1, deadlineMs - Date.now());
    return connectToLeader(this.options.dial, servers, { ...this.resolved, timeoutMs }).then(async (connection) => {
      this.lastLeader = connection.address;
      await this.learnMembers(connection);
      return connection;
    });
  }

  private async learnMembers(connection: Connection): Promise<void> {
    try {
      const { nodes } = await connection.call({ type: 'cluster', format: ClusterFormat.V1 }, 'nodes');
      this.learnedServers = nodes
        .map((node) => node.address)
        .filter((address) => address !== '' && !this.options.servers.includes(address))
        .slice(0, Link.learnedServersMax);
    } catch (error) {
      // A server that cannot list members still serves queries; only a broken connection matters.
      if (error instanceof ConnectionError) throw error;
    }
  }

  /** Drops the current connection (after an error that leaves it unusable or on a non-leader). */
  dropSession(): void {
    this.session?.connection.close();
    this.session = undefined;
  }

  /**
   * Runs `op` on a session, retrying when the call certainly did not run (not leader, connection
   * lost before sending, no leader yet). When it may have run, `mayHaveApplied` decides: an
   * IndeterminateError, or a retry for reads.
   */
  call<T>(what: string, mayHaveApplied: boolean, op: (session: Session<S>) => Promise<T>): Promise<T> {
    return this.exclusive(() => this.callUnlocked(what, mayHaveApplied, op));
  }

  async callUnlocked<T>(what: string, mayHaveApplied: boolean, op: (session: Session<S>) => Promise<T>): Promise<T> {
    const deadlineMs = Date.now() + this.resolved.timeoutMs;
    const retries = this.options.leaderDiscovery !== false;
    for (let attempt = 0; ; attempt++) {
      let session: Session<S>;
      try {
        session = await this.currentSession(deadlineMs);
      } catch (error) {
        if (!retries || !(error instanceof ConnectionError || error instanceof DqliteError) || judge(error, false) !== 'retry') throw error;
        if (!(await this.pause(attempt, deadlineMs))) throw error;
        continue;
      }
      try {
        return await op(session);
      } catch (error) {
        const verdict = judge(error, mayHaveApplied);
        if (verdict === 'fatal') throw error;
        this.dropSession();
        if (verdict === 'indeterminate') throw new IndeterminateError(what, { cause: error });
        if (!retries || !(await this.pause(attempt, deadlineMs))) throw error;
      }
    }
  }

  private async pause(attempt: number, deadlineMs: number): Promise<boolean> {
    const pauseMs = backoffMs(attempt, this.resolved.backoffBaseMs, this.resolved.backoffMaxMs);
    if (Date.now() + pauseMs >= deadlineMs || this.closed) return false;
    await sleep(pauseMs);
    return true;
  }

  close(): void {
    this.closed = true;
    this.dropSession();
  }
}
