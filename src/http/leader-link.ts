/**
 * dqlite client connections from the HTTP API to the leader: in process when this node leads,
 * over the host's dialStream to the leader otherwise (leader discovery as go-dqlite does it).
 * Idle connections are kept for the next request; one that failed or reached a non-leader is
 * dropped, so the next request finds the leader again.
 */
import { CONNECTION_DEFAULTS, Connection } from '../client/connection.ts';
import { connectToLeader, sleep } from '../client/discovery.ts';
import { ConnectionError, DqliteError, NoLeaderError } from '../client/errors.ts';
import type { ByteStream, DialStream } from '../runtime.ts';
import { assert } from '../server/errors.ts';
import type { HttpApiHost } from './api-host.ts';
import { HttpApiError } from './request.ts';

/** Address the discovery uses for this node when it has none of its own. */
const IN_PROCESS = 'in-process';

export interface LeaderLinkOptions {
  /** Bound on finding a leader (and on retrying a statement the old leader refused). */
  leaderTimeoutMs: number;
  idleConnectionsMax: number;
  /** Bound on connections to the leader at once; more concurrent requests wait for one. */
  connectionsMax: number;
  /** Bound on one protocol message; a backup's dump of a database is one message. */
  messageBytesMax: number;
  requestTimeoutMs: number;
  /**
   * `leader` (the default) finds the leader; `this-node` talks to the node the API runs on,
   * leader or not, for reads a replica answers locally (`level=none`, `linearizable`).
   */
  target: 'leader' | 'this-node';
}

export const LEADER_LINK_DEFAULTS: LeaderLinkOptions = {
  leaderTimeoutMs: 10_000,
  idleConnectionsMax: 8,
  connectionsMax: 64,
  messageBytesMax: 1.5 * 2 ** 30,
  requestTimeoutMs: 120_000,
  target: 'leader',
};

/** A connection to the leader with the databases opened on it. */
export class LeaderSession {
  private readonly databaseIds = new Map<string, number>();
  /** Counted against `connectionsMax` until the link discards it. */
  discarded = false;
  constructor(readonly connection: Connection) {}

  async database(name: string): Promise<number> {
    let id = this.databaseIds.get(name);
    if (id === undefined) {
      id = (await this.connection.call({ type: 'open', name, flags: 0, vfs: 'volatile' }, 'db')).id;
      this.databaseIds.set(name, id);
    }
    return id;
  }
}

export class LeaderLink {
  private readonly idle: LeaderSession[] = [];
  private readonly options: LeaderLinkOptions;
  private sessionsOpen = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(
    private readonly host: HttpApiHost,
    options: Partial<LeaderLinkOptions> = {},
  ) {
    this.options = { ...LEADER_LINK_DEFAULTS, ...options };
  }

  /**
   * Runs `work` on a session with the leader. When it fails before anything could have run
   * (not the leader any more, or the connection broke before the request went out) it runs
   * again on a new session, until `leaderTimeoutMs`; `retry: false` turns that off. With
   * `keep`, a session that succeeded stays the caller's (a transaction): `release` it after.
   */
  async run<T>(work: (session: LeaderSession) => Promise<T>, options: { retry?: boolean; keep?: boolean } = {}): Promise<T> {
    const retry = options.retry ?? true;
    const deadlineMs = Date.now() + this.options.leaderTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      const session = await this.acquire(deadlineMs);
      try {
        const result = await work(session);
        if (!options.keep) this.release(session);
        return result;
      } catch (error) {
        if (!isSessionUsable(error)) this.discard(session);
        else this.release(session);
        const pauseMs = Math.min(1000, 50 * 2 ** attempt);
        if (!retry || !ranNothing(error) || Date.now() + pauseMs >= deadlineMs) throw error;
        await sleep(pauseMs);
      }
    }
  }

  /** A session the caller keeps (a transaction); give it back with `release` or close it. */
  async acquire(deadlineMs = Date.now() + this.options.leaderTimeoutMs): Promise<LeaderSession> {
    for (;;) {
      while (this.idle.length > 0) {
        const session = this.idle.pop()!;
        if (!session.connection.closed) return session;
        this.discard(session);
      }
      if (this.sessionsOpen < this.options.connectionsMax) break;
      const waitMs = deadlineMs - Date.now();
      if (waitMs <= 0 || !(await this.waitForSession(waitMs))) {
        throw new HttpApiError(503, `all ${this.options.connectionsMax} connections to the leader are busy; retry shortly`);
      }
    }
    this.sessionsOpen++;
    try {
      return new LeaderSession(await this.connect(deadlineMs));
    } catch (error) {
      this.sessionsOpen--;
      this.wakeOne();
      throw error;
    }
  }

  private async connect(deadlineMs: number): Promise<Connection> {
    const cluster = this.host.cluster();
    const self = cluster.address || IN_PROCESS;
    const others = cluster.members.map((m) => m.address).filter((a) => a !== '' && a !== self);
    const options = {
      ...CONNECTION_DEFAULTS,
      messageBytesMax: this.options.messageBytesMax,
      requestTimeoutMs: this.options.requestTimeoutMs,
      timeoutMs: Math.max(1, deadlineMs - Date.now()),
      backoffBaseMs: 50,
      backoffMaxMs: 500,
    };
    if (this.options.target === 'this-node') {
      const connection = await Connection.open(this.dial(cluster.address), self, options);
      // The Leader answer announces the node's features (the read extension); no leader needed.
      await connection.call({ type: 'leader' }, 'node');
      return connection;
    }
    try {
      return await connectToLeader(this.dial(cluster.address), [self, ...others], options);
    } catch (error) {
      if (error instanceof NoLeaderError) throw new HttpApiError(503, `no leader: ${error.message}; retry when the cluster has elected one`);
      throw error;
    }
  }

  /**
   * Ends whatever transaction the session may have open, then keeps it for reuse; closes it if
   * even ROLLBACK fails. A node rolls back a departed client's transaction, but ending it here
   * does not depend on the disconnect being noticed.
   */
  async releaseAfterRollback(session: LeaderSession, database: string): Promise<void> {
    try {
      await session.connection.call({ type: 'exec_sql', db: await session.database(database), sql: 'ROLLBACK', params: [] }, 'result');
    } catch (error) {
      const noTransaction = error instanceof DqliteError && /no transaction is active/.test(error.message);
      if (!noTransaction) {
        this.discard(session);
        return;
      }
    }
    this.release(session);
  }

  /** Whether the session talks to this very node (in process), i.e. this node leads. */
  isLocal(session: LeaderSession): boolean {
    const address = session.connection.address;
    return address === IN_PROCESS || address === this.host.cluster().address;
  }

  release(session: LeaderSession): void {
    if (session.connection.closed || this.idle.length >= this.options.idleConnectionsMax) {
      this.discard(session);
      return;
    }
    this.idle.push(session);
    this.wakeOne();
  }

  /** Closes a session for good (it failed, or is not needed): its slot goes to a waiter. */
  discard(session: LeaderSession): void {
    if (session.discarded) return;
    session.discarded = true;
    session.connection.close();
    this.sessionsOpen--;
    assert(this.sessionsOpen >= 0, `${this.sessionsOpen} sessions open after a discard`);
    this.wakeOne();
  }

  close(): void {
    for (const session of this.idle.splice(0)) this.discard(session);
  }

  private waitForSession(waitMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const index = this.waiters.indexOf(wake);
        if (index >= 0) this.waiters.splice(index, 1);
        resolve(false);
      }, waitMs);
      this.waiters.push(wake);
    });
  }

  private wakeOne(): void {
    this.waiters.shift()?.();
  }

  private dial(selfAddress: string): DialStream {
    return (address, options) => {
      if (address === IN_PROCESS || address === selfAddress) return Promise.resolve<ByteStream>(this.host.openClientStream());
      if (!this.host.dialStream) {
        return Promise.reject(new Error(`this node cannot dial the leader at ${address}: send the request to the leader`));
      }
      return this.host.dialStream(address, options);
    };
  }
}

/** The request certainly did not run: another leader may take it. */
export function ranNothing(error: unknown): boolean {
  if (error instanceof ConnectionError) return !error.sent;
  if (error instanceof DqliteError) return error.isNotLeader;
  return false;
}

/** After an SQL error the connection is fine; after a transport error or a leader change it is not. */
function isSessionUsable(error: unknown): boolean {
  return error instanceof DqliteError && !error.isNotLeader && !error.isLeadershipLost;
}

/** An error's text as rqlite shows it per statement: SQLite's message, without our code suffix. */
export function statementErrorText(error: unknown): string {
  if (error instanceof DqliteError) return error.message.replace(/ \(code \d+\)$/, '');
  if (error instanceof ConnectionError) return `${error.message}; the statement may or may not have run`;
  return error instanceof Error ? error.message : String(error);
}
