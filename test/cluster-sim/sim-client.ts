/**
 * A dqlite protocol client for simulated clients: the real codec (`src/protocol/`) over a
 * simulated byte stream, so every request crosses the real gateway as bytes. It does not use
 * `src/client/`, whose timeouts and backoff read the wall clock (`Date.now`, global
 * `setTimeout`); here every wait is on the virtual clock. Errors are the client's own classes
 * (`DqliteError`, `ConnectionError`), so the fault suite's history rules apply unchanged.
 */
import { ConnectionError, DqliteError, isNotLeaderCode } from '../../src/client/errors.ts';
import {
  FrameReader,
  decodeResponse,
  encodeRequest,
  encodeVersion,
  toTypedValue,
  type Request,
  type Response,
  type TypedValue,
  type Value,
} from '../../src/protocol/index.ts';
import type { ByteStream, DialStream } from '../../src/runtime.ts';
import type { Prng } from '../sim/prng.ts';
import type { FencedClock } from './scheduler.ts';

type ResponseOf<N extends Response['type']> = Extract<Response, { type: N }>;

export class SimConnection {
  private readonly frames = new FrameReader();
  private readonly inbox: Uint8Array[] = [];
  private waiter: { resolve: (m: Uint8Array) => void; reject: (e: Error) => void } | undefined;
  private closeError: ConnectionError | undefined;
  private busy = false;

  private constructor(
    readonly address: string,
    private readonly stream: ByteStream,
    private readonly clock: FencedClock,
    private readonly requestTimeoutMs: number,
  ) {
    stream.onData((chunk) => this.receive(chunk));
    stream.onClose((error) => this.fail(new ConnectionError(address, error ? `connection failed: ${error.message}` : 'connection closed by the server', true)));
  }

  static async open(dial: DialStream, address: string, clock: FencedClock, requestTimeoutMs: number): Promise<SimConnection> {
    let stream: ByteStream;
    try {
      stream = await dial(address, { timeoutMs: 2000 });
    } catch (error) {
      throw new ConnectionError(address, `cannot connect: ${(error as Error).message}`, false);
    }
    const connection = new SimConnection(address, stream, clock, requestTimeoutMs);
    if (!stream.write(encodeVersion())) throw new ConnectionError(address, 'connection closed during the handshake', false);
    return connection;
  }

  get closed(): boolean {
    return this.closeError !== undefined;
  }

  close(): void {
    this.fail(new ConnectionError(this.address, 'connection closed by the client', true));
    this.stream.close();
  }

  /** Sends `request` and waits for a response of type `expected` (every batch, for rows). */
  async call<N extends Response['type']>(request: Request, expected: N): Promise<ResponseOf<N>[]> {
    if (this.busy) throw new Error('one request at a time per connection');
    if (this.closeError) throw new ConnectionError(this.address, this.closeError.message, false);
    this.busy = true;
    try {
      if (!this.stream.write(encodeRequest(request))) throw new ConnectionError(this.address, 'connection closed before the request was sent', false);
      const responses: ResponseOf<N>[] = [];
      for (;;) {
        const response = decodeResponse(await this.next());
        if (response.type === 'failure') throw new DqliteError(response.code, response.message);
        if (response.type !== expected) {
          this.close();
          throw new ConnectionError(this.address, `expected ${expected}, got ${response.type}`, true);
        }
        responses.push(response as ResponseOf<N>);
        if (response.type !== 'rows' || !response.more) return responses;
      }
    } finally {
      this.busy = false;
    }
  }

  /** Sends a request and leaves without waiting: a client that goes away mid-request. */
  sendAndAbandon(request: Request): void {
    this.stream.write(encodeRequest(request));
  }

  private next(): Promise<Uint8Array> {
    const ready = this.inbox.shift();
    if (ready) return Promise.resolve(ready);
    if (this.closeError) return Promise.reject(this.closeError);
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.fail(new ConnectionError(this.address, `no response within ${this.requestTimeoutMs} ms`, true));
        this.stream.close();
      }, this.requestTimeoutMs);
      this.waiter = {
        resolve: (message) => {
          timer.cancel();
          resolve(message);
        },
        reject: (error) => {
          timer.cancel();
          reject(error);
        },
      };
    });
  }

  private receive(chunk: Uint8Array): void {
    let messages: Uint8Array[];
    try {
      messages = this.frames.feed(chunk);
    } catch (error) {
      this.fail(new ConnectionError(this.address, `bad data from the server: ${(error as Error).message}`, true));
      this.stream.close();
      return;
    }
    for (const message of messages) {
      const waiter = this.waiter;
      this.waiter = undefined;
      if (waiter) waiter.resolve(message);
      else this.inbox.push(message);
    }
  }

  private fail(error: ConnectionError): void {
    if (this.closeError) return;
    this.closeError = error;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(error);
  }
}

export interface SimSessionOptions {
  dial: DialStream;
  clock: FencedClock;
  rng: Prng;
  servers: () => readonly string[];
  database: string;
  requestTimeoutMs: number;
}

/**
 * One client's session with the cluster: finds the leader (a node that names itself), opens the
 * database there, and reconnects after any connection failure or not-leader answer.
 */
export class SimSession {
  private connection: SimConnection | undefined;
  private dbId = 0;
  private pinned = false;
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly options: SimSessionOptions) {}

  get connected(): boolean {
    return this.connection !== undefined && !this.connection.closed;
  }

  /** Requests of one session go out one after the other, as on one connection. */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(work);
    this.queue = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  exec(sql: string, params: readonly Value[] = []): Promise<{ rowsAffected: number }> {
    return this.exclusive(() => this.execNow(sql, params));
  }

  query(sql: string, params: readonly Value[] = []): Promise<TypedValue[][]> {
    return this.exclusive(() => this.queryNow(sql, params));
  }

  admin<N extends Response['type']>(request: Request, expected: N): Promise<ResponseOf<N>> {
    return this.exclusive(() => this.adminNow(request, expected));
  }

  private async execNow(sql: string, params: readonly Value[]): Promise<{ rowsAffected: number }> {
    const connection = await this.ready();
    try {
      const [result] = await connection.call({ type: 'exec_sql', db: this.dbId, sql, params: params.map(toTypedValue) }, 'result');
      return { rowsAffected: Number(result!.rowsAffected) };
    } catch (error) {
      this.forgetOn(error);
      throw error;
    }
  }

  private async queryNow(sql: string, params: readonly Value[]): Promise<TypedValue[][]> {
    const connection = await this.ready();
    try {
      const batches = await connection.call({ type: 'query_sql', db: this.dbId, sql, params: params.map(toTypedValue) }, 'rows');
      return batches.flatMap((batch) => batch.rows.map((row) => [...row]));
    } catch (error) {
      this.forgetOn(error);
      throw error;
    }
  }

  /** Any other request to the leader (membership, transfer). */
  private async adminNow<N extends Response['type']>(request: Request, expected: N): Promise<ResponseOf<N>> {
    const connection = await this.ready();
    try {
      return (await connection.call(request, expected))[0]!;
    } catch (error) {
      this.forgetOn(error);
      throw error;
    }
  }

  /** Sends a statement and closes the connection after `afterMs`, without reading the answer. */
  abandon(sql: string, afterMs: number): Promise<void> {
    return this.exclusive(async () => {
      const connection = await this.ready();
      connection.sendAndAbandon({ type: 'exec_sql', db: this.dbId, sql, params: [] });
      await this.options.clock.sleep(afterMs);
      this.close();
    });
  }

  close(): void {
    this.connection?.close();
    this.connection = undefined;
  }

  /** Inside a transaction: statements must go to this connection or fail, never to a new one. */
  pin(): void {
    this.pinned = true;
  }

  unpin(): void {
    this.pinned = false;
  }

  private forgetOn(error: unknown): void {
    if (error instanceof ConnectionError || (error instanceof DqliteError && isNotLeaderCode(error.code))) this.close();
  }

  private async ready(): Promise<SimConnection> {
    if (this.connection && !this.connection.closed) return this.connection;
    this.connection = undefined;
    if (this.pinned) throw new ConnectionError(this.options.database, 'the connection of this transaction is gone', false);
    const connection = await this.findLeader();
    try {
      const [db] = await connection.call({ type: 'open', name: this.options.database, flags: 0, vfs: '' }, 'db');
      this.dbId = db!.id;
    } catch (error) {
      connection.close();
      throw error;
    }
    this.connection = connection;
    return connection;
  }

  /** One round over the servers in a random order; throws when none names itself leader. */
  private async findLeader(): Promise<SimConnection> {
    const { dial, clock, rng, requestTimeoutMs } = this.options;
    const servers = [...this.options.servers()];
    for (let i = servers.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [servers[i], servers[j]] = [servers[j]!, servers[i]!];
    }
    let lastError = 'no servers';
    for (const address of servers) {
      let candidate = address;
      for (let hop = 0; hop < 2; hop++) {
        let connection: SimConnection | undefined;
        try {
          connection = await SimConnection.open(dial, candidate, clock, requestTimeoutMs);
          const [leader] = await connection.call({ type: 'leader' }, 'node');
          if (leader!.address === candidate) return connection;
          connection.close();
          if (leader!.address === '') {
            lastError = `${candidate} knows no leader`;
            break;
          }
          candidate = leader!.address;
        } catch (error) {
          connection?.close();
          lastError = (error as Error).message;
          break;
        }
      }
    }
    throw new ConnectionError(servers.join(','), `no leader found: ${lastError}`, false);
  }
}
