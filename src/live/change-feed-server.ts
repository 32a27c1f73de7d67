/**
 * The server side of a change feed subscription on a client connection (protocol in
 * src/protocol/change-requests.ts): a WatchChanges request turns the gateway's connection into
 * a stream of this replica's committed transactions of one database, paced by the client's
 * acknowledgements, until either side closes it.
 */
import { encodeResponse } from '../protocol/index.ts';
import { decodeChangeRequest, encodeChangeResponse, type ChangeRequest } from '../protocol/change-requests.ts';
import type { ByteStream } from '../runtime.ts';
import { ChangeFeed, type ChangeFeedEvent, type ChangeLogSource } from './change-feed.ts';

const SQLITE_ERROR = 1;
const SQLITE_PROTOCOL = 15;

export class ChangeSubscription {
  private credit: number;
  private scheduled = false;
  private closed = false;

  constructor(
    private readonly feed: ChangeFeed,
    private readonly stream: ByteStream,
    credit: number,
    applied: number,
  ) {
    this.credit = credit;
    stream.write(encodeChangeResponse({ type: 'watching', since: feed.bookmark, applied }));
    feed.onReady(() => this.schedule());
    this.schedule();
  }

  /** A later message on the connection: only acknowledgements belong here. */
  receive(message: Uint8Array): void {
    let request: ChangeRequest;
    try {
      request = decodeChangeRequest(message);
    } catch (error) {
      this.fail(SQLITE_PROTOCOL, `malformed request on a change feed connection: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    if (request.type !== 'changes_ack') {
      this.fail(SQLITE_PROTOCOL, 'this connection already carries a change feed: open another connection for another request');
      return;
    }
    this.credit += request.consumed;
    this.schedule();
  }

  close(): void {
    this.closed = true;
    this.feed.close();
  }

  /** Events are written after the apply that produced them, never inside it. */
  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    while (this.credit > 0 && !this.closed) {
      let event: ChangeFeedEvent | undefined;
      try {
        event = this.feed.take();
      } catch (error) {
        this.fail(SQLITE_ERROR, `the change feed cannot read this node's log: ${error instanceof Error ? error.message : String(error)}`);
        return;
      }
      if (!event) return;
      this.credit--;
      const message =
        event.type === 'gap'
          ? encodeChangeResponse({ type: 'change_gap', since: event.since, firstAvailableIndex: event.firstAvailableIndex, message: event.message })
          : encodeChangeResponse({ type: 'change_transaction', index: event.index, changes: toChanges(event) });
      if (!this.stream.write(message)) {
        this.close();
        return;
      }
    }
  }

  private fail(code: number, message: string): void {
    this.stream.write(encodeResponse({ type: 'failure', code, message }));
    this.close();
    this.stream.close();
  }
}

function toChanges(event: Extract<ChangeFeedEvent, { type: 'transaction' }>) {
  if (event.tables === undefined || event.timeMs === undefined) return undefined;
  return { timeMs: event.timeMs, tables: event.tables, rowsOmitted: event.rowsOmitted, ...(event.rows && { rows: event.rows }) };
}

/**
 * Routes a change feed message arriving on a gateway connection: the first WatchChanges starts
 * the subscription (or fails, leaving the connection as it was), later messages go to it.
 */
export function routeChangeRequest(
  subscription: ChangeSubscription | undefined,
  message: Uint8Array,
  source: ChangeLogSource | undefined,
  stream: ByteStream,
): ChangeSubscription | undefined {
  if (subscription) {
    subscription.receive(message);
    return subscription;
  }
  const refuse = (code: number, text: string): undefined => {
    stream.write(encodeResponse({ type: 'failure', code, message: text }));
    return undefined;
  };
  let request: ChangeRequest;
  try {
    request = decodeChangeRequest(message);
  } catch (error) {
    return refuse(SQLITE_PROTOCOL, `malformed request: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (request.type !== 'watch_changes') return refuse(SQLITE_PROTOCOL, 'ChangesAck without a change feed on this connection: send WatchChanges first');
  if (!source) return refuse(SQLITE_ERROR, 'this node serves no change feed');
  if (request.database.length === 0) return refuse(SQLITE_ERROR, 'a change feed needs a database name');
  let feed: ChangeFeed;
  try {
    feed = new ChangeFeed(source, { database: request.database, tables: request.tables, ...(request.since !== undefined && { since: request.since }) });
  } catch (error) {
    return refuse(SQLITE_ERROR, error instanceof Error ? error.message : String(error));
  }
  return new ChangeSubscription(feed, stream, request.credit, source.appliedIndex());
}
