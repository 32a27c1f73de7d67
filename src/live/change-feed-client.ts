/**
 * `db.changes()` on our client: a change feed over its own connection to one of the servers
 * (the first that answers, in the order given: list the subscriber's own node first). The
 * feed resumes by itself after a disconnect, on the same or another server, from the last
 * event it gave: nothing missed or repeated, as long as that server's log still covers the
 * bookmark (otherwise it gives a gap event). Pass `since` (an event's `index`) to resume after a
 * restart of the consumer.
 */
import { ClientError, ConnectionError, DqliteError } from '../client/errors.ts';
import { EXTENSION_READS, FrameReader, decodeResponse, encodeRequest, encodeVersion, readHeader } from '../protocol/index.ts';
import { decodeChangeResponse, encodeChangeRequest, isChangeResponse, type ChangeResponse } from '../protocol/change-requests.ts';
import type { ByteStream, DialStream } from '../runtime.ts';
import type { ChangeFeedEvent } from './change-feed.ts';

export type { ChangeFeedEvent, ChangeFeedGap, ChangeFeedTransaction } from './change-feed.ts';

export interface ChangesOptions {
  /** Give transactions after this log index (a previous event's `index`); default: from now on. */
  since?: number;
  /** Only transactions that changed one of these tables (rows filtered to them). */
  tables?: readonly string[];
  /** Events the server may send ahead of the consumer (flow control). Default 256. */
  credit?: number;
}

/** Where a feed connects: the Database's own connection settings. */
export interface ChangeFeedTarget {
  database: string;
  servers: readonly string[];
  dial: DialStream;
  dialTimeoutMs?: number;
  /** Bound on reconnecting after a disconnect before the feed fails. Default 15000. */
  timeoutMs?: number;
  messageBytesMax?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
}

const CREDIT_DEFAULT = 256;

interface Attempt {
  stream: ByteStream;
  frames: FrameReader;
  sinceAck: number;
  /** Set once the server answered Leader and Watching. */
  stage: 'leader' | 'watching' | 'streaming';
}

/** A change feed: an async iterator of events; `bookmark` is where it would resume. */
export class ChangeStream implements AsyncIterableIterator<ChangeFeedEvent> {
  private bookmarkIndex: number | undefined;
  private readonly credit: number;
  private readonly events: ChangeFeedEvent[] = [];
  private failure: Error | undefined;
  private closed = false;
  private attempt: Attempt | undefined;
  private connecting: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private serverIndex = 0;
  /** The server the feed reads from now (for logs and tests). */
  server: string | undefined;

  constructor(
    private readonly target: ChangeFeedTarget,
    private readonly options: ChangesOptions = {},
    private readonly onClose?: (feed: ChangeStream) => void,
  ) {
    if (options.since !== undefined && (!Number.isSafeInteger(options.since) || options.since < 0)) {
      throw new ClientError('bad_argument', `since must be a log index (an event's index, a whole number from 0), got ${String(options.since)}`);
    }
    if (target.servers.length === 0) throw new ClientError('bad_argument', 'a change feed needs at least one server address');
    this.bookmarkIndex = options.since;
    this.credit = options.credit ?? CREDIT_DEFAULT;
  }

  /** The index of the last event given (or the starting point once connected): pass it as `since` to resume. */
  get bookmark(): number | undefined {
    return this.bookmarkIndex;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async next(): Promise<IteratorResult<ChangeFeedEvent>> {
    for (;;) {
      if (this.closed) return { done: true, value: undefined };
      const event = this.events.shift();
      if (event) {
        this.bookmarkIndex = event.type === 'gap' ? event.firstAvailableIndex - 1 : event.index;
        this.acknowledge();
        return { done: false, value: event };
      }
      if (this.failure) {
        const failure = this.failure;
        this.close();
        throw failure;
      }
      if (!this.attempt && !this.connecting) this.connecting = this.connect().finally(() => (this.connecting = undefined));
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }

  async return(): Promise<IteratorResult<ChangeFeedEvent>> {
    this.close();
    return { done: true, value: undefined };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose?.(this);
    this.events.length = 0;
    this.attempt?.stream.close();
    this.attempt = undefined;
    this.wake?.();
  }

  private acknowledge(): void {
    const attempt = this.attempt;
    if (!attempt || attempt.stage !== 'streaming') return;
    attempt.sinceAck++;
    if (attempt.sinceAck >= Math.max(1, Math.floor(this.credit / 2))) {
      attempt.stream.write(encodeChangeRequest({ type: 'changes_ack', consumed: attempt.sinceAck }));
      attempt.sinceAck = 0;
    }
  }

  /** Tries the servers in turn, with backoff, until one serves the feed or the bound passes. */
  private async connect(): Promise<void> {
    const deadlineMs = Date.now() + (this.target.timeoutMs ?? 15_000);
    let delayMs = this.target.backoffBaseMs ?? 50;
    let lastError: unknown;
    while (!this.closed) {
      const address = this.target.servers[this.serverIndex % this.target.servers.length]!;
      try {
        await this.open(address);
        return;
      } catch (error) {
        if (error instanceof DqliteError || error instanceof ClientError) {
          this.fail(error);
          return;
        }
        lastError = error;
        this.serverIndex++;
      }
      if (Date.now() + delayMs > deadlineMs) break;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      delayMs = Math.min(delayMs * 2, this.target.backoffMaxMs ?? 1_000);
    }
    if (!this.closed) {
      const reason = lastError instanceof Error ? lastError.message : String(lastError);
      this.fail(new ConnectionError(this.target.servers.join(', '), `no server served the change feed of ${this.target.database} within ${this.target.timeoutMs ?? 15_000} ms (last: ${reason}); resume later with since = ${String(this.bookmarkIndex)}`, false));
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    this.wake?.();
  }

  /** One connection: handshake, Leader (to learn the extension), WatchChanges; resolves once watching. */
  private open(address: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const settle = (error?: Error): void => {
        if (settled) return;
        settled = true;
        if (error) reject(error);
        else resolve();
      };
      void (async () => {
        let stream: ByteStream;
        try {
          stream = await this.target.dial(address, { timeoutMs: this.target.dialTimeoutMs ?? 5_000 });
        } catch (error) {
          settle(new ConnectionError(address, `cannot connect: ${error instanceof Error ? error.message : String(error)}`, false, { cause: error }));
          return;
        }
        if (this.closed) {
          stream.close();
          settle();
          return;
        }
        const attempt: Attempt = { stream, frames: new FrameReader({ messageBytesMax: this.target.messageBytesMax ?? 64 * 1024 * 1024 }), sinceAck: 0, stage: 'leader' };
        stream.onData((chunk) => {
          let messages: Uint8Array[];
          try {
            messages = attempt.frames.feed(chunk);
          } catch (error) {
            stream.close();
            settle(new ConnectionError(address, `bad bytes from the server: ${(error as Error).message}`, true));
            return;
          }
          for (const message of messages) {
            const problem = this.handle(attempt, message, address);
            if (problem) {
              stream.close();
              // Refused once streaming (not a lost connection): reconnecting would be refused again.
              if (settled && (problem instanceof DqliteError || problem instanceof ClientError)) this.fail(problem);
              settle(problem);
              return;
            }
            if (attempt.stage === 'streaming') settle();
          }
        });
        stream.onClose((error) => {
          if (this.attempt === attempt) {
            this.attempt = undefined;
            // Events received but not given are dropped: the next connection resends them.
            this.events.length = 0;
            this.wake?.();
          }
          settle(new ConnectionError(address, error ? `connection failed: ${error.message}` : 'connection closed by the server', true));
        });
        stream.write(encodeVersion());
        stream.write(encodeRequest({ type: 'leader' }));
      })();
    });
  }

  /** Handles one message of `attempt`; returns an error that ends it. */
  private handle(attempt: Attempt, message: Uint8Array, address: string): Error | undefined {
    if (attempt.stage === 'leader') {
      const header = readHeader(message);
      const response = decodeResponse(message);
      if (response.type === 'failure') return new DqliteError(response.code, response.message);
      if ((header.extra & EXTENSION_READS) === 0) return new ClientError('protocol', `${address} does not serve change feeds (it is not a dqlite-wasm node)`);
      attempt.stage = 'watching';
      attempt.stream.write(
        encodeChangeRequest({ type: 'watch_changes', database: this.target.database, since: this.bookmarkIndex, credit: this.credit, tables: this.options.tables ?? [] }),
      );
      return undefined;
    }
    if (!isChangeResponse(message)) {
      const response = decodeResponse(message);
      if (response.type === 'failure') return new DqliteError(response.code, response.message);
      return new ConnectionError(address, `unexpected ${response.type} response on a change feed`, true);
    }
    let response: ChangeResponse;
    try {
      response = decodeChangeResponse(message);
    } catch (error) {
      return new ConnectionError(address, `bad change feed message: ${(error as Error).message}`, true);
    }
    if (response.type === 'watching') {
      attempt.stage = 'streaming';
      this.bookmarkIndex ??= response.since;
      this.attempt = attempt;
      this.server = address;
      return undefined;
    }
    if (this.closed) return undefined;
    if (response.type === 'change_gap') {
      this.events.push({ type: 'gap', database: this.target.database, since: response.since, firstAvailableIndex: response.firstAvailableIndex, message: response.message });
    } else {
      const changes = response.changes;
      this.events.push(
        changes
          ? { type: 'transaction', index: response.index, database: this.target.database, timeMs: changes.timeMs, tables: changes.tables, rowsOmitted: changes.rowsOmitted, ...(changes.rows && { rows: changes.rows }) }
          : { type: 'transaction', index: response.index, database: this.target.database, rowsOmitted: true },
      );
    }
    this.wake?.();
    return undefined;
  }
}
