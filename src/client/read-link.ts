/**
 * The connection a `readFrom: 'any'` Database reads on: the first of its servers that answers
 * (list the nearest first), leader or not. It opens without a leader, so a replica cut off from
 * the rest still answers reads at levels it can serve alone (stale, session). Writes never use it.
 */
import { Connection } from './connection.ts';
import { backoffMs, sleep } from './discovery.ts';
import { ClientError, ConnectionError, DqliteError, NoLeaderError } from './errors.ts';
import { resolveDiscoveryOptions, type LinkOptions } from './link.ts';
import type { DiscoveryOptions } from './discovery.ts';

export interface ReadSession {
  readonly connection: Connection;
  readonly db: number;
}

export class ReadLink {
  private readonly resolved: DiscoveryOptions;
  private session: ReadSession | undefined;
  /** Index into `servers` of the server tried first. */
  private preferred = 0;
  private closed = false;

  constructor(
    private readonly options: LinkOptions,
    private readonly open: (connection: Connection) => Promise<number>,
  ) {
    if (options.servers.length === 0) throw new ClientError('bad_argument', 'connect needs at least one server address');
    this.resolved = resolveDiscoveryOptions(options);
  }

  /** The address reads go to now, once connected. */
  get address(): string | undefined {
    return this.session?.connection.address;
  }

  async ping(): Promise<void> {
    await this.connect(Date.now() + this.resolved.timeoutMs);
  }

  /**
   * Runs a read, moving to the next server when the connection fails, and retrying a not-leader
   * answer (a linearizable read while no leader is known) until `timeoutMs`: then NoLeaderError.
   */
  async read<T>(what: string, op: (session: ReadSession) => Promise<T>): Promise<T> {
    const deadlineMs = Date.now() + this.resolved.timeoutMs;
    for (let attempt = 0; ; attempt++) {
      const session = await this.connect(deadlineMs);
      try {
        return await op(session);
      } catch (error) {
        if (error instanceof ConnectionError) {
          this.drop(true);
        } else if (!(error instanceof DqliteError && error.isNotLeader)) {
          throw error;
        }
        const pauseMs = backoffMs(attempt, this.resolved.backoffBaseMs, this.resolved.backoffMaxMs);
        if (this.closed || Date.now() + pauseMs >= deadlineMs) {
          if (error instanceof DqliteError) {
            throw new NoLeaderError(`no leader confirmed "${what}" within ${this.resolved.timeoutMs} ms: ${error.message}`, { cause: error });
          }
          throw error;
        }
        await sleep(pauseMs);
      }
    }
  }

  close(): void {
    this.closed = true;
    this.drop(false);
  }

  private drop(moveOn: boolean): void {
    this.session?.connection.close();
    this.session = undefined;
    if (moveOn) this.preferred = (this.preferred + 1) % this.options.servers.length;
  }

  private async connect(deadlineMs: number): Promise<ReadSession> {
    if (this.closed) throw new ClientError('closed', 'the client is closed');
    if (this.session && !this.session.connection.closed) return this.session;
    this.session = undefined;
    const servers = this.options.servers;
    const problems: string[] = [];
    for (let round = 0; ; round++) {
      for (let i = 0; i < servers.length; i++) {
        const index = (this.preferred + i) % servers.length;
        const address = servers[index]!;
        let connection: Connection | undefined;
        try {
          connection = await Connection.open(this.options.dial, address, this.resolved);
          // The Leader answer announces the server's features; a leader need not be known.
          await connection.call({ type: 'leader' }, 'node');
          const db = await this.open(connection);
          if (this.closed) throw new ClientError('closed', 'the client was closed while connecting');
          this.preferred = index;
          this.session = { connection, db };
          return this.session;
        } catch (error) {
          connection?.close();
          if (error instanceof ClientError) throw error;
          problems.push(error instanceof Error ? error.message : String(error));
        }
      }
      const pauseMs = backoffMs(round, this.resolved.backoffBaseMs, this.resolved.backoffMaxMs);
      if (Date.now() + pauseMs >= deadlineMs) {
        throw new ConnectionError(servers.join(', '), `no server answered within ${this.resolved.timeoutMs} ms (${problems.slice(-servers.length).join('; ')})`, false);
      }
      await sleep(pauseMs);
    }
  }
}
