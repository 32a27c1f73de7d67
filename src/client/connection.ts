import {
  EXTENSION_LIVE_QUERIES,
  EXTENSION_READS,
  FrameReader,
  HEADER_BYTES,
  MESSAGE_BYTES_MAX_DEFAULT,
  ProtocolError,
  type Request,
  type Response,
  type TypedValue,
  decodeResponse,
  encodeRequest,
  encodeVersion,
  readHeader,
} from '../protocol/index.ts';
import type { ByteStream, DialStream } from '../runtime.ts';
import { ClientError, ConnectionError, DqliteError } from './errors.ts';

export interface ConnectionOptions {
  dialTimeoutMs: number;
  /** A request with no response after this long closes the connection. */
  requestTimeoutMs: number;
  messageBytesMax: number;
  /** Bound on the rows one query may return (across all batches). */
  resultRowsMax: number;
}

export const CONNECTION_DEFAULTS: ConnectionOptions = {
  dialTimeoutMs: 5_000,
  requestTimeoutMs: 30_000,
  messageBytesMax: MESSAGE_BYTES_MAX_DEFAULT,
  resultRowsMax: 1_000_000,
};

export interface RowsResult {
  columns: string[];
  rows: TypedValue[][];
}

/** One Rows batch of a streamed query. */
export interface RowsBatch extends RowsResult {
  /** Whether more batches follow. */
  more: boolean;
}

/** The batches of one query, read one at a time (see `Connection.openRows`). */
export interface RowsCursor {
  /** The next batch, or undefined after the last one. */
  next(): Promise<RowsBatch | undefined>;
  /** Stops the query early (Interrupt) and frees the connection; harmless after the last batch. */
  close(): Promise<void>;
}

type ResponseName = Response['type'];
type ResponseOf<N extends ResponseName> = Extract<Response, { type: N }>;

interface Waiter {
  resolve(message: Uint8Array): void;
  reject(error: Error): void;
}

/**
 * One dqlite protocol connection: the version handshake, then one request at a time (callers
 * are queued), each answered by one response (several for a batched Rows result).
 */
export class Connection {
  readonly address: string;
  private readonly stream: ByteStream;
  private readonly options: ConnectionOptions;
  private readonly frames: FrameReader;
  /**
   * Messages that arrived with nobody waiting: a server streams Rows batches without waiting
   * for the client, so several can be ahead. Bounded in bytes by `inboxBytesMax`.
   */
  private readonly inbox: Uint8Array[] = [];
  private inboxBytes = 0;
  private readonly inboxBytesMax: number;
  private waiter: Waiter | undefined;
  /** A streamed query is being read: any other request would wait for it to end, forever if
   * the reader waits for that request, so requests meanwhile fail at once. */
  private cursorOpen = false;
  private closeError: ConnectionError | undefined;
  private queue: Promise<void> = Promise.resolve();
  /** Feature bits the server announced in its Leader answer's header (0 for real dqlite). */
  private features = 0;

  private constructor(address: string, stream: ByteStream, options: ConnectionOptions) {
    this.address = address;
    this.stream = stream;
    this.options = options;
    this.frames = new FrameReader({ messageBytesMax: options.messageBytesMax });
    this.inboxBytesMax = 2 * (options.messageBytesMax + HEADER_BYTES);
    stream.onData((chunk) => this.receive(chunk));
    stream.onClose((error) => this.fail(new ConnectionError(address, error ? `connection failed: ${error.message}` : 'connection closed by the server', true, { cause: error })));
  }

  static async open(dial: DialStream, address: string, options: ConnectionOptions): Promise<Connection> {
    let stream: ByteStream;
    try {
      stream = await dial(address, { timeoutMs: options.dialTimeoutMs });
    } catch (error) {
      throw new ConnectionError(address, `cannot connect: ${error instanceof Error ? error.message : String(error)}`, false, { cause: error });
    }
    const connection = new Connection(address, stream, options);
    if (!stream.write(encodeVersion())) {
      throw new ConnectionError(address, 'connection closed during the handshake', false);
    }
    return connection;
  }

  get closed(): boolean {
    return this.closeError !== undefined;
  }

  /** The server announced dqlite-wasm's read extension (ReadSql, ExecSqlBookmarked) in a Leader answer. */
  get speaksReadExtension(): boolean {
    return (this.features & EXTENSION_READS) !== 0;
  }

  /** The server announced dqlite-wasm's live queries (LIVE_SUBSCRIBE, src/protocol/live-requests.ts). */
  get speaksLiveQueries(): boolean {
    return (this.features & EXTENSION_LIVE_QUERIES) !== 0;
  }

  /**
   * Sends a live subscription and gives the connection over to its pushed results for good:
   * `next()` reads one result (a Bookmark, then Rows); a Failure ends it as a DqliteError. The
   * first result must come within requestTimeoutMs; later ones may take any time.
   */
  async openLive(request: Request): Promise<{ next(): Promise<RowsResult & { bookmark: bigint }> }> {
    if (this.cursorOpen) throw this.cursorBusyError();
    await this.acquireQueue();
    // Never released: the connection answers nothing else from now on.
    this.cursorOpen = true;
    await this.send(request);
    let first = true;
    return {
      next: async () => {
        const timeoutMs = first ? this.options.requestTimeoutMs : undefined;
        first = false;
        const bookmark = this.expectType(await this.receiveResponse(timeoutMs), 'bookmark').index;
        return { bookmark, ...(await this.collectRows(await this.receiveResponse())) };
      },
    };
  }

  close(): void {
    this.fail(new ConnectionError(this.address, 'connection closed by the client', true));
    this.stream.close();
  }

  /** Sends `request` and expects a response of type `expected`; a Failure becomes a DqliteError. */
  call<N extends ResponseName>(request: Request, expected: N): Promise<ResponseOf<N>> {
    if (this.cursorOpen) return Promise.reject(this.cursorBusyError());
    return this.exclusive(async () => {
      await this.send(request);
      return this.expectType(await this.receiveResponse(), expected);
    });
  }

  /** Sends a query and collects every Rows batch. */
  callRows(request: Request): Promise<RowsResult> {
    if (this.cursorOpen) return Promise.reject(this.cursorBusyError());
    return this.exclusive(async () => {
      await this.send(request);
      return this.collectRows(await this.receiveResponse());
    });
  }

  /**
   * Sends a query and returns a cursor over its Rows batches, for results too large to hold at
   * once. The connection serves no other request until the cursor is exhausted or closed.
   */
  async openRows(request: Request): Promise<RowsCursor> {
    if (this.cursorOpen) throw this.cursorBusyError();
    const queued = await this.acquireQueue();
    this.cursorOpen = true;
    const release = (): void => {
      this.cursorOpen = false;
      queued();
    };
    try {
      await this.send(request);
    } catch (error) {
      release();
      throw error;
    }
    let done = false;
    const finish = (): void => {
      done = true;
      release();
    };
    return {
      next: async () => {
        if (done) return undefined;
        try {
          const batch = this.expectType(await this.receiveResponse(), 'rows');
          if (!batch.more) finish();
          return { columns: [...batch.columns], rows: batch.rows.map((row) => [...row]), more: batch.more };
        } catch (error) {
          if (!done) finish();
          throw error;
        }
      },
      close: async () => {
        if (done) return;
        try {
          if (!this.closed) await this.interrupt();
        } finally {
          finish();
        }
      },
    };
  }

  /** An extension request: a Bookmark answer, then the response of type `expected`. */
  callBookmarked<N extends ResponseName>(request: Request, expected: N): Promise<{ bookmark: bigint; response: ResponseOf<N> }> {
    if (this.cursorOpen) return Promise.reject(this.cursorBusyError());
    return this.exclusive(async () => {
      await this.send(request);
      const bookmark = this.expectType(await this.receiveResponse(), 'bookmark').index;
      return { bookmark, response: this.expectType(await this.receiveResponse(), expected) };
    });
  }

  /** An extension read: a Bookmark answer, then every Rows batch. */
  callBookmarkedRows(request: Request): Promise<RowsResult & { bookmark: bigint }> {
    if (this.cursorOpen) return Promise.reject(this.cursorBusyError());
    return this.exclusive(async () => {
      await this.send(request);
      const bookmark = this.expectType(await this.receiveResponse(), 'bookmark').index;
      return { bookmark, ...(await this.collectRows(await this.receiveResponse())) };
    });
  }

  private async collectRows(first: Response): Promise<RowsResult> {
    const rows: TypedValue[][] = [];
    let columns: string[] = [];
    let response = first;
    for (;;) {
      const batch = this.expectType(response, 'rows');
      columns = [...batch.columns];
      for (const row of batch.rows) rows.push([...row]);
      if (rows.length > this.options.resultRowsMax) {
        if (batch.more) await this.interrupt();
        throw new ClientError('too_large', `the query returned more than ${this.options.resultRowsMax} rows (option resultRowsMax)`);
      }
      if (!batch.more) return { columns, rows };
      response = await this.receiveResponse();
    }
  }

  /** Stops a batched result: Interrupt, then drop everything up to the Empty answer. */
  private async interrupt(): Promise<void> {
    await this.send({ type: 'interrupt', db: 0 });
    for (;;) {
      const response = await this.receiveResponse();
      if (response.type === 'empty') return;
    }
  }

  private cursorBusyError(): ClientError {
    return new ClientError('bad_argument', 'a streamed query is still being read on this connection: finish (or break out of) that loop first, or use another connection');
  }

  /** Waits until no request is in progress; the returned function lets the next one go. */
  private acquireQueue(): Promise<() => void> {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const previous = this.queue;
    this.queue = previous.then(() => held);
    return previous.then(() => release);
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.queue.then(work);
    this.queue = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  private async send(request: Request): Promise<void> {
    if (this.closeError) throw new ConnectionError(this.address, this.closeError.message, false);
    let bytes: Uint8Array;
    try {
      bytes = encodeRequest(request, { messageBytesMax: this.options.messageBytesMax });
    } catch (error) {
      if (error instanceof ProtocolError) throw new ClientError('bad_argument', error.message, { cause: error });
      throw error;
    }
    if (!this.stream.write(bytes)) {
      throw new ConnectionError(this.address, 'connection closed before the request was sent', false);
    }
  }

  private receiveResponse(timeoutMs: number | undefined = this.options.requestTimeoutMs): Promise<Response> {
    return this.receiveMessage(timeoutMs).then((message) => {
      try {
        const response = decodeResponse(message, { messageBytesMax: this.options.messageBytesMax });
        if (response.type === 'node') this.features = readHeader(message).extra;
        return response;
      } catch (error) {
        // A response we cannot read leaves the stream in an unknown state.
        const failure = new ConnectionError(this.address, `bad response: ${(error as Error).message}`, true, { cause: error });
        this.fail(failure);
        this.stream.close();
        throw failure;
      }
    });
  }

  /** The next message; with `timeoutMs` undefined, waits for as long as the connection lives. */
  private receiveMessage(timeoutMs: number | undefined = this.options.requestTimeoutMs): Promise<Uint8Array> {
    const ready = this.inbox.shift();
    if (ready) {
      this.inboxBytes -= ready.length;
      return Promise.resolve(ready);
    }
    if (this.closeError) return Promise.reject(this.closeError);
    return new Promise<Uint8Array>((resolve, reject) => {
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              const failure = new ConnectionError(this.address, `no response within ${timeoutMs} ms`, true);
              this.fail(failure);
              this.stream.close();
            }, timeoutMs);
      this.waiter = {
        resolve: (message) => {
          clearTimeout(timer);
          resolve(message);
        },
        reject: (error) => {
          clearTimeout(timer);
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
      this.fail(new ConnectionError(this.address, `bad data from the server: ${(error as Error).message}`, true, { cause: error }));
      this.stream.close();
      return;
    }
    for (const message of messages) {
      const waiter = this.waiter;
      if (waiter) {
        this.waiter = undefined;
        waiter.resolve(message);
      } else if (this.inboxBytes + message.length <= this.inboxBytesMax) {
        this.inbox.push(message);
        this.inboxBytes += message.length;
      } else {
        this.fail(new ConnectionError(this.address, `more than ${this.inboxBytesMax} bytes arrived unread`, true));
        this.stream.close();
        return;
      }
    }
  }

  private expectType<N extends ResponseName>(response: Response, expected: N): ResponseOf<N> {
    if (response.type === expected) return response as ResponseOf<N>;
    if (response.type === 'failure') throw new DqliteError(response.code, response.message);
    const failure = new ConnectionError(this.address, `expected a ${expected} response, got ${response.type}`, true);
    this.fail(failure);
    this.stream.close();
    throw failure;
  }

  private fail(error: ConnectionError): void {
    if (this.closeError) return;
    this.closeError = error;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(error);
  }
}

/**
 * A raw protocol connection to exactly `address` (version handshake only: no Leader, Client or
 * Open), for tools and tests that send requests one by one.
 */
export function openConnection(dial: DialStream, address: string, options: Partial<ConnectionOptions> = {}): Promise<Connection> {
  return Connection.open(dial, address, { ...CONNECTION_DEFAULTS, ...options });
}
